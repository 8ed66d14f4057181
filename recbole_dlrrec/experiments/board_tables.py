"""A board's rows and tables: per-model mean ± std over seeds, the best value per column, and
the same table as markdown and as CSV.

    rows = sort_rows([summarize(name, records, seeds_total) ...])
    flags = best_flags(rows)
    table_markdown(rows, flags)   # | Model | Test AUC | ... | Seeds | Notes |
    table_csv(rows, flags)        # model,status,seeds_ok,seeds,auc_mean,auc_std,auc_best,...

Pure functions over cell records (board_cells.py writes them); nothing here trains or reads files.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

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
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def has_numbers(self) -> bool:
        return self.seeds_ok > 0


def _mean_std(values: Sequence[Optional[float]]) -> tuple:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return (float("nan"), float("nan"))
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")
    return (float(np.mean(finite)), std)


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
    row.valid_auc = _mean_std(
        [
            (res.get("valid_result") or {}).get("auc", res.get("best_valid_score") if valid_metric == "auc" else None)
            for res in results
        ]
    )[0]
    row.best_epoch = _mean_std([res.get("best_epoch") for res in results])[0]
    row.seconds_per_epoch = _mean_std([res["timings"].get("seconds_per_epoch") for res in results])[0]
    row.num_parameters = int(results[0].get("num_parameters") or 0)
    return row


def _metric_mean(key: str) -> Callable[[Row], float]:
    return lambda row: row.metrics[key][0]


def best_flags(rows: Sequence[Row], metrics: Sequence[Metric] = METRICS, timing: bool = True) -> Dict[str, set]:
    """column key -> names of the rows holding the best value (ties at the shown precision)."""
    flags: Dict[str, set] = {}
    scored = [r for r in rows if r.has_numbers]
    columns: List[Tuple[str, bool, Callable[[Row], float]]] = [
        (m.key, m.bigger_is_better, _metric_mean(m.key)) for m in metrics
    ]
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


def format_number(value, decimals: int = DECIMALS) -> str:
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
    Column("Valid AUC", "valid_auc_mean", lambda r: r.valid_auc, format_number),
    Column("Best epoch", "best_epoch_mean", lambda r: r.best_epoch, lambda v: format_number(v, 1)),
    Column("s/epoch", "seconds_per_epoch_mean", lambda r: r.seconds_per_epoch, lambda v: format_number(v, 2)),
    Column("Params", "num_parameters", lambda r: r.num_parameters, lambda v: f"{v:,}" if v else "n/a"),
)


def table_markdown(
    rows: Sequence[Row],
    flags: Dict[str, set],
    extra: Sequence[Column] = (),
    tail: Sequence[Column] = STANDARD_TAIL,
    metrics: Sequence[Metric] = METRICS,
) -> str:
    headers = [
        "Model",
        *[c.header for c in extra],
        *[f"Test {m.label}" for m in metrics],
        *[c.header for c in tail],
        "Seeds",
        "Notes",
    ]
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
            cells.append(
                f"**{text}**"
                if row.name in flags.get(column.key.replace("_mean", ""), set()) and row.has_numbers
                else text
            )
        cells.append(f"{row.seeds_ok}/{row.seeds_total}")
        note = {
            "failed": f"failed: {row.error}",
            "partial": f"some seeds failed: {row.error}",
            "missing": "not run",
        }.get(row.status, "")
        cells.append(note.replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_csv(
    rows: Sequence[Row],
    flags: Dict[str, set],
    extra: Sequence[Column] = (),
    tail: Sequence[Column] = STANDARD_TAIL,
    metrics: Sequence[Metric] = METRICS,
) -> str:
    header = ["model", "status", "seeds_ok", "seeds", *[c.key for c in extra]]
    for metric in metrics:
        header += [f"{metric.key}_mean", f"{metric.key}_std", f"{metric.key}_best"]
    header += [c.key for c in tail] + ["seconds_per_epoch_best", "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        values = [row.name, row.status, row.seeds_ok, row.seeds_total, *[csv_value(c.get(row)) for c in extra]]
        for metric in metrics:
            mean, std = row.metrics.get(metric.key, (float("nan"), float("nan")))
            values += [csv_value(mean), csv_value(std), int(row.name in flags.get(metric.key, set()))]
        values += [csv_value(c.get(row)) if row.has_numbers else "" for c in tail]
        values += [int(row.name in flags.get("seconds_per_epoch", set())), row.error or ""]
        writer.writerow(values)
    return buffer.getvalue()


def csv_value(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not np.isfinite(value) else round(value, 6)
    return value
