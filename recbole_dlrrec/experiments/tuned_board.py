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

import hashlib
import json
import os
import shutil
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.config.registry import resolve_model
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.experiments import cell_metrics
from recbole_dlrrec.experiments.board_cells import (
    DEFAULT_RESULTS_DIR,
    FIRST_SEED,
    NOT_FINGERPRINTED,
    CellSpec,
    Leaderboard,
    atomic_write_json,
    cells,
    default_log,
    seeds_for,
)
from recbole_dlrrec.experiments.board_report import write_leaderboard
from recbole_dlrrec.experiments.code_digest import code_version, is_plugin_model

if TYPE_CHECKING:
    from recbole_dlrrec.experiments.tune_space import SearchSpace

TUNED_SUFFIX = "-tuned"
TUNING_DIRNAME = "tuning"
TUNING_RECORD = "tuning.json"
MIN_GRACE_PERIOD = 3  # ASHA pruning after 1 epoch favours whatever fits fastest, not what ends best
# Settings the search driver owns (tune.run_search refuses them as fixed overrides).
_SEARCH_OWNED = ("epochs", "seed", "eval_step", "checkpoint_dir", "gpu_id")


class TuneBudgetError(InputError, ValueError):
    """A tuning budget that cannot be honoured (too few trials or epochs, a grace period too short)."""


@dataclass(frozen=True)
class TuneBudget:
    """What every model of a tuned board gets: `trials` draws, ASHA with `grace_period` epochs
    before the first cut (keep the best 1/`reduction_factor` at each rung), at most `max_epochs`
    epochs per trial and per cell; `seed`: the sampler's and every trial's seed."""

    trials: int
    max_epochs: int
    grace_period: int = MIN_GRACE_PERIOD
    reduction_factor: float = 3
    seed: int = FIRST_SEED
    cpus_per_trial: float = 1.0
    num_cpus: Optional[int] = None  # local Ray; None: every CPU
    allow_short_grace: bool = False  # tests only: a grace period under MIN_GRACE_PERIOD

    def check(self) -> None:
        if self.trials < 1:
            raise TuneBudgetError(f"--tune needs at least 1 trial, got {self.trials}")
        if self.max_epochs < 1:
            raise TuneBudgetError(f"the epoch cap must be >= 1, got {self.max_epochs}")
        if self.grace_period < 1 or (self.grace_period < MIN_GRACE_PERIOD and not self.allow_short_grace):
            raise TuneBudgetError(
                f"--grace_period must be >= {MIN_GRACE_PERIOD} (pruning after fewer epochs favours the "
                f"models that fit fastest), got {self.grace_period}"
            )

    def describe(self) -> str:
        return (
            f"{self.trials} trials per model (random draws, sampler seed {self.seed}), ASHA on the validation metric "
            f"after every epoch with a grace period of {min(self.grace_period, self.max_epochs)} epoch(s) and "
            f"reduction factor {self.reduction_factor:g}, at most {self.max_epochs} epochs per trial"
        )


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


def tuning_dir(out_dir: str, model: str) -> str:
    return os.path.join(out_dir, TUNING_DIRNAME, model)


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


def data_files_digest(dataset: str, data_path: str, side_files: bool = True) -> str:
    """sha256 over the names and CONTENTS of the dataset's own files (atomic .inter/.item/.user,
    the dataset's .yaml and, with `side_files`, the text vector .npz side files): a dataset whose
    data changed retunes, while one rebuilt byte for byte (the converter is deterministic) keeps
    its saved searches, in a later session too. RecBole's models never read the side files, so
    their searches leave them out: a new or rebuilt side file retunes only the plugin's models.
    (Caches the runs build, such as SWING's, are named otherwise and left out.)"""
    suffixes = ("inter", "item", "user", "yaml") + (("npz",) if side_files else ())
    folder = os.path.join(data_path, dataset)
    digest = hashlib.sha256()
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if name.startswith(dataset + ".") and name.rsplit(".", 1)[-1] in suffixes:
                digest.update(name.encode("utf-8") + b"\0")
                with open(os.path.join(folder, name), "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
    return digest.hexdigest()[:16]


def search_overrides(board: Leaderboard, model: str) -> dict:
    """The fixed --key=value layer of a model's trials: the board's shared overrides, as its
    cells get them (without what the variant defines), less what the search driver owns."""
    _, variant = resolve_model(model)
    return {k: v for k, v in board.overrides.items() if k not in variant and k not in _SEARCH_OWNED}


def tuning_inputs(board: Leaderboard, model: str, space, budget: TuneBudget) -> dict:
    """Everything a saved search depends on; a change in any of them retunes the model."""
    from recbole_dlrrec.config.stack import ConfigStack

    data_path = ConfigStack(model, board.dataset, (), board.overrides).data_path
    return {
        "model": model,
        "dataset": board.dataset,
        "data_files": data_files_digest(board.dataset, data_path, side_files=is_plugin_model(model)),
        "space": space.to_dict(),
        "space_left_out": dict(space.left_out),
        "space_files": [os.path.relpath(f) for f in space.files],
        "trials": budget.trials,
        "max_epochs": budget.max_epochs,
        "grace_period": budget.grace_period,
        "reduction_factor": budget.reduction_factor,
        "seed": budget.seed,
        "code_version": code_version(model),
        "fixed": {k: v for k, v in search_overrides(board, model).items() if k not in NOT_FINGERPRINTED},
        "defaults": search_defaults(board, model, space),
    }


def search_defaults(board: Leaderboard, model: str, space) -> dict:
    """What the search holds fixed from the plugin's YAML files: every key they give `model`
    (after the dataset's file and the board's overrides) that the space does not search. A
    changed default there (a new head switch in DLRREC.yaml) changes what every trial trained,
    so the saved search no longer stands for today's model."""
    searched = set(space.keys) | set(_SEARCH_OWNED)
    defaults = board.expected_defaults(CellSpec(model, model, FIRST_SEED, {}))
    return {k: v for k, v in defaults.items() if k not in searched}


def search_fingerprint(inputs: dict, old: Optional[dict]) -> str:
    """The digest a saved search is compared by. A record from before "defaults" was part of the
    inputs is compared without it (its defaults were not recorded, so nothing can say they changed)."""
    if old and "defaults" not in (old.get("inputs") or {"defaults": None}):
        inputs = {k: v for k, v in inputs.items() if k != "defaults"}
    return digest(inputs)


def digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _stale_inputs(old: dict, new: dict) -> str:
    ignore = {"space_files"}  # paths: what they hold is compared as "space"
    changed = sorted(k for k in new if k not in ignore and k in old and old[k] != new[k])
    if "defaults" in changed:  # name the keys: "defaults" alone does not say which file to look at
        keys = sorted(
            k for k in set(old["defaults"]) | set(new["defaults"]) if old["defaults"].get(k) != new["defaults"].get(k)
        )
        changed[changed.index("defaults")] = (
            f"defaults in properties/ ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})"
        )
    return ", ".join(changed) or "the record"


def _new_run_name(runs_root: str, dataset: str, model: str) -> str:
    """A search run name not used yet under runs_root (tune.run_search refuses a taken one)."""
    stem = f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, number = stem, 1
    while os.path.exists(os.path.join(runs_root, dataset, name)):
        number += 1
        name = f"{stem}-{number}"
    return name


def _why_search(old: Optional[dict], inputs: dict, retune: bool) -> str:
    """Why a model is searched (again): the log line's reason."""
    if retune:
        return "--retune"
    if not old:
        return "no saved search"
    if old.get("status") != "ok":
        return f"the last search failed ({old.get('error')})"
    return "changed since the last search: " + _stale_inputs(old.get("inputs") or {}, inputs)


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
    board: Leaderboard, model: str, space, budget: TuneBudget, retune: bool = False, search: Optional[Callable] = None
) -> TunedModel:
    """Search `model`'s space with `budget` (or reuse its saved search), keep the outputs in
    tuning/<MODEL>/; a search that fails is recorded as failed and returned, never raised
    (bad input is, as an InputError). `search`: tune.run_search (tests may pass their own)."""
    folder = tuning_dir(board.out_dir, model)
    record_path = os.path.join(folder, TUNING_RECORD)
    inputs = tuning_inputs(board, model, space, budget)
    old = _read_json(record_path)
    fingerprint = search_fingerprint(inputs, old)
    if not retune and old is not None and _reusable(old, fingerprint, folder):
        board.log(
            f"{model}: tuned before with the same budget, space and code; reusing {folder} (--retune to search again)"
        )
        return TunedModel(model, "ok", dict(old["params"]), True, old)
    board.log(f"{model}: tuning ({_why_search(old, inputs, retune)}): {budget.describe()}")
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
        f"trials: completed / pruned by ASHA / failed. Files: `{TUNING_DIRNAME}/<MODEL>/`.",
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
) -> tuple:
    """The tuned board (see the section comment): check everything, tune each model (or reuse
    its search), run the chosen configs over the seeds, write the board to
    results/<dataset>-tuned/. Returns (board, paths, tuned)."""
    from recbole_dlrrec.config.stack import ConfigStack
    from recbole_dlrrec.runtime.quick_start import prepare_dataset

    overrides = {**(overrides or {}), "epochs": budget.max_epochs}
    spaces = check_tuned_inputs(dataset, models, overrides, budget)
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
    paths = write_leaderboard(
        board,
        models,
        seeds,
        notes=[*tuned_header_notes(dataset, budget, spaces, results_dir), cell_metrics.THRESHOLD_NOTE, *notes],
        title="Tuned leaderboard",
        sections=[tuned_configs_markdown(tuned)],
        per_model=sorted({k for space in spaces.values() for k in space.params}),
    )
    log(f"tuned leaderboard written: {paths['md']}")
    return board, paths, tuned
