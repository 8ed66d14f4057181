"""benchmarks/bench_train.py: the --quick smoke run end to end (no timing asserts), and the
pieces the full run relies on (generated dataset layout, run expansion, paired ratios)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the benchmark script end to end

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "benchmarks", "bench_train.py")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_train_data  # noqa: E402
import bench_train_runs  # noqa: E402
import bench_train_workers  # noqa: E402


def test_quick_run_reports_every_run_scaling_and_encoder(tmp_path):
    save = tmp_path / "out" / "cpu"
    plot = tmp_path / "out" / "scaling.png"
    proc = subprocess.run(
        [
            sys.executable,
            BENCH,
            "--quick",
            "--data-dir",
            str(tmp_path / "data"),
            "--save",
            str(save),
            "--plot",
            str(plot),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])  # the last line is the JSON report
    assert "samples/s" in proc.stdout and "ratios of training samples/s" in proc.stdout
    assert report["machine"]["cpu_count"] >= 1 and report["params"]["quick"] is True

    (session,) = report["sessions"]
    runs = session["batches"]["256"]["runs"]
    for name in bench_train_runs.MAIN_RUNS:
        rec = runs[name]
        assert "error" not in rec, rec.get("error")
        assert rec["samples_per_s"] > 0 and rec["epoch_s_full"] > 0 and rec["peak_rss_mib"] > 0
        assert 0.0 <= rec["test_auc"] <= 1.0 and 0.0 <= rec["valid_auc"] <= 1.0
    for model in ("DeepFM", "DLRREC"):  # same seed on the CPU: the fast path trains on the same batches
        assert runs[f"{model} fast"]["test_auc"] == pytest.approx(runs[f"{model} standard"]["test_auc"], abs=1e-6)
    ratios = session["batches"]["256"]["ratios"]
    assert {"DeepFM fast / DeepFM standard", "DLRREC fast / DLRREC standard", "DLRREC fast / DeepFM standard"} <= set(
        ratios
    )
    assert all(r["median"] > 0 and r["target"] for r in (ratios[k] for k in ratios) if r["target"] is not None)

    (fresh,) = report["fresh"]  # the headline pair again, each run in its own process
    assert {p["run"] for p in fresh["points"]} == set(bench_train_runs.FRESH_RUNS)
    assert all("error" not in p and p["samples_per_s"] > 0 for p in fresh["points"])
    assert fresh["ratio"]["median"] > 0 and "fresh processes" in proc.stdout

    assert len(report["scaling"]) >= 2 and all(p["peak_rss_mib"] > 0 for p in report["scaling"])
    assert "DeepFM standard" in report["memory_per_million_rows"]
    enc = report["encoder"]
    assert enc.get("sentences_per_s", 0) > 0 or "error" in enc

    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "out" / "cpu.json").read_text())["params"]["quick"] is True
    assert "ratios of training samples/s" in (tmp_path / "out" / "cpu.txt").read_text()


def test_generated_dataset_has_the_converter_layout_and_is_reused(tmp_path):
    name = bench_train_data.write_generated_dataset(str(tmp_path), 3000, dim=40)
    assert name == "bench-3k"
    folder = tmp_path / name
    header = lambda f: (folder / f).read_text().splitlines()[0].split("\t")  # noqa: E731
    assert header(f"{name}.train.inter") == [
        "user_id:token",
        "item_id:token",
        "rating:float",
        "label:float",
        "timestamp:float",
    ]
    assert header(f"{name}.item") == [
        "item_id:token",
        "price:token",
        "categories:token_seq",
        "latitude:float",
        "longitude:float",
        "pic_count:float",
    ]
    assert header(f"{name}.user") == ["user_id:token", "n_train_reviews:float"]
    rows = sum(len((folder / f"{name}.{s}.inter").read_text().splitlines()) - 1 for s in ("train", "valid", "test"))
    assert rows == 3000
    import numpy as np

    with np.load(folder / f"{name}.itemvec.npz") as item:
        assert item["vectors"].shape[1] == 40
        assert np.allclose(np.linalg.norm(item["vectors"], axis=1), 1.0, atol=1e-5)
    stamp = (folder / f"{name}.train.inter").stat().st_mtime_ns
    assert bench_train_data.write_generated_dataset(str(tmp_path), 3000, dim=40) == name
    assert (folder / f"{name}.train.inter").stat().st_mtime_ns == stamp  # same parameters: not rewritten


def test_fresh_ratio_pairs_runs_within_a_round():
    points = [
        {"round": 0, "run": "A", "samples_per_s": 120.0},
        {"round": 0, "run": "B", "samples_per_s": 100.0},
        {"round": 1, "run": "B", "samples_per_s": 50.0},
        {"round": 1, "run": "A", "samples_per_s": 40.0},
        {"round": 2, "run": "A", "samples_per_s": 90.0},
    ]  # round 2 lost B: left out of the ratios
    ratio = bench_train_runs.fresh_ratio(points, "A", "B")
    assert ratio["rounds"] == 2 and ratio["min"] == pytest.approx(0.8) and ratio["max"] == pytest.approx(1.2)
    assert ratio["median"] == pytest.approx(1.0)
    assert ratio["rates"]["A"] == pytest.approx(90.0) and ratio["rates"]["B"] == pytest.approx(75.0)
    assert bench_train_runs.fresh_ratio([{"round": 0, "run": "A", "error": "x"}], "A", "B") is None


def test_variants_expand_only_the_fast_headline_runs():
    runs = bench_train_runs.expand_runs(
        ["DeepFM standard", "DLRREC fast", "DeepFM fast"], ["plain", "fused+cudagraphs"]
    )
    labels = [label for label, _, _ in runs]
    assert labels == [
        "DeepFM standard",
        "DLRREC fast",
        "DeepFM fast",
        "DLRREC fast [fused+cudagraphs]",
        "DeepFM fast [fused+cudagraphs]",
    ]
    assert runs[-1][2] == {"fused_adam": True, "compile": "reduce-overhead"}
    with pytest.raises(SystemExit):
        bench_train_runs.variant_options("fused+turbo")


def test_ratios_are_medians_of_per_round_ratios():
    records = {
        "DeepFM fast": {"rounds": {0: 1.0, 1: 2.0, 2: 1.0}, "rows_per_epoch": 100},
        "DeepFM standard": {"rounds": {0: 3.0, 1: 4.0, 2: 4.0}, "rows_per_epoch": 100},
    }
    ratio = bench_train_runs.paired_ratios(records)["DeepFM fast / DeepFM standard"]
    assert ratio["median"] == pytest.approx(3.0) and ratio["min"] == pytest.approx(2.0)
    assert ratio["max"] == pytest.approx(4.0) and ratio["met"] is True and ratio["rounds"] == 3


def test_limited_loader_caps_batches_and_extrapolates_rows():
    class Loader:
        step = 10
        _dataset = list(range(95))

        def __iter__(self):
            return iter([[0] * 10] * 9 + [[0] * 5])

        def __len__(self):
            return 10

    limited = bench_train_workers.LimitedLoader(Loader(), 3)
    assert len(list(limited)) == 3 and len(limited) == 3 and limited.rows_per_pass() == 30
    assert limited.first_at is not None and limited.step == 10
    full = bench_train_workers.LimitedLoader(Loader(), None)
    assert len(list(full)) == 10 and full.rows_per_pass() == 95
