"""What a tuned board's saved search depends on, and how a rerun tells whether it still stands:
the inputs of a model's search (data files, space, budget, code, fixed settings, the plugin's
defaults), their digest, and the words for what changed."""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Optional

from recbole_dlrrec.config.registry import resolve_model
from recbole_dlrrec.experiments.board_cells import FIRST_SEED, NOT_FINGERPRINTED, CellSpec, Leaderboard
from recbole_dlrrec.experiments.code_digest import code_version, is_plugin_model

if TYPE_CHECKING:
    from recbole_dlrrec.experiments.tuned_board import TuneBudget

#: A tuned board's searches live in <board>/tuning/<MODEL>/, each with its record tuning.json.
TUNING_DIRNAME = "tuning"
TUNING_RECORD = "tuning.json"


def tuning_dir(out_dir: str, model: str) -> str:
    return os.path.join(out_dir, TUNING_DIRNAME, model)


# Settings the search driver owns (tune.run_search refuses them as fixed overrides).
SEARCH_OWNED = ("epochs", "seed", "eval_step", "checkpoint_dir", "gpu_id")
ASHA_INPUTS = ("grace_period", "reduction_factor")  # what only an ASHA search depends on


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
    return {k: v for k, v in board.overrides.items() if k not in variant and k not in SEARCH_OWNED}


def tuning_inputs(board: Leaderboard, model: str, space, budget: "TuneBudget") -> dict:
    """Everything a saved search depends on; a change in any of them retunes the model."""
    from recbole_dlrrec.config.stack import ConfigStack

    data_path = ConfigStack(model, board.dataset, (), board.overrides).data_path
    inputs = {
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
    if budget.trial_time_budget_s is not None:  # only when set: searches saved without one stay current
        inputs["trial_time_budget_s"] = float(budget.trial_time_budget_s)
    return _with_scheduler(inputs, budget.scheduler)


def _with_scheduler(inputs: dict, scheduler: str) -> dict:
    """An ASHA search's inputs are the ones recorded before the scheduler was a choice (its saved
    searches stay reusable); a search without pruning names its scheduler instead of ASHA's
    settings, so an ASHA search is never reused as one."""
    if scheduler == "asha":
        return inputs
    return {**{k: v for k, v in inputs.items() if k not in ASHA_INPUTS}, "scheduler": scheduler}


def search_defaults(board: Leaderboard, model: str, space) -> dict:
    """What the search holds fixed from the plugin's YAML files: every key they give `model`
    (after the dataset's file and the board's overrides) that the space does not search. A
    changed default there (a new head switch in DLRREC.yaml) changes what every trial trained,
    so the saved search no longer stands for today's model."""
    searched = set(space.keys) | set(SEARCH_OWNED)
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


def read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _stale_inputs(old: dict, new: dict) -> str:
    ignore = {"space_files", "scheduler"}  # paths: what they hold is compared as "space"; scheduler: below
    changed = sorted(k for k in new if k not in ignore and k in old and old[k] != new[k])
    if old.get("scheduler", "asha") != new.get("scheduler", "asha"):
        changed.insert(0, f"scheduler ({old.get('scheduler', 'asha')} -> {new.get('scheduler', 'asha')})")
    if "defaults" in changed:  # name the keys: "defaults" alone does not say which file to look at
        keys = sorted(
            k for k in set(old["defaults"]) | set(new["defaults"]) if old["defaults"].get(k) != new["defaults"].get(k)
        )
        changed[changed.index("defaults")] = (
            f"defaults in properties/ ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})"
        )
    return ", ".join(changed) or "the record"


def why_search(old: Optional[dict], inputs: dict, retune: bool) -> str:
    """Why a model is searched (again): the log line's reason."""
    if retune:
        return "--retune"
    if not old:
        return "no saved search"
    if old.get("status") != "ok":
        return f"the last search failed ({old.get('error')})"
    return "changed since the last search: " + _stale_inputs(old.get("inputs") or {}, inputs)
