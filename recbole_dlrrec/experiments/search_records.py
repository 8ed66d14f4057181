"""The records of a search, without Ray: trials.csv, best_config.yaml, run_spec.json, the
record of finished trials (finished_trials.jsonl) and the printed summary.

    write_trials_csv(path, records, space.keys, "AUC")   # trial_id,status,epochs,valid_auc_last,...
    read_trials_csv(path)                                # -> [TrialRecord]
    append_finished(path, finished_entry(record, curve, last))   # as each trial ends
    match_finished(read_finished(path), trial_id, params)        # on --resume: replay, do not train

Trial status: ``completed`` (trained to max_epochs or to RecBole's own early stop), ``pruned``
(stopped by ASHA), ``failed`` (raised, or NaN metric; ``error`` says why), ``interrupted``
(stopped by Ctrl-C with some epochs done), ``not_started``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import InputError

SUMMARY_ROWS = 10
STATUSES = ("completed", "pruned", "failed", "interrupted", "not_started")
FINISHED_FILE = "finished_trials.jsonl"  # the run's own record of finished trials (module doc, Interruptions)


class TuneRunError(InputError, ValueError):
    """A search that cannot start as asked (run name taken, nothing to resume, bad option)."""


@dataclass
class TrialRecord:
    trial_id: str
    status: str
    params: Dict[str, Any]  # the trial's JSON values by key
    epochs: int = 0
    last_score: Optional[float] = None
    best_score: Optional[float] = None
    best_epoch: Optional[int] = None
    seconds: Optional[float] = None
    error: str = ""


def json_safe(value):
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_run_spec(path: str, spec: dict) -> str:
    return atomic.write_json(path, json_safe(spec), indent=2, sort_keys=True)


def read_run_spec(path: str) -> dict:
    if not os.path.isfile(path):
        raise TuneRunError(f"nothing to resume: {path} not found (start the run without --resume first)")
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as exc:
            raise TuneRunError(f"{path} is not valid JSON: {exc}") from None


def metric_column(metric: str) -> str:
    return f"valid_{metric.lower()}"


def is_better(a: float, b: float, bigger: bool) -> bool:
    return a > b if bigger else a < b


def select_best(records: Sequence[TrialRecord], bigger: bool) -> Optional[TrialRecord]:
    """The trial with the best validation score (any status that trained at least one epoch)."""
    best: Optional[TrialRecord] = None
    best_score = 0.0  # best's score, once there is a best
    for record in records:
        score = record.best_score
        if record.status == "failed" or score is None or not math.isfinite(score):
            continue
        if best is None or is_better(score, best_score, bigger):
            best, best_score = record, score
    return best


def in_draw_order(records: Sequence[TrialRecord], draws: Sequence[Dict[str, object]]) -> List[TrialRecord]:
    """`records` in the order their configurations were drawn (a search without pruning), so
    that the record and the winner's tie-break (the earlier draw) do not depend on which trial
    Ray started or finished first. Equal draws keep their relative order; a record whose values
    were not drawn (none should be) goes last."""
    rank: Dict[str, int] = {}
    for index, params in enumerate(draws):
        rank.setdefault(params_key(params), index)
    return sorted(records, key=lambda r: rank.get(params_key(r.params), len(draws)))


def search_phrase(spec: dict) -> str:
    """How a run's trials were trained, for its notes and log lines."""
    if spec.get("scheduler", "ASHA").lower() == "asha":
        return f"ASHA over {spec['max_epochs']} epochs"
    return f"no pruning, every trial up to {spec['max_epochs']} epochs"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def _parse_cell(text: str):
    """A value as _cell wrote it (repr of a float, JSON of a list, a plain string); '' -> None."""
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _trials_header(keys: Sequence[str], column: str) -> List[str]:
    return ["trial_id", "status", "epochs", f"{column}_last", f"{column}_best", "best_epoch", "seconds", *keys, "error"]


def write_trials_csv(path: str, records: Sequence[TrialRecord], keys: Sequence[str], metric: str) -> str:
    """One row per trial: id, status, epochs run, last/best validation score, best epoch,
    seconds, each tuned key's value, and the error of a failed trial."""
    header = _trials_header(keys, metric_column(metric))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for r in records:
        writer.writerow(
            [
                r.trial_id,
                r.status,
                r.epochs,
                _cell(r.last_score),
                _cell(r.best_score),
                _cell(r.best_epoch),
                _cell(None if r.seconds is None else round(r.seconds, 2)),
                *(_cell(r.params.get(k)) for k in keys),
                r.error,
            ]
        )
    return atomic.write_text(path, buffer.getvalue())


def read_trials_csv(path: str) -> List[TrialRecord]:
    """The trials of a trials.csv that write_trials_csv wrote, with their tuned values parsed back."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or ())
        column = next((f[: -len("_best")] for f in fields if f.endswith("_best")), None)
        keys = fields[7:-1]
        if column is None or fields != _trials_header(keys, column):
            raise InputError(f"{path}: not a trials.csv of a search (header {fields})")
        return [
            TrialRecord(
                row["trial_id"],
                row["status"],
                {k: _parse_cell(row[k]) for k in keys},
                epochs=int(row["epochs"]),
                last_score=_parse_cell(row[f"{column}_last"]),
                best_score=_parse_cell(row[f"{column}_best"]),
                best_epoch=_parse_cell(row["best_epoch"]),
                seconds=_parse_cell(row["seconds"]),
                error=row["error"],
            )
            for row in reader
        ]


def best_config_values(params: Dict[str, object], fixed: Dict[str, object], max_epochs: int, seed: int) -> dict:
    """What best_config.yaml holds: the user's fixed overrides (minus session-only keys), the
    epoch budget and seed the trials ran with, and the tuned values."""
    values = dict(fixed)
    values.update({"epochs": int(max_epochs), "seed": int(seed)})
    values.update(params)
    return values


def write_best_config(path: str, values: dict, model: str, dataset: str, note: str) -> str:
    import yaml

    rel = os.path.relpath(path)
    lines = [
        f"# Tuned with run_tune.py for --model={model} --dataset={dataset} ({note}).",
        f"# The model is not part of this file: python run_recbole.py --model={model} --dataset={dataset} "
        f"--config_files={rel}",
    ]
    for key, value in sorted(json_safe(values).items()):
        # `key: value` per line; lists and dicts inline ([64, 64]) as in the properties files.
        flow = None if isinstance(value, (list, dict)) else False
        lines.append(yaml.safe_dump({key: value}, default_flow_style=flow, width=1000).strip())
    return atomic.write_text(path, "\n".join(lines) + "\n")


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_value(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return str(value)


def summary_table(
    records: Sequence[TrialRecord], keys: Sequence[str], metric: str, bigger: bool, limit: int = SUMMARY_ROWS
) -> str:
    """The best `limit` trials as a text table, then the count of each status."""
    ranked = sorted(
        records,
        key=lambda r: (
            r.best_score is None or r.status == "failed",
            -(r.best_score or 0.0) if bigger else (r.best_score or 0.0),
        ),
    )
    header = ["rank", "trial", "status", "epochs", f"best valid {metric}", *keys]
    rows = [
        [
            str(i + 1),
            r.trial_id,
            r.status,
            str(r.epochs),
            format_value(r.best_score),
            *(format_value(r.params.get(k)) for k in keys),
        ]
        for i, r in enumerate(ranked[:limit])
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    if len(ranked) > limit:
        lines.append(f"... {len(ranked) - limit} more in trials.csv")
    counts = {s: sum(r.status == s for r in records) for s in STATUSES}
    lines.append("trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" (of {len(records)})")
    return "\n".join(lines)


def failure_message(text: str) -> str:
    """The one-line reason from Ray's error file of a trial whose worker died: its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def finished_record_path(out_dir: str) -> str:
    """``finished_trials.jsonl`` in the run's output folder: one JSON line per finished trial."""
    return os.path.join(out_dir, FINISHED_FILE)


def params_key(params: Dict[str, object]) -> str:
    """The tuned values as canonical JSON (floats round-trip exactly), to compare draws."""
    return json.dumps(json_safe(params), sort_keys=True)


def finished_status(result: dict) -> str:
    """completed / pruned / failed, for a trial that ended with `result` as its last report."""
    if result.get("failed"):
        return "failed"
    return "completed" if result.get("last") else "pruned"


def finite(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def record_from_result(
    trial_id: str, status: str, params: Dict[str, object], result: dict, error: str = ""
) -> TrialRecord:
    """A TrialRecord from a trial's last report (see `_ray_trial`'s payload)."""
    has_epochs = int(result.get("epoch") or 0) > 0
    return TrialRecord(
        trial_id=trial_id,
        status=status,
        params=params,
        epochs=int(result.get("epoch") or 0),
        last_score=finite(result.get("valid_score")) if has_epochs else None,
        best_score=finite(result.get("best_valid_score")) if has_epochs else None,
        best_epoch=result.get("best_epoch") if has_epochs else None,
        seconds=result.get("trial_seconds"),
        error=(result.get("failed") or error) if status == "failed" else "",
    )


def finished_entry(record: TrialRecord, curve: Sequence[float], last: bool) -> dict:
    """One line of the record: the trial's TrialRecord, its validation score after every epoch
    (`curve`, what ASHA saw) and `last` (RecBole would not have trained it further)."""
    return {**json_safe(asdict(record)), "curve": [float(x) for x in curve], "last": bool(last)}


def append_finished(path: str, entry: dict) -> None:
    """Add one finished trial to the record, as it finishes. The file is rewritten whole and
    atomically (the old lines, then the new one): a kill at any moment leaves the old record or
    the new one, never a torn line."""
    old = b""
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            old = handle.read()
    atomic.write_bytes(path, old + (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))


def read_finished(path: str) -> Dict[str, dict]:
    """trial_id -> entry of every finished trial in the record ({} when there is none)."""
    if not os.path.isfile(path):
        return {}
    finished: Dict[str, dict] = {}
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            try:
                entry = json.loads(line)
                finished[str(entry["trial_id"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                raise TuneRunError(f"{path}:{lineno}: not a finished-trial record (written by run_tune.py)") from None
    return finished


def record_from_entry(entry: dict, trial_id: Optional[str] = None) -> TrialRecord:
    """The TrialRecord a record line holds (under `trial_id` when Ray gave the trial a new id)."""
    fields: Dict[str, Any] = {k: entry.get(k) for k in TrialRecord.__dataclass_fields__}
    fields["trial_id"] = trial_id or entry["trial_id"]
    fields["params"] = dict(entry.get("params") or {})
    fields["epochs"] = int(entry.get("epochs") or 0)
    fields["error"] = entry.get("error") or ""
    return TrialRecord(**fields)


def match_finished(finished: Dict[str, dict], trial_id: str, params: Dict[str, object]) -> Optional[dict]:
    """The finished trial that this trial of a resumed search repeats, or None.

    First the same trial id with the same values (a trial Ray restored from its saved state,
    saved before the trial finished). Else a finished trial with the same values: after a
    kill before Ray saved any state, the search restarts and its sampler (same seed) draws the
    same values again, under new ids; the same config and seed train to the same numbers."""
    key = params_key(params)
    entry = finished.get(trial_id)
    if entry is not None and params_key(entry.get("params") or {}) == key:
        return entry
    return next((e for e in finished.values() if params_key(e.get("params") or {}) == key), None)
