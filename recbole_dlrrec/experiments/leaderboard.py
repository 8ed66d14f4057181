"""Many models x seeds on one dataset -> a leaderboard (md, csv), an AUC chart, significance.

    Leaderboard("ml-100k").run_cells(cells(DEFAULT_MODELS, seeds_for(3)))
    write_leaderboard(board, models, seeds)        # results/ml-100k/leaderboard.{md,csv}, leaderboard_auc.png

A *cell* is one (model, seed) training run through `quick_start.run`. Every cell gets the same
shared settings (SHARED_DEFAULTS + the user's --key=value: embedding size, epoch budget, early
stopping on the dataset's valid_metric) and the seed through config `seed`; one seed gives every
model the same split. A cell's result is saved as soon as it ends:

    results/<NAME>/cells/<MODEL>-seed<S>.json   status ok | failed, the run's results or the error
    results/<NAME>/cells/<MODEL>-seed<S>.npy    per-row test labels, scores, user and item ids
                                                and train counts (experiments/cell_rows.py)

A rerun skips a cell whose JSON says ok and whose settings fingerprint matches (the fingerprint
covers everything passed to the run: shared overrides, variant settings, seed); failed cells and
cells run with other settings are run again; `force` reruns everything. Checkpoints go to
saved/leaderboard/<NAME>/<cell>/ (kept for the t-SNE audit of experiments.py).

The config itself is layered by config/stack.py (its one rule: variant < --key=value). The board
just does not hand a cell a shared override of a key its variant defines (registry.MODEL_VARIANTS,
e.g. DLRREC-noCL's w1 = w2 = 0; it logs a note instead), so a global --w1 cannot silently turn an
ablation into the full model.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import sys
import shutil
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from recbole_dlrrec import atomic
from recbole_dlrrec.config.registry import MODEL_VARIANTS, resolve_model
from recbole_dlrrec.experiments import board_significance, cell_metrics, cell_rows
from recbole_dlrrec.errors import InputError

DLRREC_MODELS = ("DLRREC", "DLRREC-noText", "DLRREC-rawText", "DLRREC-V0", "DLRREC-noCL", "DLRREC-Lii", "DLRREC-Luu",
                 "DLRREC-fp32")
BASELINE_MODELS = ("DLRM", "LR", "FM", "DeepFM", "WideDeep", "DCNV2", "xDeepFM", "AutoInt", "PNN", "DSSM", "NFM")
DEFAULT_MODELS = DLRREC_MODELS + BASELINE_MODELS
FIRST_SEED = 2020  # seeds are FIRST_SEED, FIRST_SEED + 1, ...
DEFAULT_SEED_COUNT = 3
DEFAULT_RESULTS_DIR = "results"
DEFAULT_CHECKPOINT_ROOT = os.path.join("saved", "leaderboard")
# Shared by every cell unless the user overrides them: one embedding size for all models (the
# DLRM/DLRREC default; RecBole's baselines default to 10), quiet runs.
SHARED_DEFAULTS = {"embedding_size": 16, "show_progress": False, "state": "WARNING"}
# Settings that change how a run talks, not what it computes: left out of the fingerprint.
_NOT_FINGERPRINTED = {"show_progress", "state", "checkpoint_dir"}
# Keys added to properties/ after cells were recorded, and the value that stands for what every
# earlier run did (plain RecBole float32 training with RecBole's own Adam): a cell recorded
# without the key is up to date when today's default is that value.
_ABSENT_MEANS = {"train_precision": "fp32", "fused_optimizer": False, "trust_cache": False,
                 "cl_similarity": "swing", "cl_hard_pool": 50}
DECIMALS = 4


@dataclass(frozen=True)
class Metric:
    key: str  # key in the run's test_result
    label: str
    bigger_is_better: bool


METRICS = (
    Metric("auc", "AUC", True),
    Metric("logloss", "LogLoss", False),
    Metric("accuracy", "Accuracy", True),
    Metric("fpr", "FPR", False),
    Metric("f1", "F1", True),
)


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


def _default_log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# The plugin's sources every model's numbers depend on: the run loop (config stack, loaders,
# training step, metrics, evaluation) and RecBole's fixes. config/registry.py is left out: it
# only maps names to classes (a new DLRREC variant must not rerun RecBole's cells).
_RUN_CODE = tuple(os.path.join("config", name) for name in ("__init__.py", "stack.py", "keys.py", "paths.py")) + (
    "runtime", "patches.py")
# ... and, for the plugin's own models (DLRM, DLRREC and its variants), the model code and the
# reader of the text side files (RecBole's models never read those).
_MODEL_CODE = ("nn", "models", "swing", os.path.join("config", "options.py"), os.path.join("data", "text_vectors.py"))


def _source_digest(entries) -> str:
    """sha256 (16 hex) over the relative paths and bytes of the package's .py files under `entries`."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for entry in entries:
        path = os.path.join(package, entry)
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".py")) if os.path.isdir(path) else [path]
        for name in files:
            if os.path.isfile(name):
                digest.update(os.path.relpath(name, package).encode("utf-8"))
                with open(name, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:16]


def _is_plugin_model(model: str) -> bool:
    """True for the plugin's own models (DLRM, DLRREC and its variants), False for RecBole's."""
    model_class, _ = resolve_model(model)
    return model_class.__module__.startswith("recbole_dlrrec")


def code_version(model: str) -> str:
    """What code a model's cell ran. RecBole's models: RecBole's version plus a hash of every
    plugin module on their path (config stack, loaders, training step, metrics, patches); the
    plugin's models: that hash over their model code too. A cell whose code_version differs from
    today's is run again, so one table never mixes code versions."""
    if not _is_plugin_model(model):
        import recbole

        return f"recbole-{recbole.__version__}-{_source_digest(_RUN_CODE)}"
    return "plugin-" + _source_digest(_MODEL_CODE + _RUN_CODE)


def _format_seconds(seconds: float) -> str:
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


# Kept under these names: experiments.py and others import them.
atomic_write_text = atomic.write_text


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
        log: Callable[[str], None] = _default_log,
        runner: Optional[Callable[..., dict]] = None,
        threads: Optional[int] = None,
    ):
        self.dataset = dataset
        self.out_dir = os.path.join(results_dir, out_name or dataset)
        self.cells_dir = os.path.join(self.out_dir, "cells")
        self.overrides = {**SHARED_DEFAULTS, **(overrides or {})}
        user_checkpoints = self.overrides.pop("checkpoint_dir", None)
        self.checkpoint_root = checkpoint_root or os.path.join(user_checkpoints or DEFAULT_CHECKPOINT_ROOT, out_name or dataset)
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
            self.log(f"note: --{key}={self.overrides[key]!r} does not apply to variants that define {key} "
                     f"(e.g. {spec.model}: {key}={variant[key]!r})")
            self._masked_warned.add(key)
        config = {**self.overrides, **variant, **spec.settings, "seed": int(spec.seed)}
        config["checkpoint_dir"] = os.path.join(self.checkpoint_root, spec.key)
        return config

    def fingerprint(self, spec: CellSpec) -> str:
        payload = {k: v for k, v in self.cell_config(spec).items() if k not in _NOT_FINGERPRINTED}
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
        return {k: _plain(layered[k]) for k in sorted(plugin_keys) if k not in _NOT_FINGERPRINTED}

    def stale_reason(self, spec: CellSpec, record: Optional[dict]) -> Optional[str]:
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
        changed = sorted(k for k, v in self.expected_defaults(spec).items() if ran.get(k, _ABSENT_MEANS.get(k, missing)) != v)
        if changed:
            return "changed defaults in properties/ (" + ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "") + ")"
        return None

    def is_done(self, spec: CellSpec, record: Optional[dict]) -> bool:
        """ok, same settings, same code, and the defaults it ran with are still today's (cells
        from before code_version was recorded are judged by their recorded config alone)."""
        return bool(record) and record.get("status") == "ok" and self.stale_reason(spec, record) is None

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
        todo, out = [], {}
        for spec in specs:
            record = None if self.force else self.load_cell(spec)
            if self.is_done(spec, record):
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
            eta = f"ETA {_format_seconds(np.mean(durations) * (remaining + 1))}" if durations else "ETA after the first cell"
            self.log(f"[{position}/{len(todo)}] {self.dataset}: {spec.name} seed {spec.seed} running; "
                     f"{remaining} more after it; {eta}")
            started = time.time()
            record = self._run_one(spec)
            durations.append(time.time() - started)
            out[spec.key] = record
            if record["status"] == "ok":
                result = record["result"]
                self.log(f"[{position}/{len(todo)}] {spec.key} done in {_format_seconds(durations[-1])}: "
                         f"test AUC {result['test_result'].get('auc', float('nan')):.4f}, best epoch {result['best_epoch']}")
            else:
                self.log(f"[{position}/{len(todo)}] {spec.key} FAILED in {_format_seconds(durations[-1])}: {record['error']}")
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
            "name": spec.name, "model": spec.model, "seed": int(spec.seed), "dataset": self.dataset,
            "settings": spec.settings, "overrides": {k: v for k, v in config_dict.items() if k != "checkpoint_dir"},
            "fingerprint": self.fingerprint(spec),
            "code_version": code_version(spec.model),
        }
        started = time.time()
        capture = _TestScoreCapture()
        try:
            runner = self.runner
            if runner is None:
                from recbole_dlrrec.runtime.quick_start import run as runner
            result = runner(spec.model, self.dataset, config_dict=config_dict, saved=True,
                            result_file=self.cell_path(spec), epoch_callbacks=[capture], record_predictions=True)
            if not result.get("test_result"):
                raise RuntimeError("the run returned no test result")
        except Exception as exc:  # a failing model is recorded; the others go on
            capture.close()
            message = " ".join(str(exc).split()) or type(exc).__name__
            record = {**base, "status": "failed", "error": f"{type(exc).__name__}: {message}"[:500],
                      "traceback": traceback.format_exc()[-4000:], "seconds": round(time.time() - started, 3),
                      "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
            atomic_write_json(self.cell_path(spec), record)
            return record
        capture.close()
        scores_file = None
        rows = cell_rows.from_recorder(capture.labels, capture.scores, capture.row_ids)
        if rows is not None:
            cell_rows.save(self.scores_path(spec), rows)
            scores_file = os.path.basename(self.scores_path(spec))
        record = {**base, "status": "ok", "error": None, "seconds": round(time.time() - started, 3),
                  "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"), "scores_file": scores_file,
                  "result": result}
        atomic_write_json(self.cell_path(spec), record)
        return record

    def record_failed(self, spec: CellSpec, error: str) -> dict:
        """Record a cell that could not run (e.g. its model's search failed) as failed: the
        board shows why, and a rerun runs it."""
        os.makedirs(self.cells_dir, exist_ok=True)
        record = {"name": spec.name, "model": spec.model, "seed": int(spec.seed), "dataset": self.dataset,
                  "settings": spec.settings, "fingerprint": self.fingerprint(spec), "code_version": code_version(spec.model),
                  "status": "failed", "error": error[:500], "seconds": 0.0, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
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


# -- summaries ------------------------------------------------------------------------------
@dataclass
class Row:
    """One model's line of a table: mean and std over its successful seeds."""

    name: str
    status: str  # ok | partial (some seeds failed) | failed | missing
    seeds_ok: int
    seeds_total: int
    metrics: Dict[str, tuple] = field(default_factory=dict)  # key -> (mean, std)
    valid_auc: float = float("nan")
    best_epoch: float = float("nan")
    seconds_per_epoch: float = float("nan")
    num_parameters: Optional[int] = None
    error: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def has_numbers(self) -> bool:
        return self.seeds_ok > 0


def _mean_std(values: Sequence[float]) -> tuple:
    values = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not values:
        return (float("nan"), float("nan"))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return (float(np.mean(values)), std)


def summarize(name: str, records: Sequence[dict], seeds_total: Optional[int] = None) -> Row:
    ok = [r for r in records if r.get("status") == "ok"]
    failed = [r for r in records if r.get("status") == "failed"]
    total = seeds_total if seeds_total is not None else len(records)
    if not records:
        return Row(name, "missing", 0, total, error="not run")
    status = "ok" if not failed and len(ok) == total else ("failed" if not ok else "partial")
    row = Row(name, status, len(ok), total, error=failed[0]["error"] if failed else None)
    if not ok:
        return row
    results = [r["result"] for r in ok]
    for metric in METRICS:
        row.metrics[metric.key] = _mean_std([res["test_result"].get(metric.key) for res in results])
    valid_metric = str(results[0].get("valid_metric") or "auc").lower()
    row.valid_auc = _mean_std([(res.get("valid_result") or {}).get("auc", res.get("best_valid_score") if valid_metric == "auc" else None)
                               for res in results])[0]
    row.best_epoch = _mean_std([res.get("best_epoch") for res in results])[0]
    row.seconds_per_epoch = _mean_std([res["timings"].get("seconds_per_epoch") for res in results])[0]
    row.num_parameters = int(results[0].get("num_parameters") or 0)
    return row


def best_flags(rows: Sequence[Row], metrics: Sequence[Metric] = METRICS, timing: bool = True) -> Dict[str, set]:
    """column key -> names of the rows holding the best value (ties at the shown precision)."""
    flags: Dict[str, set] = {}
    scored = [r for r in rows if r.has_numbers]
    columns = [(m.key, m.bigger_is_better, lambda r, k=m.key: r.metrics[k][0]) for m in metrics]
    if timing:
        columns.append(("seconds_per_epoch", False, lambda r: r.seconds_per_epoch))
    for key, bigger, getter in columns:
        values = {r.name: round(getter(r), DECIMALS) for r in scored if np.isfinite(getter(r))}
        if not values:
            flags[key] = set()
            continue
        best = max(values.values()) if bigger else min(values.values())
        flags[key] = {name for name, value in values.items() if value == best}
    return flags


def sort_rows(rows: Sequence[Row]) -> List[Row]:
    """Rows with numbers by mean test AUC (best first), then the failed / missing ones."""
    def key(row: Row):
        auc = row.metrics.get("auc", (float("nan"),))[0] if row.has_numbers else float("nan")
        return (0 if row.has_numbers else 1, -(auc if np.isfinite(auc) else -1e9), row.name)

    return sorted(rows, key=key)


def _fmt(value, decimals: int = DECIMALS) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{decimals}f}"


def _fmt_mean_std(pair: tuple) -> str:
    mean, std = pair
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{DECIMALS}f} ± {std:.{DECIMALS}f}" if np.isfinite(std) else f"{mean:.{DECIMALS}f}"


@dataclass
class Column:
    """An extra column of a table: header, csv key, and how to read it from a Row."""

    header: str
    key: str
    get: Callable[[Row], object]
    fmt: Callable[[object], str] = str


STANDARD_TAIL = (
    Column("Valid AUC", "valid_auc_mean", lambda r: r.valid_auc, _fmt),
    Column("Best epoch", "best_epoch_mean", lambda r: r.best_epoch, lambda v: _fmt(v, 1)),
    Column("s/epoch", "seconds_per_epoch_mean", lambda r: r.seconds_per_epoch, lambda v: _fmt(v, 2)),
    Column("Params", "num_parameters", lambda r: r.num_parameters, lambda v: f"{v:,}" if v else "n/a"),
)


def table_markdown(rows: Sequence[Row], flags: Dict[str, set], extra: Sequence[Column] = (), tail: Sequence[Column] = STANDARD_TAIL,
                   metrics: Sequence[Metric] = METRICS) -> str:
    headers = ["Model", *[c.header for c in extra], *[f"Test {m.label}" for m in metrics], *[c.header for c in tail], "Seeds", "Notes"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        cells = [row.name, *[c.fmt(c.get(row)) for c in extra]]
        for metric in metrics:
            if not row.has_numbers:
                cells.append("failed" if row.status == "failed" else "n/a")
                continue
            text = _fmt_mean_std(row.metrics[metric.key])
            cells.append(f"**{text}**" if row.name in flags.get(metric.key, set()) else text)
        for column in tail:
            text = column.fmt(column.get(row)) if row.has_numbers else "n/a"
            cells.append(f"**{text}**" if row.name in flags.get(column.key.replace("_mean", ""), set()) and row.has_numbers else text)
        cells.append(f"{row.seeds_ok}/{row.seeds_total}")
        note = {"failed": f"failed: {row.error}", "partial": f"some seeds failed: {row.error}", "missing": "not run"}.get(row.status, "")
        cells.append(note.replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_csv(rows: Sequence[Row], flags: Dict[str, set], extra: Sequence[Column] = (), tail: Sequence[Column] = STANDARD_TAIL,
              metrics: Sequence[Metric] = METRICS) -> str:
    header = ["model", "status", "seeds_ok", "seeds", *[c.key for c in extra]]
    for metric in metrics:
        header += [f"{metric.key}_mean", f"{metric.key}_std", f"{metric.key}_best"]
    header += [c.key for c in tail] + ["seconds_per_epoch_best", "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        values = [row.name, row.status, row.seeds_ok, row.seeds_total, *[_csv_value(c.get(row)) for c in extra]]
        for metric in metrics:
            mean, std = row.metrics.get(metric.key, (float("nan"), float("nan")))
            values += [_csv_value(mean), _csv_value(std), int(row.name in flags.get(metric.key, set()))]
        values += [_csv_value(c.get(row)) if row.has_numbers else "" for c in tail]
        values += [int(row.name in flags.get("seconds_per_epoch", set())), row.error or ""]
        writer.writerow(values)
    return buffer.getvalue()


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not np.isfinite(value) else round(value, 6)
    return value


def machine_description() -> str:
    try:
        import torch

        threads = f", torch {torch.__version__} on {torch.get_num_threads()} thread(s)"
    except ImportError:  # pragma: no cover - torch is a dependency
        threads = ""
    return f"{platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs{threads}, Python {platform.python_version()}"


def run_settings(records: Iterable[dict]) -> dict:
    """The budget and selection settings actually used, read from a finished cell's config."""
    for record in records:
        if record.get("status") == "ok":
            config = record["result"].get("config", {})
            return {key: config.get(key) for key in ("epochs", "stopping_step", "valid_metric", "eval_args",
                                                     "benchmark_filename", "embedding_size", "learning_rate",
                                                     "train_batch_size", "eval_step")}
    return {}


DLRREC_KEYS = ("reduction", "reduction_dim", "reduction_hidden", "w1", "w2", "tau", "cl_repr", "cl_negatives",
               "cl_num_negatives", "pos_weight", "first_order", "top_mlp", "train_precision", "enable_amp",
               "fused_optimizer")


def dlrrec_settings(records: Iterable[dict]) -> str:
    """The full DLRREC model's settings as run, e.g. 'w1=0.1, w2=0.1, tau=0.2, ...' ('' if none;
    'differ between seeds: ...' if its cells disagree)."""
    seen = []
    for record in records:
        if record.get("status") == "ok" and record.get("name") == "DLRREC":
            config = record["result"].get("config", {})
            text = ", ".join(f"{k}={config.get(k)}" for k in DLRREC_KEYS if k in config)
            if text not in seen:
                seen.append(text)
    if len(seen) > 1:
        return "differ between seeds: " + " | ".join(seen)
    return seen[0] if seen else ""


def cap_note(records: Iterable[dict], cap, window: int = 10) -> str:
    """Which models trained to the epoch cap instead of stopping early, and how much validation
    they still gained over their last `window` epochs there ('' when none did): a row whose
    curve was still rising at the cap would have won more from a higher one."""
    if not cap:
        return ""
    hit: Dict[str, List[float]] = {}
    total: Dict[str, int] = {}
    for record in records:
        if record.get("status") != "ok":
            continue
        result = record["result"]
        total[record["name"]] = total.get(record["name"], 0) + 1
        curve = [e["valid_score"] for e in result.get("epochs") or ()]
        if len(curve) < int(cap) or len(curve) <= window:
            continue
        pick = max if result.get("config", {}).get("valid_metric_bigger", True) else min
        hit.setdefault(record["name"], []).append(abs(pick(curve) - pick(curve[:-window])))
    if not hit:
        return ""
    parts = [f"{name} ({len(gains)} of {total[name]} seeds; validation gained at most {max(gains):.4f} over the last "
             f"{window} epochs)" for name, gains in sorted(hit.items())]
    return f"Trained to the {cap}-epoch cap without stopping early: " + ", ".join(parts) + "."


def _split_description(settings: dict) -> str:
    if settings.get("benchmark_filename"):
        return f"fixed benchmark files ({', '.join(settings['benchmark_filename'])})"
    split = (settings.get("eval_args") or {}).get("split")
    return f"RecBole split {split} (same split for every model of a seed)" if split else "as the dataset config defines"


def header_notes(dataset: str, seeds: Sequence[int], records: Sequence[dict], overrides: dict, models: Sequence[str],
                 notes: Sequence[str] = (), per_model: Sequence[str] = ()) -> List[str]:
    settings = run_settings(records)
    settings.update({key: "tuned per model" for key in per_model if key in settings})
    overrides = {k: v for k, v in overrides.items() if k not in per_model}
    lines = [
        f"- Dataset: `{dataset}`; split: {_split_description(settings)}.",
        f"- Seeds: {', '.join(str(s) for s in seeds)} (config `seed`); cells show mean ± sample std over seeds.",
        f"- Budget: at most {settings.get('epochs', 'n/a')} epochs, early stopping after {settings.get('stopping_step', 'n/a')} "
        f"epochs without a better validation {settings.get('valid_metric', 'n/a')}; embedding_size {settings.get('embedding_size', 'n/a')}, "
        f"learning_rate {settings.get('learning_rate', 'n/a')}, batch {settings.get('train_batch_size', 'n/a')} for every model.",
        f"- Selection on validation: each run's best epoch is chosen on validation {settings.get('valid_metric', 'AUC')} and its "
        "checkpoint is tested; test numbers never choose anything.",
        f"- Shared overrides: {', '.join(f'{k}={v}' for k, v in sorted(overrides.items())) or 'none'}.",
        f"- Machine: {machine_description()}.",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "- Bold: best value of its column (highest AUC / Accuracy / F1, lowest LogLoss / FPR / s per epoch).",
    ]
    dlrrec = dlrrec_settings(records)
    if dlrrec:
        lines.append(f"- DLRREC settings (properties/model/DLRREC.yaml when run; variants change only their own keys): {dlrrec}.")
    bf16 = sorted({r["name"] for r in records if r.get("status") == "ok"
                   and r["result"].get("config", {}).get("enable_amp")})
    if bf16:
        lines.append(f"- Training precision: bf16 autocast (train_precision, recbole_dlrrec/training.py) for "
                     f"{', '.join(bf16)}; float32 for the others. Evaluation is float32 for all.")
    capped = cap_note(records, settings.get("epochs"))
    if capped:
        lines.append(f"- {capped}")
    left_out = [m for m in DEFAULT_MODELS if m not in models]
    if left_out:
        lines.append(f"- Cut: models left out of the default set: {', '.join(left_out)}.")
    lines += [f"- {note}" for note in notes]
    return lines


# -- the leaderboard and its significance test -----------------------------------------------
def build_rows(board: Leaderboard, models: Sequence[str], seeds: Sequence[int],
               settings: Optional[Dict[str, dict]] = None) -> List[Row]:
    grouped = board.records_for(cells(models, seeds, settings))
    return [summarize(name, grouped.get(name, []), len(seeds)) for name in models]


# The significance tables live in board_significance.py (kept under these names for callers).
from recbole_dlrrec.experiments.board_significance import (  # noqa: E402
    significance_csv, significance_markdown, significance_rows)


def write_leaderboard(board: Leaderboard, models: Sequence[str], seeds: Sequence[int], notes: Sequence[str] = (),
                      title: Optional[str] = None, n_boot: int = 1000, sections: Sequence[str] = (),
                      per_model: Sequence[str] = ()) -> Dict[str, str]:
    """Write leaderboard.{md,csv}, leaderboard_auc.png and significance.{md,csv}; returns paths.
    `sections`: markdown blocks appended to leaderboard.md (the tuned board's configurations);
    `per_model`: keys whose value differs per model (tuned), not stated as one value in the header."""
    from recbole_dlrrec.experiments import plots

    rows = build_rows(board, models, seeds)
    ordered = sort_rows(rows)
    flags = best_flags(ordered)
    all_records = [r for rs in board.records_for(cells(models, seeds)).values() for r in rs]
    sig_entries = significance_rows(board, models, seeds, rows, n_boot=n_boot)
    # The same backbone without text: what the text path and the heads add, whichever baseline wins.
    has_dlrm = any(r.name == "DLRM" and r.has_numbers for r in rows)
    vs_dlrm = significance_rows(board, models, seeds, rows, n_boot=n_boot, baseline="DLRM") if has_dlrm else []
    method = board_significance.method_lines(board.dataset, board_significance.holm_over_board(sig_entries, vs_dlrm), n_boot)
    out = board.out_dir
    paths = {
        "md": os.path.join(out, "leaderboard.md"),
        "csv": os.path.join(out, "leaderboard.csv"),
        "png": os.path.join(out, "leaderboard_auc.png"),
        "significance_md": os.path.join(out, "significance.md"),
        "significance_csv": os.path.join(out, "significance.csv"),
    }
    lines = [f"# {title or 'Leaderboard'}: {board.dataset}", ""]
    lines += header_notes(board.dataset, seeds, all_records, {k: v for k, v in board.overrides.items()
                                                              if k not in ("show_progress", "state")}, models, notes,
                          per_model=per_model)
    lines += ["", table_markdown(ordered, flags), "", "## Significance (DLRREC family vs the best baseline)", "",
              "Best baseline = best mean VALID AUC among non-DLRREC models. The bootstrap CI covers test-set sampling with "
              "the trained models fixed; the tests over seeds cover training randomness, with little power at a handful of seeds.",
              "", *method, "", significance_markdown(sig_entries), ""]
    if vs_dlrm:
        lines += ["## DLRREC family vs DLRM (the same backbone without text)", "",
                  "The same tests against DLRM, whatever its validation rank: what the text path and the "
                  "contrastive heads add to the backbone they share.", "", significance_markdown(vs_dlrm), ""]
    lines += [cell_metrics.metrics_section(board, models, seeds), ""]
    lines += [f"Chart: `{os.path.basename(paths['png'])}`; per-cell results: `cells/`."]
    for section in sections:
        lines += ["", section]
    atomic_write_text(paths["md"], "\n".join(lines) + "\n")
    atomic_write_text(paths["csv"], table_csv(ordered, flags))
    atomic_write_text(paths["significance_md"], f"# Significance: {board.dataset}\n\n" + "\n".join(method) + "\n\n"
                      + significance_markdown(sig_entries)
                      + (f"\n## Against DLRM\n\n{significance_markdown(vs_dlrm)}" if vs_dlrm else ""))
    atomic_write_text(paths["significance_csv"], significance_csv(sig_entries))
    plots.auc_bar_chart(ordered, paths["png"], title=f"{title or 'Leaderboard'}: {board.dataset} (test AUC, mean ± std over {len(seeds)} seed(s))")
    return paths


def run_leaderboard(dataset: str, models: Sequence[str] = DEFAULT_MODELS, seed_count: int = DEFAULT_SEED_COUNT,
                    overrides: Optional[dict] = None, force: bool = False, results_dir: str = DEFAULT_RESULTS_DIR,
                    out_name: Optional[str] = None, notes: Sequence[str] = (), log: Callable[[str], None] = _default_log,
                    title: Optional[str] = None, threads: Optional[int] = None) -> tuple:
    """Run (or resume) the cells and write the outputs. Returns (board, paths)."""
    seeds = seeds_for(seed_count)
    board = Leaderboard(dataset, results_dir=results_dir, out_name=out_name, overrides=overrides, force=force, log=log,
                        threads=threads)
    board.run_cells(cells(models, seeds))
    paths = write_leaderboard(board, models, seeds, notes=notes, title=title)
    log(f"leaderboard written: {paths['md']}")
    return board, paths


# -- the tuned board: the same search budget for every model ---------------------------------
# results/<dataset>/ holds the defaults board (every model at its config defaults) and
# results/<dataset>-tuned/ the tuned one: each model is searched with the same budget (N trials,
# ASHA on the validation metric of every epoch, one epoch cap), on properties/tune/<MODEL>.yaml
# over the shared ranges of properties/tune/shared.yaml, then the configuration with the best
# VALIDATION score runs over the seeds as ordinary cells. Each model's search is kept in
# tuning/<MODEL>/ (space.yaml, trials.csv, best_config.yaml, tuning.json) and reused by a rerun
# unless --retune, or unless what it depends on changed (tuning_fingerprint).
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
            raise TuneBudgetError(f"--grace_period must be >= {MIN_GRACE_PERIOD} (pruning after fewer epochs favours the "
                                  f"models that fit fastest), got {self.grace_period}")

    def describe(self) -> str:
        return (f"{self.trials} trials per model (random draws, sampler seed {self.seed}), ASHA on the validation metric "
                f"after every epoch with a grace period of {min(self.grace_period, self.max_epochs)} epoch(s) and "
                f"reduction factor {self.reduction_factor:g}, at most {self.max_epochs} epochs per trial")


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


def board_space(model: str, dataset: str, overrides: Optional[dict] = None):
    """The checked search space of `model` on this board (tune_space.model_space): SpaceError
    (one line, naming the file) for a missing or malformed space file."""
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, ConfigStack
    from recbole_dlrrec.experiments.tune_space import model_space

    stack = ConfigStack(model, dataset, (), overrides)
    return model_space(model, PROPERTIES_DIR, stack.plugin_files() + stack.dataset_files())


def check_tuned_inputs(dataset: str, models: Sequence[str], overrides: Optional[dict], budget: TuneBudget) -> Dict[str, object]:
    """Everything a tuned board needs that can be checked before any work: the budget, the
    dataset (its atomic files, or a builder), every model's space file. Returns model -> space."""
    from recbole_dlrrec.config.stack import ConfigStack
    from recbole_dlrrec.runtime.quick_start import check_dataset

    budget.check()
    check_dataset(dataset, ConfigStack(models[0], dataset, (), overrides).data_path)
    return {model: board_space(model, dataset, overrides) for model in models}


def _data_files_digest(dataset: str, data_path: str, side_files: bool = True) -> str:
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
        "model": model, "dataset": board.dataset, "data_files": _data_files_digest(board.dataset, data_path, side_files=_is_plugin_model(model)),
        "space": space.to_dict(), "space_left_out": dict(space.left_out),
        "space_files": [os.path.relpath(f) for f in space.files],
        "trials": budget.trials, "max_epochs": budget.max_epochs, "grace_period": budget.grace_period,
        "reduction_factor": budget.reduction_factor, "seed": budget.seed, "code_version": code_version(model),
        "fixed": {k: v for k, v in search_overrides(board, model).items() if k not in _NOT_FINGERPRINTED},
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


def _search_fingerprint(inputs: dict, old: Optional[dict]) -> str:
    """The digest a saved search is compared by. A record from before "defaults" was part of the
    inputs is compared without it (its defaults were not recorded, so nothing can say they changed)."""
    if old and "defaults" not in (old.get("inputs") or {"defaults": None}):
        inputs = {k: v for k, v in inputs.items() if k != "defaults"}
    return _digest(inputs)


def _digest(payload: dict) -> str:
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
        keys = sorted(k for k in set(old["defaults"]) | set(new["defaults"]) if old["defaults"].get(k) != new["defaults"].get(k))
        changed[changed.index("defaults")] = f"defaults in properties/ ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})"
    return ", ".join(changed) or "the record"


def _new_run_name(runs_root: str, dataset: str, model: str) -> str:
    """A search run name not used yet under runs_root (tune.run_search refuses a taken one)."""
    stem = f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, number = stem, 1
    while os.path.exists(os.path.join(runs_root, dataset, name)):
        number += 1
        name = f"{stem}-{number}"
    return name


def tune_model(board: Leaderboard, model: str, space, budget: TuneBudget, retune: bool = False,
               search: Optional[Callable] = None) -> TunedModel:
    """Search `model`'s space with `budget` (or reuse its saved search), keep the outputs in
    tuning/<MODEL>/; a search that fails is recorded as failed and returned, never raised
    (bad input is, as an InputError). `search`: tune.run_search (tests may pass their own)."""
    folder = tuning_dir(board.out_dir, model)
    record_path = os.path.join(folder, TUNING_RECORD)
    inputs = tuning_inputs(board, model, space, budget)
    old = _read_json(record_path)
    fingerprint = _search_fingerprint(inputs, old)
    if (not retune and old and old.get("status") == "ok" and old.get("fingerprint") == fingerprint
            and os.path.isfile(os.path.join(folder, "best_config.yaml"))):
        board.log(f"{model}: tuned before with the same budget, space and code; reusing {folder} (--retune to search again)")
        return TunedModel(model, "ok", dict(old["params"]), True, old)
    if retune:
        why = "--retune"
    elif not old:
        why = "no saved search"
    elif old.get("status") != "ok":
        why = f"the last search failed ({old.get('error')})"
    else:
        why = "changed since the last search: " + _stale_inputs(old.get("inputs") or {}, inputs)
    board.log(f"{model}: tuning ({why}): {budget.describe()}")
    os.makedirs(folder, exist_ok=True)
    space_file = atomic_write_text(os.path.join(folder, "space.yaml"), space.to_text(header=[
        f"Search space of {model} on the tuned leaderboard, merged from: {', '.join(inputs['space_files'])}."]))
    base = {"model": model, "fingerprint": _digest(inputs), "inputs": inputs, "space_file": os.path.relpath(space_file),
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    started = time.time()
    runs_root = os.path.join(board.out_dir, TUNING_DIRNAME, ".runs")  # tune.run_search's own folders
    try:
        if search is None:
            from recbole_dlrrec.experiments.tune import run_search as search
        from recbole_dlrrec.experiments.tune import TuneRequest

        board.apply_threads()
        outcome = search(TuneRequest(
            model=model, dataset=board.dataset, num_samples=budget.trials, max_epochs=budget.max_epochs,
            space_file=space_file, fixed=search_overrides(board, model), name=_new_run_name(runs_root, board.dataset, model),
            seed=budget.seed, out_root=runs_root,
            grace_period=budget.grace_period, reduction_factor=budget.reduction_factor, num_cpus=budget.num_cpus,
            cpus_per_trial=budget.cpus_per_trial, evaluate_best=False))
        if outcome.interrupted:
            raise KeyboardInterrupt  # Ctrl-C in the search: stop the board too (the CLI says how to continue)
        counts = {status: sum(t.status == status for t in outcome.trials) for status in ("completed", "pruned", "failed",
                                                                                        "interrupted", "not_started")}
        if outcome.best is None:
            raise RuntimeError(f"no trial ended with a finite validation {outcome.metric} "
                               f"({counts['failed']} of {len(outcome.trials)} failed)")
        with atomic.atomic_path(os.path.join(folder, "trials.csv")) as tmp:
            shutil.copyfile(os.path.join(outcome.out_dir, "trials.csv"), tmp)
        # The copy's "how to run it" comment names the copy, not the Ray run folder (not kept in git).
        with open(os.path.join(outcome.out_dir, "best_config.yaml"), encoding="utf-8") as handle:
            text = handle.read().replace(os.path.relpath(os.path.join(outcome.out_dir, "best_config.yaml")),
                                         os.path.relpath(os.path.join(folder, "best_config.yaml")))
        atomic.write_text(os.path.join(folder, "best_config.yaml"), text)
        best = outcome.best
        record = {**base, "status": "ok", "error": None, "params": dict(best.params), "trial_id": best.trial_id,
                  "best_valid_score": best.best_score, "best_epoch": best.best_epoch, "metric": outcome.metric,
                  "metric_bigger": outcome.bigger, "trial_counts": counts, "run_dir": os.path.relpath(outcome.out_dir)}
    except InputError:
        raise
    except Exception as exc:  # a failed search is recorded; the other models go on
        message = " ".join(str(exc).split()) or type(exc).__name__
        record = {**base, "status": "failed", "error": f"{type(exc).__name__}: {message}"[:500], "params": {},
                  "traceback": traceback.format_exc()[-4000:]}
    record.update(seconds=round(time.time() - started, 3), finished_at=time.strftime("%Y-%m-%d %H:%M:%S"))
    atomic_write_json(record_path, record)
    if record["status"] == "ok":
        board.log(f"{model}: best trial {record['trial_id']} (valid {record['metric']} {record['best_valid_score']:.4f}): "
                  + ", ".join(f"{k}={v}" for k, v in record["params"].items()))
    else:
        board.log(f"{model}: tuning FAILED: {record['error']}")
    return TunedModel(model, record["status"], record["params"], False, record)


def tuned_header_notes(dataset: str, budget: TuneBudget, spaces: Dict[str, object], results_dir: str) -> List[str]:
    files = sorted({os.path.relpath(f) for space in spaces.values() for f in space.files})
    defaults_board = os.path.join(results_dir, dataset, "leaderboard.md")
    defaults_state = "" if os.path.isfile(defaults_board) else (
        f" (not run yet: run_leaderboard.py --dataset={dataset} without --tune)")
    return [
        f"Tuning budget (the same for every model, before its seeds run): {budget.describe()}; each cell then trains "
        f"for at most {budget.max_epochs} epochs too. The configuration with the best VALIDATION score over its epochs is "
        "the one run over the seeds; the search never evaluates test.",
        f"Search spaces: {', '.join(f'`{f}`' for f in files)} (shared.yaml: one range per shared key for all models). "
        f"Each model's merged space, trials and chosen config: `{TUNING_DIRNAME}/<MODEL>/`.",
        f"Defaults board (every model at its config defaults, no tuning): `{defaults_board}`{defaults_state}.",
    ]


def tuned_configs_markdown(tuned: Sequence[TunedModel]) -> str:
    """The '## Tuned configurations' section: per model, the search and the chosen values."""
    lines = ["## Tuned configurations", "",
             "Chosen on validation only (best validation score of any trial over its epochs); "
             f"trials: completed / pruned by ASHA / failed. Files: `{TUNING_DIRNAME}/<MODEL>/`.", "",
             "| Model | Search | Trials (c/p/f) | Best valid (trial) | Chosen values |", "|---|---|---|---|---|"]
    for t in tuned:
        r = t.record
        if t.status != "ok":
            lines.append(f"| {t.model} | failed | | | {str(r.get('error', '')).replace('|', '/')} |")
            continue
        counts = r.get("trial_counts") or {}
        values = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(t.params.items())).replace("|", "/")
        lines.append(f"| {t.model} | {'reused' if t.reused else 'run'} ({r.get('finished_at', '')}) | "
                     f"{counts.get('completed', 0)}/{counts.get('pruned', 0)}/{counts.get('failed', 0)} | "
                     f"{r.get('metric', '')} {r.get('best_valid_score', float('nan')):.4f} ({r.get('trial_id', '')}) | {values} |")
    return "\n".join(lines) + "\n"


def run_tuned_leaderboard(dataset: str, models: Sequence[str], seed_count: int, budget: TuneBudget,
                          overrides: Optional[dict] = None, force: bool = False, retune: bool = False,
                          results_dir: str = DEFAULT_RESULTS_DIR, notes: Sequence[str] = (),
                          log: Callable[[str], None] = _default_log, threads: Optional[int] = None,
                          search: Optional[Callable] = None) -> tuple:
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
    board = Leaderboard(dataset, results_dir=results_dir, out_name=tuned_out_name(dataset), overrides=overrides,
                        force=force, log=log, threads=threads)
    tuned = [tune_model(board, model, spaces[model], budget, retune=retune, search=search) for model in models]
    settings = {t.model: {**t.params, **cell_metrics.VALID_THRESHOLD} for t in tuned if t.status == "ok"}
    for t in tuned:
        if t.status != "ok":  # no config to run: its cells say why (and run once a search succeeds)
            for seed in seeds:
                board.record_failed(CellSpec(t.model, t.model, seed), f"tuning failed: {t.record.get('error')}")
    board.run_cells(cells([t.model for t in tuned if t.status == "ok"], seeds, settings))
    paths = write_leaderboard(board, models, seeds, notes=[*tuned_header_notes(dataset, budget, spaces, results_dir),
                                                          cell_metrics.THRESHOLD_NOTE, *notes],
                              title="Tuned leaderboard", sections=[tuned_configs_markdown(tuned)],
                              per_model=sorted({k for space in spaces.values() for k in space.params}))
    log(f"tuned leaderboard written: {paths['md']}")
    return board, paths, tuned


__all__ = [
    "DEFAULT_MODELS", "DLRREC_MODELS", "BASELINE_MODELS", "MODEL_VARIANTS", "Leaderboard", "CellSpec", "cells",
    "seeds_for", "run_leaderboard", "write_leaderboard", "summarize", "best_flags", "table_markdown", "table_csv",
    "Metric", "METRICS", "Row", "Column", "TuneBudget", "run_tuned_leaderboard", "TUNED_SUFFIX",
]
