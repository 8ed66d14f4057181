"""bench_train.py's report: the text table (render) and the scaling plot (plot_scaling)."""

from __future__ import annotations

import io
import json
from typing import List, Optional

from bench_train_runs import FRESH_WARMUP_BATCHES

from recbole_dlrrec import atomic


def _fmt(value, spec: str = ",.0f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _render_batch(out: io.StringIO, m: dict, batch: str, block: dict, limit) -> None:
    """One batch size of a session: the table of runs, the loaders alone, the ratios."""
    note = (
        f"; timed: first {limit} batches of each epoch, s/epoch extrapolated from their steady rate (~)"
        if limit
        else ""
    )
    out.write(f"batch {int(batch):,}{note}\n")
    header = f"  {'run':32s} {'samples/s':>10s} {'s/epoch':>9s} {'eval/s':>9s} {'peak RSS MiB':>12s}"
    if m["device"] == "cuda":
        header += f" {'CUDA MiB':>9s}"
    header += f" {'valid AUC':>9s} {'test AUC':>9s}  notes\n"
    out.write(header)
    for name, rec in block["runs"].items():
        if rec.get("error") and not rec.get("samples_per_s"):
            out.write(f"  {name:32s} ERROR {rec['error']}\n")
            continue
        if not rec.get("samples_per_s"):
            out.write(f"  {name:32s} SKIPPED {rec.get('skipped', '')}\n")
            continue
        epoch_s = ("~" if rec.get("extrapolated") else "") + _fmt(rec.get("epoch_s_full"), ".2f")
        line = (
            f"  {name:32s} {_fmt(rec.get('samples_per_s')):>10s} {epoch_s:>9s} "
            f"{_fmt(rec.get('eval_samples_per_s')):>9s} {_fmt(rec.get('peak_rss_mib')):>12s}"
        )
        if m["device"] == "cuda":
            line += f" {_fmt(rec.get('cuda_max_alloc_mib')):>9s}"
        line += f" {_fmt(rec.get('valid_auc'), '.4f'):>9s} {_fmt(rec.get('test_auc'), '.4f'):>9s}"
        if rec.get("valid_auc_sd") is not None:
            line += (
                f"  sd over seeds: valid {rec['valid_auc_sd']:.4f}, test {rec.get('test_auc_sd', 0):.4f}; "
                f"best-epoch valid {rec.get('valid_auc_best', 0):.4f}"
            )
        if rec.get("notes"):
            line += f"  {', '.join(rec['notes'])}"
        out.write(line.rstrip() + "\n")
    lo = block.get("loader_only", {})
    if lo.get("standard") and lo.get("fast"):
        b = int(batch)
        std_ms, fast_ms = 1000 * b / lo["standard"], 1000 * b / lo["fast"]
        out.write(
            f"  loaders alone (no model): standard {lo['standard']:,.0f} samples/s = {std_ms:.1f} ms/batch, "
            f"fast {lo['fast']:,.0f} samples/s = {fast_ms:.2f} ms/batch\n"
        )
        for model in ("DeepFM", "DLRREC"):
            rate = block["runs"].get(f"{model} fast", {}).get("samples_per_s")
            if rate:
                step_ms = 1000 * b / rate - fast_ms  # the model's own share of a fast-path step
                bound = (step_ms + std_ms) / (step_ms + fast_ms)
                out.write(
                    f"  {model} step without loading ~{step_ms:.1f} ms/batch: the loader swap can give at "
                    f"most {bound:.2f}x\n"
                )
    out.write("  ratios of training samples/s (median of per-round ratios [min .. max]):\n")
    for label, r in block["ratios"].items():
        verdict = "" if r["target"] is None else f"  target >= {r['target']:g}x: {'MET' if r['met'] else 'NOT met'}"
        out.write(f"    {label:40s} {r['median']:6.2f}x [{r['min']:.2f} .. {r['max']:.2f}]{verdict}\n")
    for label, value in block.get("eval_ratios", {}).items():
        out.write(f"    {label:40s} {value:6.2f}x\n")


def _render_session(out: io.StringIO, m: dict, session: dict) -> None:
    """One dataset: its sizes and load times, then each batch size."""
    out.write("\n")
    if "batches" not in session:
        out.write(f"dataset {session.get('dataset', '?')}: ERROR {session.get('error')}\n")
        return
    limit = session.get("max_batches")
    out.write(
        f"dataset {session['dataset']}: train {session['train_rows']:,} rows (valid {session['valid_rows']:,}, "
        f"test {session['test_rows']:,}); RecBole load {session['load_s']:.1f} s, fast join {session['join_s']:.2f} s, "
        f"fast tables {session['fast_table_mib']:.1f} MiB\n"
    )
    if session.get("error"):
        out.write(f"  (incomplete: {session['error']})\n")
    for batch, block in session["batches"].items():
        _render_batch(out, m, batch, block, limit)


def _render_fresh_and_scaling(out: io.StringIO, report: dict) -> None:
    """The fresh-process headline check and the scaling points with their memory fit."""
    for fresh in report.get("fresh", []):
        r = fresh.get("ratio")
        out.write(
            f"\nfresh processes, {fresh['dataset']} (each run in its own process, {FRESH_WARMUP_BATCHES} warm-up "
            "batches, then the timed batches as above; runs alternate):\n"
        )
        for point in fresh["points"]:
            if "error" in point:
                out.write(f"  round {point['round']} {point['run']:18s} ERROR {point['error']}\n")
        if r:
            rates = ", ".join(f"{run} {rate:,.0f}" for run, rate in r["rates"].items())
            out.write(f"  median samples/s: {rates}\n")
            out.write(
                f"    {r['label']:40s} {r['median']:6.2f}x [{r['min']:.2f} .. {r['max']:.2f}]  target >= 1x: "
                f"{'MET' if r['median'] >= 1 else 'NOT met'}\n"
            )
    if report.get("scaling"):
        out.write("\nscaling (one fresh process per point; peak RSS = the process's ru_maxrss):\n")
        out.write(
            f"{'run':18s} {'rows':>10s} {'train rows':>10s} {'load s':>7s} {'samples/s':>10s} {'s/epoch':>9s} "
            f"{'RSS loaded':>10s} {'peak RSS MiB':>12s}\n"
        )
        for point in report["scaling"]:
            if "error" in point:
                out.write(f"{point.get('run', '?'):18s} {point.get('rows', 0):>10,} ERROR {point['error']}\n")
                continue
            epoch_s = ("~" if point["extrapolated"] else "") + f"{point['epoch_s']:.1f}"
            out.write(
                f"{point['run']:18s} {point['rows']:>10,} {point['train_rows']:>10,} {point['load_s']:7.1f} "
                f"{point['samples_per_s']:10,.0f} {epoch_s:>9s} {point['rss_after_load_mib']:10,.0f} "
                f"{point['peak_rss_mib']:12,.0f}\n"
            )
        for run, fit in report.get("memory_per_million_rows", {}).items():
            out.write(
                f"  peak RSS of {run}: {fit['slope']:,.0f} MiB per million rows (+ {fit['intercept']:,.0f} MiB)\n"
            )
        if report.get("plot"):
            out.write(f"  plot: {report['plot']}\n")


def _render_encoder_and_check(out: io.StringIO, report: dict) -> None:
    """The text encoder's sentences/s and the exactness checks."""
    enc = report.get("encoder")
    if enc:
        out.write("\n")
        if "error" in enc:
            out.write(f"text encoder: ERROR {enc['error']}\n")
        else:
            out.write(
                f"text encoder (all-MiniLM-L6-v2, empty cache, {enc['device']}): {enc['sentences_per_s']:,.1f} "
                f"sentences/s ({enc['sentences']} sentences in {enc['encode_s']:.1f} s; model load "
                f"{enc['model_load_s']:.1f} s)\n"
            )
    if report.get("check"):
        out.write(f"\nexactness checks: {json.dumps(report['check'])}\n")


def render(report: dict) -> str:
    """The text report: machine and settings, each dataset's table and ratios, the fresh-process
    check, scaling, the encoder and the exactness checks."""
    out = io.StringIO()
    m = report["machine"]
    p = report["params"]
    out.write(
        f"machine: {m['cpu']} ({m['cpu_count']} CPUs), {m['platform']}, python {m['python']}, "
        f"torch {m['torch']} ({p.get('threads') or m['torch_threads']} thread(s) per worker), device {m['device']}"
        f"{', ' + m['gpu'] if m.get('gpu') else ''}, nice {m['niceness']}, "
        f"load avg at start {tuple(round(x, 1) for x in m.get('load_avg', ()))}\n"
    )
    out.write(
        f"batch {', '.join(str(b) for b in p.get('batches', [p['batch']]))}, eval batch {p['eval_batch']}, "
        f"{p['repeats']} round(s) x {p['epochs']} epoch(s), "
        f"seed {p['seed']}{' + round' if p.get('seed_per_round') else ''}{', fused Adam' if p['fused_adam'] else ''}"
        f"{', compile=' + p['compile'] if p['compile'] else ''}\n"
    )
    for session in report["sessions"]:
        _render_session(out, m, session)
    _render_fresh_and_scaling(out, report)
    _render_encoder_and_check(out, report)
    return out.getvalue()


def plot_scaling(points: List[dict], path: str) -> Optional[str]:
    good = [p for p in points if "error" not in p]
    if not good:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(figure)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for run in sorted({p["run"] for p in good}):
        pts = sorted((p for p in good if p["run"] == run), key=lambda p: p["rows"])
        rows = [p["rows"] / 1e6 for p in pts]
        left.plot(rows, [p["epoch_s"] for p in pts], marker="o", label=run)
        right.plot(rows, [p["peak_rss_mib"] for p in pts], marker="o", label=f"{run} (peak)")
        right.plot(
            rows, [p["rss_after_load_mib"] for p in pts], marker=".", linestyle=":", label=f"{run} (data loaded)"
        )
    left.set_xlabel("dataset rows (millions; 80% train)")
    left.set_ylabel("seconds per training epoch")
    left.set_title("time per epoch")
    right.set_xlabel("dataset rows (millions; 80% train)")
    right.set_ylabel("RSS (MiB)")
    right.set_title("process memory")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100, format="png")
    return path
