"""Which DLRREC variant's switches become DLRREC's defaults: the one best on VALIDATION across
the tuned boards of the real datasets.

    python -m recbole_dlrrec.experiments.variant_choice \\
        --datasets google-local-hi-ms,google-local-hi-ms-k3,ml-100k --out results/dlrrec-defaults.md

Reads each dataset's tuned board (results/<dataset>-tuned/leaderboard.csv: every model was
tuned with the same budget, then run over the seeds) and ranks the DLRREC family by its mean
validation AUC over the seeds, averaged over the datasets where the variant ran. Variants that
did not run on every dataset are ranked among themselves after the complete ones (a mean over
fewer datasets is not comparable). Test AUC is shown beside, for the record: it chooses nothing.

Then the tuned keys' values (w1, w2, tau, the reduction, the backbone, the shared optimiser keys)
for the winning variant: its searches on the datasets drew the same configurations (the same
space and sampler seed), so each configuration has a validation AUC on every dataset
(tuning/<MODEL>/trials.csv, the best epoch the search let it reach); the one with the best mean
becomes the defaults. A configuration some search did not draw, or whose trial failed there, is
left out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import yaml

from recbole_dlrrec.config.registry import MODEL_VARIANTS
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments.report_cli import print_report
from recbole_dlrrec.experiments.search_records import read_trials_csv


class BoardMissingError(InputError, FileNotFoundError):
    """A dataset named for the choice has no tuned board yet."""


@dataclass(frozen=True)
class VariantScores:
    """One DLRREC-family model's mean valid / test AUC per dataset (absent: did not run there)."""

    model: str
    valid: Dict[str, float]
    test: Dict[str, float]

    def mean_valid(self, datasets: Sequence[str]) -> float:
        return sum(self.valid[d] for d in datasets) / len(datasets)


def is_dlrrec_family(model: str) -> bool:
    return model == "DLRREC" or (model in MODEL_VARIANTS and MODEL_VARIANTS[model][0] == "DLRREC")


def board_csv(results_dir: str, dataset: str) -> str:
    return os.path.join(results_dir, f"{dataset}-tuned", "leaderboard.csv")


def read_scores(results_dir: str, datasets: Sequence[str]) -> List[VariantScores]:
    """The DLRREC family's finished rows of each dataset's tuned board."""
    valid: Dict[str, Dict[str, float]] = {}
    test: Dict[str, Dict[str, float]] = {}
    for dataset in datasets:
        path = board_csv(results_dir, dataset)
        if not os.path.isfile(path):
            raise BoardMissingError(f"{path}: no tuned board for {dataset!r} (run_leaderboard.py --tune N first)")
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["status"] != "ok" or not is_dlrrec_family(row["model"]) or not row["valid_auc_mean"]:
                    continue
                valid.setdefault(row["model"], {})[dataset] = float(row["valid_auc_mean"])
                test.setdefault(row["model"], {})[dataset] = float(row["auc_mean"])
    return [VariantScores(model, valid[model], test[model]) for model in valid]


def rank(scores: Sequence[VariantScores], datasets: Sequence[str]) -> List[VariantScores]:
    """Complete variants (a score on every dataset) by mean valid AUC, best first; then the
    others by their mean over the datasets they have."""
    complete = [s for s in scores if set(datasets) <= set(s.valid)]
    partial = [s for s in scores if not set(datasets) <= set(s.valid)]
    complete.sort(key=lambda s: -s.mean_valid(datasets))
    partial.sort(key=lambda s: -s.mean_valid(sorted(s.valid)))
    return complete + partial


@dataclass(frozen=True)
class SharedTrial:
    """One configuration of a model's search space and its best validation AUC in each dataset's search."""

    params: Dict[str, object]
    valid: Dict[str, float]
    epochs: Dict[str, int]

    def mean_valid(self) -> float:
        return sum(self.valid.values()) / len(self.valid)


def trials_csv(results_dir: str, dataset: str, model: str) -> str:
    return os.path.join(results_dir, f"{dataset}-tuned", "tuning", model, "trials.csv")


def read_shared_trials(results_dir: str, datasets: Sequence[str], model: str) -> List[SharedTrial]:
    """`model`'s configurations that every dataset's search evaluated, best mean valid AUC first."""
    found: Dict[str, SharedTrial] = {}
    for dataset in datasets:
        path = trials_csv(results_dir, dataset, model)
        if not os.path.isfile(path):
            raise BoardMissingError(f"{path}: no saved search of {model} on {dataset!r}")
        for record in read_trials_csv(path):
            if record.best_score is None:  # failed: nothing measured
                continue
            trial = found.setdefault(json.dumps(record.params, sort_keys=True), SharedTrial(record.params, {}, {}))
            trial.valid[dataset] = float(record.best_score)
            trial.epochs[dataset] = record.epochs
    shared = [t for t in found.values() if set(t.valid) == set(datasets)]
    return sorted(shared, key=lambda t: -t.mean_valid())


def settings_report(model: str, trials: Sequence[SharedTrial], datasets: Sequence[str], top: int = 5) -> str:
    """The best configurations by mean valid AUC over the datasets' searches, and the winner as YAML."""
    if not trials:
        return f"\nNo configuration of {model} was evaluated by every dataset's search: no settings chosen.\n"
    keys = list(trials[0].params)
    lines = [
        "",
        f"## Settings of {model}",
        "",
        f"Its searches on {', '.join(datasets)} drew the same {len(trials)} configuration(s) (same space and sampler "
        "seed); ranked by the mean over the datasets of each configuration's best VALIDATION AUC in that search "
        "(epochs: how far the search let it train there: ASHA, or the epoch cap and early stopping).",
        "",
        "| Rank | "
        + " | ".join(keys)
        + " | "
        + " | ".join(f"valid {d} (epochs)" for d in datasets)
        + " | mean valid |",
        "|---" * (1 + len(keys) + len(datasets)) + "|---|",
    ]
    for position, trial in enumerate(trials[:top], 1):
        values = " | ".join(_format_value(trial.params[k]) for k in keys)
        scores = " | ".join(f"{trial.valid[d]:.4f} ({trial.epochs[d]})" for d in datasets)
        lines.append(f"| {position} | {values} | {scores} | {trial.mean_valid():.4f} |")
    lines += [
        "",
        f"Chosen (rank 1), as YAML for properties/model/{MODEL_VARIANTS.get(model, (model,))[0]}.yaml:",
        "",
        "```yaml",
    ]
    rounded = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in trials[0].params.items()}
    lines += [yaml.safe_dump(rounded, default_flow_style=None, sort_keys=False).rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, list) else str(value)


def settings_of(model: str) -> dict:
    return dict(MODEL_VARIANTS[model][1]) if model in MODEL_VARIANTS else {}


def report(ranked: Sequence[VariantScores], datasets: Sequence[str]) -> str:
    def cell(values: Dict[str, float], dataset: str) -> str:
        return f"{values[dataset]:.4f}" if dataset in values else "-"

    lines = [
        "# DLRREC defaults chosen on validation",
        "",
        "Generated by `python -m recbole_dlrrec.experiments.variant_choice`. Every variant was tuned with "
        "the tuned board's equal budget on each dataset, then run over its seeds; the ranking is by mean "
        "VALIDATION AUC over the seeds, averaged over the datasets. Test AUC is shown for the record only.",
        "",
        "| Rank | Model | "
        + " | ".join(f"valid {d}" for d in datasets)
        + " | mean valid | "
        + " | ".join(f"test {d}" for d in datasets)
        + " | settings over DLRREC.yaml |",
        "|---" * (3 + 2 * len(datasets)) + "|---|",
    ]
    for position, scores in enumerate(ranked, 1):
        have = [d for d in datasets if d in scores.valid]
        mean = f"{scores.mean_valid(have):.4f}" + ("" if len(have) == len(datasets) else f" ({len(have)} datasets)")
        settings = (
            ", ".join(f"{k}: {v}" for k, v in settings_of(scores.model).items()) or "(DLRREC.yaml as the boards ran it)"
        )
        lines.append(
            f"| {position} | {scores.model} | "
            + " | ".join(cell(scores.valid, d) for d in datasets)
            + f" | {mean} | "
            + " | ".join(cell(scores.test, d) for d in datasets)
            + f" | {settings} |"
        )
    if ranked:
        best = ranked[0]
        lines += [
            "",
            f"Best on validation: **{best.model}** "
            f"({', '.join(f'{k}: {v}' for k, v in settings_of(best.model).items()) or 'the current defaults'}).",
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", required=True, help="comma-separated datasets with tuned boards")
    parser.add_argument("--results_dir", default="results")
    parser.add_argument("--out", default=None, help="write the table here (markdown) as well as printing it")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]

    def build() -> str:
        ranked = rank(read_scores(args.results_dir, datasets), datasets)
        text = report(ranked, datasets)
        if ranked and set(datasets) <= set(ranked[0].valid):
            best = ranked[0].model
            text += settings_report(best, read_shared_trials(args.results_dir, datasets, best), datasets)
        return text

    return print_report(build, args.out)


if __name__ == "__main__":
    sys.exit(main())
