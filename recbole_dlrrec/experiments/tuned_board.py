"""The tuned board: the same search budget for every model, then its chosen config over the seeds.

    board, paths, tuned = run_tuned_leaderboard("ml-100k", models, 3, TuneBudget(trials=20, max_epochs=20))

results/<dataset>/ holds the defaults board (every model at its config defaults) and
results/<dataset>-tuned/ the tuned one: each model is searched with the same budget (N trials,
ASHA on the validation metric of every epoch, one epoch cap), on properties/tune/<MODEL>.yaml
over the shared ranges of properties/tune/shared.yaml, then the configuration with the best
VALIDATION score runs over the seeds as ordinary cells. Each model's search is kept in
tuning/<MODEL>/ (space.yaml, trials.csv, best_config.yaml, tuning.json) and reused by a rerun
unless --retune, or unless what it depends on changed (`tuning_inputs`, digested by
`search_fingerprint`).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments import cell_metrics, search_spread
from recbole_dlrrec.experiments.board_cells import (
    DEFAULT_RESULTS_DIR,
    FIRST_SEED,
    CellSpec,
    Leaderboard,
    atomic_write_json,
    cells,
    default_log,
    seeds_for,
)
from recbole_dlrrec.experiments.board_report import write_leaderboard
from recbole_dlrrec.experiments.search_inputs import (  # noqa: F401  (data_files_digest, digest, tuning_dir: the board's API)
    TUNING_DIRNAME,
    TUNING_RECORD,
    data_files_digest,
    digest,
    read_json,
    search_fingerprint,
    search_overrides,
    tuning_dir,
    tuning_inputs,
    why_search,
)
from recbole_dlrrec.experiments.tune_request import SCHEDULERS

if TYPE_CHECKING:
    from recbole_dlrrec.experiments.tune_space import SearchSpace

TUNED_SUFFIX = "-tuned"
MIN_GRACE_PERIOD = 3  # ASHA pruning after 1 epoch favours whatever fits fastest, not what ends best


class TuneBudgetError(InputError, ValueError):
    """A tuning budget that cannot be honoured (too few trials or epochs, a grace period too short)."""


@dataclass(frozen=True)
class TuneBudget:
    """What every model of a tuned board gets: `trials` draws, at most `max_epochs` epochs per
    trial and per cell; `seed`: the sampler's and every trial's seed. `scheduler` "none": every
    trial trains until RecBole stops it (the cap, or its early stopping on validation); "asha":
    ASHA with `grace_period` epochs before the first cut (keep the best 1/`reduction_factor` at
    each rung), faster, but which trials it stops depends on which reach a rung first."""

    trials: int
    max_epochs: int
    scheduler: str = "none"
    grace_period: int = MIN_GRACE_PERIOD
    reduction_factor: float = 3
    seed: int = FIRST_SEED
    cpus_per_trial: float = 1.0
    num_cpus: Optional[int] = None  # local Ray; None: every CPU
    allow_short_grace: bool = False  # tests only: a grace period under MIN_GRACE_PERIOD
    trial_time_budget_s: Optional[float] = None  # a trial stops after the epoch that passes it (large data)

    def check(self) -> None:
        if self.trials < 1:
            raise TuneBudgetError(f"--tune needs at least 1 trial, got {self.trials}")
        if self.max_epochs < 1:
            raise TuneBudgetError(f"the epoch cap must be >= 1, got {self.max_epochs}")
        if self.trial_time_budget_s is not None and not self.trial_time_budget_s > 0:
            raise TuneBudgetError(f"--trial_time_budget_s must be > 0 seconds, got {self.trial_time_budget_s}")
        if self.scheduler not in SCHEDULERS:
            raise TuneBudgetError(f"--search_scheduler={self.scheduler}: choose one of {', '.join(SCHEDULERS)}")
        if self.scheduler == "asha" and (
            self.grace_period < 1 or (self.grace_period < MIN_GRACE_PERIOD and not self.allow_short_grace)
        ):
            raise TuneBudgetError(
                f"--grace_period must be >= {MIN_GRACE_PERIOD} (pruning after fewer epochs favours the "
                f"models that fit fastest), got {self.grace_period}"
            )

    def describe(self) -> str:
        if self.scheduler == "none":
            return (
                f"{self.trials} trials per model (random draws made up front from sampler seed {self.seed}), none "
                f"pruned: every trial trains up to {self.max_epochs} epochs with the same early stopping on "
                "validation, and ties go to the earlier draw, so the choice does not depend on trial timing"
            )
        return (
            f"{self.trials} trials per model (random draws, sampler seed {self.seed}), ASHA on the validation metric "
            f"after every epoch with a grace period of {min(self.grace_period, self.max_epochs)} epoch(s) and "
            f"reduction factor {self.reduction_factor:g}, at most {self.max_epochs} epochs per trial "
            "(which trials ASHA stops depends on which reach a rung first)"
        )


@dataclass(frozen=True)
class SearchPlan:
    """How many independent searches (sampler seeds) the headline models get: `count` searches for
    `models` (None: search_spread.headline_models), one for the rest."""

    count: int = 1
    models: Optional[Tuple[str, ...]] = None

    def check(self, board_models: Sequence[str]) -> None:
        if self.count < 1:
            raise TuneBudgetError(f"--search_seeds must be >= 1, got {self.count}")
        unknown = [m for m in self.models or () if m not in board_models]
        if unknown:
            raise TuneBudgetError(f"--search_seed_models names models not on the board: {', '.join(unknown)}")


@dataclass
class TunedModel:
    """One model's search: `params` are the chosen values (status ok) that its cells run with."""

    model: str
    status: str  # ok | failed
    params: dict
    reused: bool
    record: dict


def tuned_out_name(dataset: str) -> str:
    return dataset + TUNED_SUFFIX


def board_space(model: str, dataset: str, overrides: Optional[dict] = None) -> SearchSpace:
    """The checked search space of `model` on this board (tune_space.model_space): SpaceError
    (one line, naming the file) for a missing or malformed space file."""
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, ConfigStack
    from recbole_dlrrec.experiments.tune_space import model_space

    stack = ConfigStack(model, dataset, (), overrides)
    return model_space(model, PROPERTIES_DIR, stack.plugin_files() + stack.dataset_files())


def check_tuned_inputs(
    dataset: str, models: Sequence[str], overrides: Optional[dict], budget: TuneBudget
) -> Dict[str, SearchSpace]:
    """Everything a tuned board needs that can be checked before any work: the budget, the
    dataset (its atomic files, or a builder), every model's space file. Returns model -> space."""
    from recbole_dlrrec.config.stack import ConfigStack
    from recbole_dlrrec.runtime.quick_start import check_dataset

    budget.check()
    check_dataset(dataset, ConfigStack(models[0], dataset, (), overrides).data_path)
    return {model: board_space(model, dataset, overrides) for model in models}


def _new_run_name(runs_root: str, dataset: str, model: str) -> str:
    """A search run name not used yet under runs_root (tune.run_search refuses a taken one)."""
    stem = f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, number = stem, 1
    while os.path.exists(os.path.join(runs_root, dataset, name)):
        number += 1
        name = f"{stem}-{number}"
    return name


def _search_model(board: Leaderboard, model: str, space_file: str, budget: TuneBudget, search: Optional[Callable]):
    """Run `model`'s search (tune.run_search unless `search`) with the board's budget; its
    outputs go to tuning/.runs/<dataset>/<run>/. Returns the search's TuneOutcome."""
    if search is None:
        from recbole_dlrrec.experiments.tune import run_search

        search = run_search
    from recbole_dlrrec.experiments.tune import TuneRequest

    runs_root = os.path.join(board.out_dir, TUNING_DIRNAME, ".runs")  # tune.run_search's own folders
    board.apply_threads()
    outcome = search(
        TuneRequest(
            model=model,
            dataset=board.dataset,
            num_samples=budget.trials,
            max_epochs=budget.max_epochs,
            space_file=space_file,
            fixed=search_overrides(board, model),
            name=_new_run_name(runs_root, board.dataset, model),
            seed=budget.seed,
            out_root=runs_root,
            grace_period=budget.grace_period,
            reduction_factor=budget.reduction_factor,
            scheduler=budget.scheduler,
            trial_time_budget_s=budget.trial_time_budget_s,
            num_cpus=budget.num_cpus,
            cpus_per_trial=budget.cpus_per_trial,
            evaluate_best=False,
        )
    )
    if outcome.interrupted:
        raise KeyboardInterrupt  # Ctrl-C in the search: stop the board too (the CLI says how to continue)
    return outcome


def _keep_search(outcome, folder: str) -> dict:
    """Copy a finished search's trials.csv and best_config.yaml into tuning/<MODEL>/; returns
    the record fields of its best trial. RuntimeError when no trial has a finite score."""
    counts = {
        status: sum(t.status == status for t in outcome.trials)
        for status in ("completed", "pruned", "failed", "interrupted", "not_started")
    }
    if outcome.best is None:
        raise RuntimeError(
            f"no trial ended with a finite validation {outcome.metric} "
            f"({counts['failed']} of {len(outcome.trials)} failed)"
        )
    with atomic.atomic_path(os.path.join(folder, "trials.csv")) as tmp:
        shutil.copyfile(os.path.join(outcome.out_dir, "trials.csv"), tmp)
    # The copy's "how to run it" comment names the copy, not the Ray run folder (not kept in git).
    with open(os.path.join(outcome.out_dir, "best_config.yaml"), encoding="utf-8") as handle:
        text = handle.read().replace(
            os.path.relpath(os.path.join(outcome.out_dir, "best_config.yaml")),
            os.path.relpath(os.path.join(folder, "best_config.yaml")),
        )
    atomic.write_text(os.path.join(folder, "best_config.yaml"), text)
    best = outcome.best
    return {
        "status": "ok",
        "error": None,
        "params": dict(best.params),
        "trial_id": best.trial_id,
        "best_valid_score": best.best_score,
        "best_epoch": best.best_epoch,
        "metric": outcome.metric,
        "metric_bigger": outcome.bigger,
        "trial_counts": counts,
        "run_dir": os.path.relpath(outcome.out_dir),
    }


def _reusable(old: dict, fingerprint: str, folder: str) -> bool:
    """A saved search that finished with the same inputs and still has its best configuration."""
    return bool(
        old.get("status") == "ok"
        and old.get("fingerprint") == fingerprint
        and os.path.isfile(os.path.join(folder, "best_config.yaml"))
    )


def _log_search(board: Leaderboard, model: str, record: dict) -> None:
    """One line: the winning trial and its values, or why the search failed."""
    if record["status"] == "ok":
        board.log(
            f"{model}: best trial {record['trial_id']} (valid {record['metric']} {record['best_valid_score']:.4f}): "
            + ", ".join(f"{k}={v}" for k, v in record["params"].items())
        )
    else:
        board.log(f"{model}: tuning FAILED: {record['error']}")


def tune_model(
    board: Leaderboard,
    model: str,
    space,
    budget: TuneBudget,
    retune: bool = False,
    search: Optional[Callable] = None,
    folder: Optional[str] = None,
) -> TunedModel:
    """Search `model`'s space with `budget` (or reuse its saved search), keep the outputs in
    `folder` (default tuning/<MODEL>/); a search that fails is recorded as failed and returned,
    never raised (bad input is, as an InputError). `search`: tune.run_search (tests may pass their own)."""
    folder = folder or tuning_dir(board.out_dir, model)
    record_path = os.path.join(folder, TUNING_RECORD)
    inputs = tuning_inputs(board, model, space, budget)
    old = read_json(record_path)
    fingerprint = search_fingerprint(inputs, old)
    if not retune and old is not None and _reusable(old, fingerprint, folder):
        board.log(
            f"{model}: tuned before with the same budget, space and code; reusing {folder} (--retune to search again)"
        )
        return TunedModel(model, "ok", dict(old["params"]), True, old)
    board.log(f"{model}: tuning ({why_search(old, inputs, retune)}): {budget.describe()}")
    os.makedirs(folder, exist_ok=True)
    space_file = atomic.write_text(
        os.path.join(folder, "space.yaml"),
        space.to_text(
            header=[
                f"Search space of {model} on the tuned leaderboard, merged from: {', '.join(inputs['space_files'])}."
            ]
        ),
    )
    base = {
        "model": model,
        "fingerprint": digest(inputs),
        "inputs": inputs,
        "space_file": os.path.relpath(space_file),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    started = time.time()
    try:
        record = {**base, **_keep_search(_search_model(board, model, space_file, budget, search), folder)}
    except InputError:
        raise
    except Exception as exc:  # a failed search is recorded; the other models go on
        message = " ".join(str(exc).split()) or type(exc).__name__
        record = {
            **base,
            "status": "failed",
            "error": f"{type(exc).__name__}: {message}"[:500],
            "params": {},
            "traceback": traceback.format_exc()[-4000:],
        }
    record.update(seconds=round(time.time() - started, 3), finished_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    atomic_write_json(record_path, record)
    _log_search(board, model, record)
    return TunedModel(model, record["status"], record["params"], False, record)


def tuned_header_notes(dataset: str, budget: TuneBudget, spaces: Dict[str, SearchSpace], results_dir: str) -> List[str]:
    files = sorted({os.path.relpath(f) for space in spaces.values() for f in space.files})
    defaults_board = os.path.join(results_dir, dataset, "leaderboard.md")
    defaults_state = (
        ""
        if os.path.isfile(defaults_board)
        else (f" (not run yet: run_leaderboard.py --dataset={dataset} without --tune)")
    )
    return [
        f"Tuning budget (the same for every model, before its seeds run): {budget.describe()}; each cell then trains "
        f"for at most {budget.max_epochs} epochs too. The configuration with the best VALIDATION score over its "
        "epochs is "
        "the one run over the seeds; the search never evaluates test.",
        f"Search spaces: {', '.join(f'`{f}`' for f in files)} (shared.yaml: one range per shared key for all models). "
        f"Each model's merged space, trials and chosen config: `{TUNING_DIRNAME}/<MODEL>/`.",
        f"Defaults board (every model at its config defaults, no tuning): `{defaults_board}`{defaults_state}.",
    ]


def tuned_configs_markdown(tuned: Sequence[TunedModel]) -> str:
    """The '## Tuned configurations' section: per model, the search and the chosen values."""
    lines = [
        "## Tuned configurations",
        "",
        "Chosen on validation only (best validation score of any trial over its epochs); "
        f"trials: completed / pruned (ASHA only) / failed. Files: `{TUNING_DIRNAME}/<MODEL>/`.",
        "",
        "| Model | Search | Trials (c/p/f) | Best valid (trial) | Chosen values |",
        "|---|---|---|---|---|",
    ]
    for t in tuned:
        r = t.record
        if t.status != "ok":
            lines.append(f"| {t.model} | failed | | | {str(r.get('error', '')).replace('|', '/')} |")
            continue
        counts = r.get("trial_counts") or {}
        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(t.params.items())).replace("|", "/")
        lines.append(
            f"| {t.model} | {'reused' if t.reused else 'run'} ({r.get('finished_at', '')}) | "
            f"{counts.get('completed', 0)}/{counts.get('pruned', 0)}/{counts.get('failed', 0)} | "
            f"{r.get('metric', '')} {r.get('best_valid_score', float('nan')):.4f} ({r.get('trial_id', '')}) | "
            f"{values} |"
        )
    return "\n".join(lines) + "\n"


def run_tuned_leaderboard(
    dataset: str,
    models: Sequence[str],
    seed_count: int,
    budget: TuneBudget,
    overrides: Optional[dict] = None,
    force: bool = False,
    retune: bool = False,
    results_dir: str = DEFAULT_RESULTS_DIR,
    notes: Sequence[str] = (),
    log: Callable[[str], None] = default_log,
    threads: Optional[int] = None,
    search: Optional[Callable] = None,
    plan: SearchPlan = SearchPlan(),
) -> tuple:
    """The tuned board (see the section comment): check everything, tune each model (or reuse
    its search), run the chosen configs over the seeds, and with `plan.count` > 1 the other
    searches of its headline models (search_spread.py), write the board to
    results/<dataset>-tuned/. Returns (board, paths, tuned)."""
    from recbole_dlrrec.config.stack import ConfigStack
    from recbole_dlrrec.runtime.quick_start import prepare_dataset

    overrides = {**(overrides or {}), "epochs": budget.max_epochs}
    spaces = check_tuned_inputs(dataset, models, overrides, budget)
    plan.check(models)
    seeds = seeds_for(seed_count)
    stack = ConfigStack(models[0], dataset, (), overrides)
    # Before its files are fingerprinted; a RecBole-bundled dataset (ml-100k) gets its side files
    # where its config puts them, as build_config does.
    prepare_dataset(dataset, stack.data_path, stack.merged()[0].get("side_data_path"))
    board = Leaderboard(
        dataset,
        results_dir=results_dir,
        out_name=tuned_out_name(dataset),
        overrides=overrides,
        force=force,
        log=log,
        threads=threads,
    )
    tuned = [tune_model(board, model, spaces[model], budget, retune=retune, search=search) for model in models]
    settings = {t.model: {**t.params, **cell_metrics.VALID_THRESHOLD} for t in tuned if t.status == "ok"}
    for t in tuned:
        if t.status != "ok":  # no config to run: its cells say why (and run once a search succeeds)
            for seed in seeds:
                board.record_failed(CellSpec(t.model, t.model, seed), f"tuning failed: {t.record.get('error')}")
    board.run_cells(cells([t.model for t in tuned if t.status == "ok"], seeds, settings))
    tune = functools.partial(tune_model, retune=retune, search=search)
    spread = search_spread.repeat_searches(board, models, tuned, spaces, budget, plan, seeds, tune)
    paths = write_leaderboard(
        board,
        models,
        seeds,
        notes=[*tuned_header_notes(dataset, budget, spaces, results_dir), cell_metrics.THRESHOLD_NOTE, *notes],
        title="Tuned leaderboard",
        sections=[tuned_configs_markdown(tuned), search_spread.spread_markdown(spread, len(seeds))],
        per_model=sorted({k for space in spaces.values() for k in space.params}),
        search_spread=search_spread.spreads(spread),
    )
    log(f"tuned leaderboard written: {paths['md']}")
    return board, paths, tuned
