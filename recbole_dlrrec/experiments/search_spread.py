"""Several searches per model on a tuned board, and how much the search alone moves a row.

    repeat = headline_models(models, tuned)                      # which models get several searches
    extra = extra_searches(board, repeat, spaces, budget, 3, tune)  # searches 2..3 (sampler seeds)
    rows = spread_rows(board, tuned, extra, seeds)               # winners' test AUC per search
    spread_markdown(rows); mark_search_ties(entries, spreads(rows))

A model's row on the board is its first search (sampler seed FIRST_SEED, as with one search).
Its other searches draw other configurations (sampler seeds FIRST_SEED + 1, ...), with the same
budget, space and scheduler; each one's winner (chosen on validation) runs over the board's
seeds as cells of its own, labelled ``<MODEL>+search<SEED>``. The spread of the winners' test
AUC across searches (max - min of their means over seeds) says how far the choice of a search
alone moves the model, beside the seed spread; a gap between two rows smaller than the larger
of their search spreads is called a tie.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from recbole_dlrrec.experiments.board_cells import FIRST_SEED, CellSpec, Leaderboard, is_dlrrec_family
from recbole_dlrrec.experiments.board_tables import format_number, summarize
from recbole_dlrrec.experiments.search_inputs import tuning_dir
from recbole_dlrrec.experiments.significance import Comparison

if TYPE_CHECKING:
    from recbole_dlrrec.experiments.board_significance import Entry
    from recbole_dlrrec.experiments.tuned_board import SearchPlan, TuneBudget, TunedModel

# The rows item 2 of the protocol names: DLRREC, its V0 variant and the backbone without text,
# then the baselines best on validation (after the first search).
HEADLINE_MODELS = ("DLRREC", "DLRREC-V0", "DLRM")
HEADLINE_BASELINES = 3


def search_label(model: str, sampler_seed: int) -> str:
    """The row label of a search's cells: the model for the first search, else model+search<seed>."""
    return model if sampler_seed == FIRST_SEED else f"{model}+search{sampler_seed}"


def sampler_seeds(count: int) -> List[int]:
    if int(count) < 1:
        raise ValueError(f"--search_seeds must be >= 1, got {count}")
    return [FIRST_SEED + i for i in range(int(count))]


def headline_models(models: Sequence[str], tuned: Sequence["TunedModel"], baselines: int = HEADLINE_BASELINES):
    """The board's models that get several searches: HEADLINE_MODELS present on the board, and the
    `baselines` non-DLRREC models (DLRM aside) with the best validation score of their first search."""
    chosen = [m for m in HEADLINE_MODELS if m in models]
    scored: List[Tuple[float, str]] = []
    for t in tuned:
        score = t.record.get("best_valid_score")
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            continue
        if t.status == "ok" and not is_dlrrec_family(t.model) and t.model not in chosen:
            scored.append((float(score), t.model))
    best = sorted(scored, key=lambda s: (-s[0], s[1]))
    return chosen + [model for _, model in best[:baselines]]


@dataclass
class Search:
    """One search of a model: its sampler seed, the label of its cells, its TunedModel."""

    model: str
    sampler_seed: int
    label: str
    tuned: "TunedModel"


def extra_searches(
    board: Leaderboard,
    repeat: Sequence[str],
    spaces: Mapping[str, object],
    budget: "TuneBudget",
    count: int,
    tune: Callable,
) -> List[Search]:
    """Searches 2..`count` of every model in `repeat` (sampler seeds FIRST_SEED + 1, ...), each kept
    in tuning/<MODEL>/search-<SEED>/ and reused like the first. `tune`: tuned_board.tune_model
    with the board's retune and search settings bound."""
    out = []
    for model in repeat:
        for seed in sampler_seeds(count)[1:]:
            folder = os.path.join(tuning_dir(board.out_dir, model), f"search-{seed}")
            tuned = tune(board, model, spaces[model], dataclasses.replace(budget, seed=seed), folder=folder)
            out.append(Search(model, seed, search_label(model, seed), tuned))
    return out


def repeat_searches(
    board: Leaderboard,
    models: Sequence[str],
    first: Sequence["TunedModel"],
    spaces: Mapping[str, object],
    budget: "TuneBudget",
    plan: "SearchPlan",
    seeds: Sequence[int],
    tune: Callable,
) -> List[SpreadRow]:
    """The other searches of the plan's models, their winners' cells over `seeds` (run, or kept
    from before), and the spread rows; [] with one search per model."""
    from recbole_dlrrec.experiments import cell_metrics

    if plan.count < 2:
        return []
    repeat = list(plan.models) if plan.models is not None else headline_models(models, first)
    board.log(f"{plan.count} searches (sampler seeds) for: {', '.join(repeat)}")
    extra = extra_searches(board, repeat, spaces, budget, plan.count, tune)
    board.run_cells(extra_cells(extra, seeds, cell_metrics.VALID_THRESHOLD))
    return spread_rows(board, extra, seeds)


def extra_cells(searches: Sequence[Search], seeds: Sequence[int], extra_settings: dict) -> List[CellSpec]:
    """The cells of the searches that found a winner, seed-major like the board's own."""
    ok = [s for s in searches if s.tuned.status == "ok"]
    return [CellSpec(s.label, s.model, seed, {**s.tuned.params, **extra_settings}) for seed in seeds for s in ok]


@dataclass
class SpreadRow:
    model: str
    test_auc: List[Optional[float]]  # per search, mean over seeds (None: no numbers)
    seed_std: float  # the first search's std over seeds
    searches: int

    @property
    def spread(self) -> float:
        """max - min of the searches' mean test AUC (nan with fewer than two)."""
        values = [v for v in self.test_auc if v is not None and math.isfinite(v)]
        return max(values) - min(values) if len(values) > 1 else float("nan")


def spread_rows(board: Leaderboard, extra: Sequence[Search], seeds: Sequence[int]) -> List[SpreadRow]:
    """One SpreadRow per model with more than one search, from the cells of its searches."""
    rows = []
    for model in dict.fromkeys(s.model for s in extra):
        labels = [model] + [s.label for s in extra if s.model == model]
        summaries = []
        for label in labels:
            records = [r for r in (board.load_cell(CellSpec(label, model, seed)) for seed in seeds) if r]
            summaries.append(summarize(label, records, len(seeds)))
        aucs = [row.metrics["auc"][0] if row.has_numbers else None for row in summaries]
        seed_std = summaries[0].metrics["auc"][1] if summaries[0].has_numbers else float("nan")
        rows.append(SpreadRow(model, aucs, seed_std, len(labels)))
    return rows


def spreads(rows: Sequence[SpreadRow]) -> Dict[str, float]:
    return {row.model: row.spread for row in rows if math.isfinite(row.spread)}


def spread_markdown(rows: Sequence[SpreadRow], seed_count: int) -> str:
    """The '## Search spread' section of the tuned board."""
    if not rows:
        return ""
    seeds = ", ".join(str(s) for s in sampler_seeds(max(r.searches for r in rows)))
    lines = [
        "## Search spread",
        "",
        f"Independent searches (sampler seeds {seeds}; the first is the board's row) with the same budget; each "
        f"search's winner, chosen on validation, ran over the {seed_count} seed(s). Search spread = max − min of the "
        "winners' mean test AUC; a gap between two rows smaller than the larger of their search spreads is a tie "
        "(significance tables: verdict 'tie').",
        "",
        "| Model | Test AUC per search (mean over seeds) | Search spread | Seed std (first search) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        per = ", ".join("n/a" if v is None else format_number(v) for v in row.test_auc)
        lines.append(f"| {row.model} | {per} | {format_number(row.spread)} | {format_number(row.seed_std)} |")
    return "\n".join(lines) + "\n"


def mark_search_ties(entries: Sequence["Entry"], spread: Dict[str, float]) -> int:
    """Call a tested gap a tie when it is smaller than the larger search spread of its two rows
    (significance.Comparison entries; the others are left as they are). Returns how many."""
    ties = 0
    for entry in entries:
        if not isinstance(entry, Comparison):
            continue
        limit = max(spread.get(entry.model, float("nan")), spread.get(entry.baseline, float("nan")), key=_finite)
        if math.isfinite(limit) and abs(entry.diff) < limit:
            entry.verdict = f"tie: |Δ| {abs(entry.diff):.4f} < search spread {limit:.4f} ({entry.verdict})"
            ties += 1
    return ties


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf
