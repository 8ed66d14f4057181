"""The cells of a leaderboard: one (model, seed) training run each, run once and remembered.

    Leaderboard("ml-100k").run_cells(cells(DEFAULT_MODELS, seeds_for(3)))
    board_report.write_leaderboard(board, models, seeds)   # the tables (board_report.py)

A *cell* is one (model, seed) training run through `quick_start.run`. Every cell gets the same
shared settings (SHARED_DEFAULTS + the user's --key=value: embedding size, epoch budget, early
stopping on the dataset's valid_metric) and the seed through config `seed`; one seed gives every
model the same split. A cell's result is saved as soon as it ends:

    results/<NAME>/cells/<MODEL>-seed<S>.json   status ok | failed, the run's results or the error
    results/<NAME>/cells/<MODEL>-seed<S>.npy    per-row test labels, scores, user and item ids
                                                and train counts (experiments/cell_rows.py)

A rerun skips a cell whose JSON says ok and whose settings fingerprint matches (the fingerprint
covers everything passed to the run: shared overrides, variant settings, seed), whose
code_version (code_digest.py) is today's and whose recorded config still has today's defaults;
failed cells and cells run with other settings or code are run again; `force` reruns everything.
Checkpoints go to saved/leaderboard/<NAME>/<cell>/ (kept for the t-SNE audit of paper.py).

The config itself is layered by config/stack.py (its one rule: variant < --key=value). The board
just does not hand a cell a shared override of a key its variant defines (registry.MODEL_VARIANTS,
e.g. DLRREC-noCL's w1 = w2 = 0; it logs a note instead), so a global --w1 cannot silently turn an
ablation into the full model.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.config.registry import resolve_model
from recbole_dlrrec.experiments import cell_rows
from recbole_dlrrec.experiments.code_digest import code_version

DLRREC_MODELS = (
    "DLRREC",
    "DLRREC-noText",
    "DLRREC-rawText",
    "DLRREC-V0",
    "DLRREC-noCL",
    "DLRREC-Lii",
    "DLRREC-Luu",
    "DLRREC-fp32",
)
BASELINE_MODELS = ("DLRM", "LR", "FM", "DeepFM", "WideDeep", "DCNV2", "xDeepFM", "AutoInt", "PNN", "DSSM", "NFM")
DEFAULT_MODELS = DLRREC_MODELS + BASELINE_MODELS
# Optional rows (--models ...,DCNV2Text): the strongest baselines with the frozen text vectors as
# inputs (models/text_fields.py), tuned on their RecBole model's space. Not in the default set:
# they need a dataset with text side files.
TEXT_BASELINE_MODELS = ("DCNV2Text", "DeepFMText", "WideDeepText")
FIRST_SEED = 2020  # seeds are FIRST_SEED, FIRST_SEED + 1, ...
DEFAULT_SEED_COUNT = 3
DEFAULT_RESULTS_DIR = "results"
DEFAULT_CHECKPOINT_ROOT = os.path.join("saved", "leaderboard")
# Shared by every cell unless the user overrides them: one embedding size for all models (the
# DLRM/DLRREC default; RecBole's baselines default to 10), quiet runs.
SHARED_DEFAULTS = {"embedding_size": 16, "show_progress": False, "state": "WARNING"}
# Settings that change how a run talks, not what it computes: left out of the fingerprint.
NOT_FINGERPRINTED = {"show_progress", "state", "checkpoint_dir"}
# Keys added to properties/ after cells were recorded, and the value that stands for what every
# earlier run did (plain RecBole float32 training with RecBole's own Adam): a cell recorded
# without the key is up to date when today's default is that value.
_ABSENT_MEANS = {
    "train_precision": "fp32",
    "fused_optimizer": False,
    "trust_cache": False,
    "cl_similarity": "swing",
    "cl_hard_pool": 50,
    # Unseen ids (nn/oov.py, models/dlrrec_oov.py, data/oov_token.py): off is what every earlier run did.
    "oov_embedding": False,
    "id_dropout_user": 0.0,
    "id_dropout_item": 0.0,
    "text_to_id": False,
    "text_to_id_hidden": [64],
    "oov_user_token": False,
    "oov_user_token_rate": 0.15,
    # Item semantic IDs (models/semantic_ids.py): off is what every earlier run did.
    "semantic_ids": 0,
    "semantic_id_codes": 64,
    # Item text from reviews (models/dlrrec_item_reviews.py): off is what every earlier run did.
    "item_review_text": False,
}


@dataclass
class CellSpec:
    """One run: `name` is the row label, `model` the registry name, `settings` extra config."""

    name: str
    model: str
    seed: int
    settings: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.name}-seed{self.seed}"


def seeds_for(count: int) -> List[int]:
    if int(count) < 1:
        raise ValueError(f"--seeds must be >= 1, got {count}")
    return [FIRST_SEED + i for i in range(int(count))]


def cells(models: Sequence[str], seeds: Sequence[int], settings: Optional[Dict[str, dict]] = None) -> List[CellSpec]:
    """Cells in run order: seed-major, so a cut-short run still has every model on one seed."""
    settings = settings or {}
    return [CellSpec(m, m, s, dict(settings.get(m, {}))) for s in seeds for m in models]


def is_dlrrec_family(name: str) -> bool:
    return name.upper().startswith("DLRREC")


def default_log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _TestScoreCapture:
    """An epoch callback that keeps the trainer, whose evaluator (a PredictionRecorder, from
    run(..., record_predictions=True)) holds the per-row labels and scores of the LAST
    evaluation: the test split, run after fit."""

    def __init__(self):
        self.labels: Optional[np.ndarray] = None
        self.scores: Optional[np.ndarray] = None
        self.row_ids: Optional[dict] = None
        self.trainer = None

    def close(self) -> None:
        """Take the recorded rows, and close the trainer's tensorboard writer (RecBole leaves
        one thread and file per run)."""
        recorder = getattr(self.trainer, "evaluator", None)
        self.labels = getattr(recorder, "labels", None)
        self.scores = getattr(recorder, "scores", None)
        self.row_ids = getattr(recorder, "row_ids", None)
        writer = getattr(self.trainer, "tensorboard", None)
        if writer is not None and hasattr(writer, "close"):
            writer.close()
        self.trainer = None

    def __call__(self, epoch_idx, valid_score, trainer) -> None:
        self.trainer = trainer


def atomic_write_json(path: str, payload: dict) -> str:
    return atomic.write_json(path, payload, indent=2, sort_keys=True, default=str)


class Leaderboard:
    """Runs and remembers the cells of one dataset (see the module docstring).

    Args:
        dataset: the dataset every cell trains on.
        out_name: folder under results_dir (default: the dataset name).
        overrides: shared --key=value settings (over SHARED_DEFAULTS).
        force: rerun cells that are already done.
        runner: the training function (default quick_start.run); tests may pass their own.
        threads: CPU threads for torch AND numba (SWING), applied before every cell; None
            leaves both as they are. numba's parallel kernels share the OpenMP runtime with
            torch, so a numba launch on more threads than torch's also widens torch's later
            parallel regions; capping both keeps a shared machine from thrashing.
    """

    def __init__(
        self,
        dataset: str,
        results_dir: str = DEFAULT_RESULTS_DIR,
        out_name: Optional[str] = None,
        overrides: Optional[dict] = None,
        force: bool = False,
        checkpoint_root: Optional[str] = None,
        log: Callable[[str], None] = default_log,
        runner: Optional[Callable[..., dict]] = None,
        threads: Optional[int] = None,
    ):
        self.dataset = dataset
        self.out_dir = os.path.join(results_dir, out_name or dataset)
        self.cells_dir = os.path.join(self.out_dir, "cells")
        self.overrides = {**SHARED_DEFAULTS, **(overrides or {})}
        user_checkpoints = self.overrides.pop("checkpoint_dir", None)
        self.checkpoint_root = checkpoint_root or os.path.join(
            user_checkpoints or DEFAULT_CHECKPOINT_ROOT, out_name or dataset
        )
        self.force = force
        self.log = log
        self.runner = runner
        self.threads = threads
        self.records: Dict[str, dict] = {}
        self._masked_warned: set = set()

    # -- paths and settings -----------------------------------------------------------------
    def cell_path(self, spec: CellSpec) -> str:
        return os.path.join(self.cells_dir, f"{spec.key}.json")

    def scores_path(self, spec: CellSpec) -> str:
        return os.path.join(self.cells_dir, f"{spec.key}.npy")

    def cell_config(self, spec: CellSpec) -> dict:
        """The config_dict (--key=value layer) of a cell: the shared overrides without those its
        variant defines (the variant's own values stand in), then the cell's own settings."""
        _, variant = resolve_model(spec.model)
        masked = {k for k in variant if k in self.overrides and self.overrides[k] != variant[k]}
        for key in sorted(masked - self._masked_warned):
            self.log(
                f"note: --{key}={self.overrides[key]!r} does not apply to variants that define {key} "
                f"(e.g. {spec.model}: {key}={variant[key]!r})"
            )
            self._masked_warned.add(key)
        config = {**self.overrides, **variant, **spec.settings, "seed": int(spec.seed)}
        config["checkpoint_dir"] = os.path.join(self.checkpoint_root, spec.key)
        return config

    def fingerprint(self, spec: CellSpec) -> str:
        payload = {k: v for k, v in self.cell_config(spec).items() if k not in NOT_FINGERPRINTED}
        payload["__model__"] = spec.model
        payload["__dataset__"] = self.dataset
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    # -- cell records -----------------------------------------------------------------------
    def load_cell(self, spec: CellSpec) -> Optional[dict]:
        path = self.cell_path(spec)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                record = json.load(handle)
        except (OSError, json.JSONDecodeError):
            return None
        return record if isinstance(record, dict) and "status" in record else None

    def expected_defaults(self, spec: CellSpec) -> dict:
        """Key -> value the cell would get today from the plugin's own YAML files (overall,
        swing, the model's file), after the dataset's file and the cell's config_dict are
        layered on top, for the keys those plugin files define."""
        from recbole_dlrrec.config.stack import ConfigStack, read_yaml
        from recbole_dlrrec.runtime.quick_start import _plain

        stack = ConfigStack(spec.model, self.dataset, (), self.cell_config(spec))
        plugin_keys = {key for path in stack.plugin_files() for key in read_yaml(path)}
        layered, _ = stack.merged()
        return {k: _plain(layered[k]) for k in sorted(plugin_keys) if k not in NOT_FINGERPRINTED}

    def stale_reason(self, spec: CellSpec, record: dict) -> Optional[str]:
        """Why a finished cell no longer stands for today's settings and code, or None."""
        if record.get("fingerprint") != self.fingerprint(spec):
            return "other --key=value settings"
        recorded_code = record.get("code_version")
        if recorded_code is not None and recorded_code != code_version(spec.model):
            return "other model code"
        ran = (record.get("result") or {}).get("config") or {}
        if not ran:  # nothing recorded to compare against
            return None
        missing = object()
        changed = sorted(
            k for k, v in self.expected_defaults(spec).items() if ran.get(k, _ABSENT_MEANS.get(k, missing)) != v
        )
        if changed:
            return (
                "changed defaults in properties/ ("
                + ", ".join(changed[:6])
                + (", ..." if len(changed) > 6 else "")
                + ")"
            )
        return None

    def is_done(self, spec: CellSpec, record: Optional[dict]) -> bool:
        """ok, same settings, same code, and the defaults it ran with are still today's (cells
        from before code_version was recorded are judged by their recorded config alone)."""
        return (
            record is not None
            and bool(record)
            and record.get("status") == "ok"
            and self.stale_reason(spec, record) is None
        )

    def test_scores(self, spec: CellSpec):
        """The per-row test file of a finished cell (cell_rows.CellRows: labels, scores and, for
        cells run since they were kept, ids and train counts), or None when not stored."""
        record = self.records.get(spec.key) or self.load_cell(spec)
        if not record or record.get("status") != "ok" or not record.get("scores_file"):
            return None
        path = os.path.join(self.cells_dir, record["scores_file"])
        if not os.path.isfile(path):
            return None
        return cell_rows.load(path)

    # -- running ----------------------------------------------------------------------------
    def run_cells(self, specs: Sequence[CellSpec]) -> List[dict]:
        """Run every cell not already done (resumable); returns their records in order."""
        specs = list(specs)
        todo: List[CellSpec] = []
        out: Dict[str, dict] = {}
        for spec in specs:
            record = None if self.force else self.load_cell(spec)
            if record is not None and self.is_done(spec, record):
                out[spec.key] = record
            else:
                if record is not None and record.get("status") == "failed":
                    self.log(f"{spec.key}: failed before ({record.get('error')}); running it again")
                elif record is not None and record.get("status") == "ok":
                    self.log(f"{spec.key}: finished before with {self.stale_reason(spec, record)}; running it again")
                todo.append(spec)
        skipped = len(specs) - len(todo)
        if skipped:
            self.log(f"{self.dataset}: {skipped} of {len(specs)} cells already done, skipped (use --force to rerun)")
        durations: List[float] = []
        for position, spec in enumerate(todo, start=1):
            remaining = len(todo) - position
            eta = (
                f"ETA {format_seconds(float(np.mean(durations)) * (remaining + 1))}"
                if durations
                else "ETA after the first cell"
            )
            self.log(
                f"[{position}/{len(todo)}] {self.dataset}: {spec.name} seed {spec.seed} running; "
                f"{remaining} more after it; {eta}"
            )
            started = time.time()
            record = self._run_one(spec)
            durations.append(time.time() - started)
            out[spec.key] = record
            if record["status"] == "ok":
                result = record["result"]
                self.log(
                    f"[{position}/{len(todo)}] {spec.key} done in {format_seconds(durations[-1])}: "
                    f"test AUC {result['test_result'].get('auc', float('nan')):.4f}, best epoch {result['best_epoch']}"
                )
            else:
                self.log(
                    f"[{position}/{len(todo)}] {spec.key} FAILED in {format_seconds(durations[-1])}: {record['error']}"
                )
        self.records.update(out)
        return [out[spec.key] for spec in specs]

    def apply_threads(self) -> None:
        if self.threads is None:
            return
        from recbole_dlrrec.runtime.threads import use_threads

        use_threads(int(self.threads))

    def _run_one(self, spec: CellSpec) -> dict:
        os.makedirs(self.cells_dir, exist_ok=True)
        self.apply_threads()
        config_dict = self.cell_config(spec)
        _clear_checkpoints(config_dict["checkpoint_dir"])
        base = {
            "name": spec.name,
            "model": spec.model,
            "seed": int(spec.seed),
            "dataset": self.dataset,
            "settings": spec.settings,
            "overrides": {k: v for k, v in config_dict.items() if k != "checkpoint_dir"},
            "fingerprint": self.fingerprint(spec),
            "code_version": code_version(spec.model),
        }
        started = time.time()
        capture = _TestScoreCapture()
        try:
            runner = self.runner
            if runner is None:
                from recbole_dlrrec.runtime.quick_start import run

                runner = run
            result = runner(
                spec.model,
                self.dataset,
                config_dict=config_dict,
                saved=True,
                result_file=self.cell_path(spec),
                epoch_callbacks=[capture],
                record_predictions=True,
            )
            if not result.get("test_result"):
                raise RuntimeError("the run returned no test result")
        except Exception as exc:  # a failing model is recorded; the others go on
            capture.close()
            message = " ".join(str(exc).split()) or type(exc).__name__
            record = {
                **base,
                "status": "failed",
                "error": f"{type(exc).__name__}: {message}"[:500],
                "traceback": traceback.format_exc()[-4000:],
                "seconds": round(time.time() - started, 3),
                "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            atomic_write_json(self.cell_path(spec), record)
            return record
        capture.close()
        record = {
            **base,
            "status": "ok",
            "error": None,
            "seconds": round(time.time() - started, 3),
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "scores_file": self._save_rows(spec, capture),
            "result": result,
        }
        atomic_write_json(self.cell_path(spec), record)
        return record

    def _save_rows(self, spec: CellSpec, capture: "_TestScoreCapture") -> Optional[str]:
        """The cell's per-row test file (cell_rows), when the run recorded its rows; its name."""
        rows = cell_rows.from_recorder(capture.labels, capture.scores, capture.row_ids)
        if rows is None:
            return None
        cell_rows.save(self.scores_path(spec), rows)
        return os.path.basename(self.scores_path(spec))

    def record_failed(self, spec: CellSpec, error: str) -> dict:
        """Record a cell that could not run (e.g. its model's search failed) as failed: the
        board shows why, and a rerun runs it."""
        os.makedirs(self.cells_dir, exist_ok=True)
        record = {
            "name": spec.name,
            "model": spec.model,
            "seed": int(spec.seed),
            "dataset": self.dataset,
            "settings": spec.settings,
            "fingerprint": self.fingerprint(spec),
            "code_version": code_version(spec.model),
            "status": "failed",
            "error": error[:500],
            "seconds": 0.0,
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        atomic_write_json(self.cell_path(spec), record)
        self.records[spec.key] = record
        return record

    # -- reading back -----------------------------------------------------------------------
    def records_for(self, specs: Iterable[CellSpec]) -> Dict[str, List[dict]]:
        """name -> records (in seed order) of the given cells that exist."""
        grouped: Dict[str, List[dict]] = {}
        for spec in specs:
            record = self.records.get(spec.key) or self.load_cell(spec)
            grouped.setdefault(spec.name, [])
            if record is not None:
                grouped[spec.name].append(record)
        return grouped


def _clear_checkpoints(folder: str) -> None:
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if name.endswith(".pth"):
                os.remove(os.path.join(folder, name))
