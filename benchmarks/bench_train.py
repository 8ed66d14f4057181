"""Training-speed benchmark: RecBole's standard loaders against recbole_dlrrec.runtime.fast_loader.

    python benchmarks/bench_train.py [--device cpu|cuda] [--rows N] [--batch B] [--quick]
        [--repeats R] [--epochs E] [--max-batches K] [--fused-adam] [--compile [MODE]]
        [--check] [--save PREFIX] [--plot PNG]

What runs (all through RecBole's own Trainer and Evaluator; only the loaders differ):

    DeepFM standard   RecBole's DeepFM, RecBole's TrainDataLoader / NegSampleEvalDataLoader
    DLRREC standard   DLRREC with its defaults (properties/model/DLRREC.yaml: towers + contrastive
                      heads) on RecBole's loaders
    DLRREC fast       the same DLRREC on the fast loaders (join once, slice on the device)
    DeepFM fast       the same DeepFM on the fast loaders
    DLRREC fast fp32  DLRREC fast with train_precision: fp32 (DLRREC's default 'auto' trains under
                      bf16 autocast on CPUs with AVX512-BF16/AMX: recbole_dlrrec/precision.py;
                      RecBole's DeepFM keeps RecBole's float32)
  contrastive-head cost, all DLRREC on the fast loaders (cl_negatives / cl_max_anchors):
    DLRREC fast random/512    cl_num_negatives fresh corpus ids per anchor, at most 512 anchors
    DLRREC fast shared/512    one pool of cl_num_negatives ids per batch, at most 512 anchors
    DLRREC fast random/all    every distinct id of the batch is an anchor (cl_max_anchors: null)
    DLRREC fast shared/all    both
    DLRREC fast no heads      w1 = w2 = 0 (towers only)

on two datasets: the bundled `restaurants` and a generated one of --rows interactions in the same
layout (user/item token features, a token_seq, float features, 384-d user and item text vectors;
written once under --data-dir, default build/bench-data/, which git ignores). Every dataset is
loaded once in its own process; the runs then take turns (round r starts at run r), each time
with a fresh model from the same seed, and the table shows medians over the --repeats rounds.
The speed-up ratios are medians of the per-round ratios, so a noisy neighbour on a shared CPU
slows both sides of a ratio alike. On the generated data an "epoch" is the first --max-batches
batches (say so in the table: s/epoch is then rows / (samples/s), marked "~").

Measured per run: training samples/s and seconds per epoch (Trainer._train_epoch only), eval
seconds (valid split), peak RSS of the process during the run (the loaded dataset included;
CUDA: max allocated too), valid and test AUC after the timed epochs (with the same seed, the CPU
fast path trains on the very batches of the standard path, so their AUCs agree).
Scaling: one process per size (0.1M .. --rows) and per run (DeepFM standard, DLRREC fast) loads,
joins and trains; its peak RSS and its time go into --plot (results/bench/scaling.png), and the
slope of peak RSS against rows is reported in MiB per million rows.
Text encoder: sentences/s of recbole_dlrrec.data.encoder.TextEncoder (all-MiniLM-L6-v2) with its
cache in a temporary directory, so every sentence is encoded.
--check: exactness checks on the chosen device (join == RecBole's join for every row, one epoch
holds every row once, same seed -> same order) before any timing.

Prints a table and, last, one JSON line. --save PREFIX also writes PREFIX.txt and PREFIX.json.
--quick: tiny sizes for the CI smoke test (generated data only, one round, no timing targets).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from typing import Dict, List, Optional

import numpy as np

try:
    import recbole_dlrrec  # noqa: F401  (only to find it; importing it changes nothing)
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from recbole_dlrrec import atomic  # noqa: E402

GENERATOR_VERSION = 1
DEFAULT_DATA_DIR = os.path.join("build", "bench-data")
TEXT_DIM = 384

# name -> (model, config overrides). The first four are the headline runs.
RUNS: Dict[str, tuple] = {
    "DeepFM standard": ("DeepFM", {"fast_dataloader": False}),
    "DLRREC standard": ("DLRREC", {"fast_dataloader": False}),
    "DLRREC fast": ("DLRREC", {"fast_dataloader": True}),
    "DeepFM fast": ("DeepFM", {"fast_dataloader": True}),
    "DLRREC fast fp32": ("DLRREC", {"fast_dataloader": True, "train_precision": "fp32"}),
    "DLRREC fast random/512": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "random", "cl_max_anchors": 512}),
    "DLRREC fast shared/512": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "shared", "cl_max_anchors": 512}),
    "DLRREC fast random/all": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "random", "cl_max_anchors": None}),
    "DLRREC fast shared/all": ("DLRREC", {"fast_dataloader": True, "cl_negatives": "shared", "cl_max_anchors": None}),
    "DLRREC fast no heads": ("DLRREC", {"fast_dataloader": True, "w1": 0.0, "w2": 0.0}),
}
MAIN_RUNS = list(RUNS)[:5]
# (label, numerator run, denominator run, target or None)
RATIOS = [
    ("DeepFM fast / DeepFM standard", "DeepFM fast", "DeepFM standard", 3.0),
    ("DLRREC fast / DLRREC standard", "DLRREC fast", "DLRREC standard", 2.0),
    ("DLRREC fast / DeepFM standard", "DLRREC fast", "DeepFM standard", 1.0),
    ("DLRREC fast fp32 / DeepFM standard", "DLRREC fast fp32", "DeepFM standard", None),
    ("DLRREC fast / DLRREC fast fp32", "DLRREC fast", "DLRREC fast fp32", None),
    ("DLRREC fast shared/512 / random/512", "DLRREC fast shared/512", "DLRREC fast random/512", None),
    ("DLRREC fast random/all / random/512", "DLRREC fast random/all", "DLRREC fast random/512", None),
    ("DLRREC fast shared/all / shared/512", "DLRREC fast shared/all", "DLRREC fast shared/512", None),
    ("DLRREC fast no heads / random/512", "DLRREC fast no heads", "DLRREC fast random/512", None),
    ("DLRREC fast no heads / shared/512", "DLRREC fast no heads", "DLRREC fast shared/512", None),
    ("DLRREC fast no heads / DeepFM standard", "DLRREC fast no heads", "DeepFM standard", None),
]
SCALING_RUNS = ["DeepFM standard", "DLRREC fast"]
# The headline target measured again with every run in a fresh process (what a user's
# run_recbole.py is): a long-lived session process carries allocator state from run to run, which
# moved same-config runs by up to ~25% on the 2M-row data.
FRESH_RUNS = ["DeepFM standard", "DLRREC fast"]
FRESH_WARMUP_BATCHES = 5


# ---------------------------------------------------------------------------------------------
# generated dataset (same layout as the converter's restaurants output)
# ---------------------------------------------------------------------------------------------
def generated_name(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"bench-{rows // 1_000_000}m"
    if rows % 1000 == 0:
        return f"bench-{rows // 1000}k"
    return f"bench-{rows}"


DATASET_YAML = """\
# Generated by benchmarks/bench_train.py (synthetic; same layout as the restaurants converter output).
field_separator: "\\t"           # (str) Atomic files are tab-separated.
seq_separator: " "              # (str) categories (token_seq) holds space-separated tokens.
USER_ID_FIELD: user_id          # (str) User token.
ITEM_ID_FIELD: item_id          # (str) Item token.
LABEL_FIELD: label              # (str) 1 if rating >= 4, else 0 (precomputed).
TIME_FIELD: timestamp           # (str) ms since epoch; not loaded (the split is fixed).
threshold: ~                    # (dict) Labels are in the files.
load_col:                       # (dict) Columns RecBole loads.
  inter: [user_id, item_id, label]
  item: [item_id, price, categories, latitude, longitude, pic_count]
  user: [user_id, n_train_reviews]
numerical_features: [latitude, longitude, pic_count, n_train_reviews]   # (list) Float fields the context models embed.
normalize_field: [latitude, longitude, pic_count, n_train_reviews]      # (list) Min-max scaled by RecBole.
benchmark_filename: [train, valid, test]   # (list) Pre-split files (time order 80/10/10).
eval_args:                      # (dict) The benchmark files are the split.
  group_by: ~
  order: TO
  mode: labeled
train_neg_sample_args: ~        # (dict) Labels come from ratings.
metrics: [AUC, LogLoss, Accuracy, FPR, Precision, Recall, F1]  # (list) Value metrics.
valid_metric: AUC               # (str) Model selection on validation AUC.
eval_batch_size: 4096           # (int) Rows per evaluation batch.
item_text_vec: itemvec          # (str) {name}.itemvec.npz: item text vectors.
user_text_vec: uservec          # (str) {name}.uservec.npz: user text vectors (users with train rows only).
"""


def write_generated_dataset(data_path: str, rows: int, seed: int = 0, dim: int = TEXT_DIM) -> str:
    """Write `<data_path>/<generated_name(rows)>/` unless the same version/rows/seed/dim is there.

    Users = rows / 20, items = rows / 200 (at least 60 and 40), Zipf-like activity and
    popularity. A hidden taste factor per user and item drives the rating; the text vectors are
    noisy projections of those factors, the item categories and price are derived from them.
    Label = rating >= 4 (about 85% positive). Time-ordered 80/10/10 split. Returns the name.
    """
    from recbole_dlrrec.data.text_vectors import save_text_vectors

    name = generated_name(rows)
    folder = os.path.join(data_path, name)
    stamp = {"version": GENERATOR_VERSION, "rows": rows, "seed": seed, "dim": dim}
    stamp_file = os.path.join(folder, "GENERATED.json")
    if os.path.isfile(stamp_file):
        with open(stamp_file, encoding="utf-8") as handle:
            if json.load(handle) == stamp:
                return name
    rng = np.random.default_rng(seed)
    n_users, n_items, k = max(60, rows // 20), max(40, rows // 200), 8
    user_f = rng.normal(size=(n_users, k)).astype(np.float32)
    item_f = rng.normal(size=(n_items, k)).astype(np.float32)
    user_p = rng.permutation(np.arange(1, n_users + 1) ** -0.6)
    item_p = rng.permutation(np.arange(1, n_items + 1) ** -0.8)
    users = rng.choice(n_users, rows, p=user_p / user_p.sum())
    items = rng.choice(n_items, rows, p=item_p / item_p.sum())
    item_bias = rng.normal(0, 0.4, n_items)
    score = (np.einsum("nk,nk->n", user_f[users], item_f[items]) / math.sqrt(k)
             + item_bias[items] + rng.normal(0, 0.5, rows))
    rating = 1 + np.searchsorted(np.quantile(score, [0.035, 0.065, 0.125, 0.40]), score)
    label = (rating >= 4).astype(np.int8)
    timestamp = np.sort(rng.integers(1_451_606_400_000, 1_630_454_400_000, rows))
    order = rng.permutation(rows)  # rows in time order, drawn in random user/item order
    users, items, rating, label = users[order], items[order], rating[order], label[order]

    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=data_path if os.path.isdir(data_path) else None)
    try:
        cuts = [0, int(0.8 * rows), int(0.9 * rows), rows]
        for split, lo, hi in zip(("train", "valid", "test"), cuts[:-1], cuts[1:]):
            with open(os.path.join(tmp, f"{name}.{split}.inter"), "w", encoding="utf-8") as f:
                f.write("user_id:token\titem_id:token\trating:float\tlabel:float\ttimestamp:float\n")
                block = np.stack([users[lo:hi], items[lo:hi], rating[lo:hi], label[lo:hi], timestamp[lo:hi]], 1)
                np.savetxt(f, block, fmt="%d", delimiter="\t")
        n_cat = 30
        cat_scores = item_f @ rng.normal(size=(k, n_cat)).astype(np.float32)
        top = np.argsort(-cat_scores, axis=1)[:, :3]
        n_cats = rng.integers(1, 4, n_items)
        price = np.clip(np.round(2.5 + item_f[:, 0]), 1, 4).astype(int)
        price_known = rng.random(n_items) >= 0.08
        lat, lon = 42 + rng.normal(0, 0.2, n_items), -76 + rng.normal(0, 0.2, n_items)
        train_items, train_users = items[:cuts[1]], users[:cuts[1]]
        pics = np.bincount(train_items, minlength=n_items) * 0.08
        with open(os.path.join(tmp, f"{name}.item"), "w", encoding="utf-8") as f:
            f.write("item_id:token\tprice:token\tcategories:token_seq\tlatitude:float\tlongitude:float\tpic_count:float\n")
            for i in range(n_items):
                cats = " ".join(f"c{c}" for c in top[i, :n_cats[i]])
                p = "$" * price[i] if price_known[i] else "unknown"
                f.write(f"{i}\t{p}\t{cats}\t{lat[i]:.5f}\t{lon[i]:.5f}\t{pics[i]:.0f}\n")
        reviews = np.bincount(train_users, minlength=n_users)
        with open(os.path.join(tmp, f"{name}.user"), "w", encoding="utf-8") as f:
            f.write("user_id:token\tn_train_reviews:float\n")
            np.savetxt(f, np.stack([np.arange(n_users), reviews], 1), fmt="%d", delimiter="\t")
        projection = rng.normal(size=(k, dim)).astype(np.float32)

        def text(factors, noise):
            vec = factors @ projection + noise * rng.normal(size=(len(factors), dim)).astype(np.float32)
            return vec / np.linalg.norm(vec, axis=1, keepdims=True)

        save_text_vectors(os.path.join(tmp, f"{name}.itemvec.npz"), np.arange(n_items), text(item_f, 2.0))
        with_text = np.flatnonzero(reviews > 0)  # like the converter: users without train text get no row
        save_text_vectors(os.path.join(tmp, f"{name}.uservec.npz"), with_text, text(user_f[with_text], 3.0))
        with open(os.path.join(tmp, f"{name}.yaml"), "w", encoding="utf-8") as f:
            f.write(DATASET_YAML)
        with open(os.path.join(tmp, "GENERATED.json"), "w", encoding="utf-8") as f:
            json.dump(stamp, f)
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------
class LimitedLoader:
    """At most `max_batches` batches per pass of `loader`; everything else is `loader`'s.

    Notes when the first batch of a pass came out (`first_at`, perf_counter seconds), so that a
    partial pass can be extrapolated to a full epoch without over-weighting the once-per-epoch
    work (drawing the permutation) that happens before it."""

    def __init__(self, loader, max_batches: Optional[int]):
        self._loader = loader
        self._max = max_batches
        self.first_at: Optional[float] = None

    def __iter__(self):
        self.first_at = None
        batches = itertools.islice(iter(self._loader), self._max) if self._max else iter(self._loader)
        for batch in batches:
            if self.first_at is None:
                self.first_at = time.perf_counter()
            yield batch

    def __len__(self):
        return min(len(self._loader), self._max) if self._max else len(self._loader)

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def rows_per_pass(self) -> int:
        full = len(self._loader._dataset)
        if not self._max or self._max >= len(self._loader):
            return full
        return self._max * self._loader.step


class PeakRSS:
    """Highest resident set size of this process while the context is open (sampled every 20 ms;
    the ru_maxrss of the process is the better number for whole-process peaks)."""

    def __init__(self, interval: float = 0.02):
        try:
            import psutil

            self._rss = psutil.Process().memory_info
        except ImportError:  # without psutil: the process's peak so far (ru_maxrss)
            self._rss = None
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _now(self) -> int:
        return self._rss().rss if self._rss else int(max_rss_mib() * 2**20)

    def _poll(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._now())
            self._stop.wait(self._interval)

    def __enter__(self):
        self.peak = self._now()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())


def max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _quiet():
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    for name in ("recbole_dlrrec", "recbole_dlrrec.swing.cache"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _base_overrides(spec: dict) -> dict:
    cuda = spec["device"] == "cuda"
    out = {
        "train_batch_size": spec["batch"],
        "eval_batch_size": spec["eval_batch"],
        "epochs": spec["epochs"],
        "show_progress": False,
        "use_gpu": cuda,
        # RecBole 1.2.1 picks the GPU whenever gpu_id is set and CUDA is visible (use_gpu is not read)
        "gpu_id": "0" if cuda else "",
        "checkpoint_dir": spec["tmp"],
        "data_path": spec["data_path"],
        "seed": spec["seed"],
    }
    return out


def _sync(device: str):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _step_overrides(spec: dict) -> dict:
    """The config keys behind the amp / fused variants (and --fused-adam): the same settings
    a user gives, applied by build_config / build_trainer (recbole_dlrrec/training.py)."""
    out = {}
    if spec.get("amp"):
        out["train_precision"] = "bf16"
    if spec.get("fused_adam"):
        out["fused_optimizer"] = True
    return out


def _apply_step_options(trainer, spec: dict) -> List[str]:
    """Notes on the step variants; --compile (guarded by the caller) is applied here."""
    import torch

    notes = []
    if spec.get("amp"):
        notes.append("amp bf16")
    if spec.get("fused_adam"):
        fused = trainer.optimizer.param_groups[0].get("fused")
        notes.append("fused-adam" if fused else "fused-adam refused (see the log)")
    if spec.get("compile"):
        mode = None if spec["compile"] == "default" else spec["compile"]
        model = trainer.model
        model.forward = torch.compile(model.forward, mode=mode)
        notes.append(f"compile({spec['compile']})")
    return notes


def _auc(result) -> Optional[float]:
    if not result:
        return None
    value = result.get("auc")
    return None if value is None else float(value)


VARIANT_OPTIONS = {
    "plain": {},
    "fused": {"fused_adam": True},
    "compile": {"compile": "default"},
    "cudagraphs": {"compile": "reduce-overhead"},  # torch.compile with CUDA graphs
    "max-autotune": {"compile": "max-autotune"},
    "amp": {"amp": True},  # train_precision: bf16
}


def variant_options(variant: str) -> dict:
    """'fused+cudagraphs' -> {'fused_adam': True, 'compile': 'reduce-overhead'}."""
    options = {}
    for part in variant.split("+"):
        if part not in VARIANT_OPTIONS:
            raise SystemExit(f"unknown variant part {part!r}; known: {sorted(VARIANT_OPTIONS)}")
        options.update(VARIANT_OPTIONS[part])
    return options


def expand_runs(runs: List[str], variants: List[str]) -> List[tuple]:
    """(label, base run, step options): every run plain, plus each variant of the fast headline runs."""
    out = [(run, run, {}) for run in runs]
    for variant in variants:
        if variant == "plain":
            continue
        for run in ("DLRREC fast", "DeepFM fast"):
            if run in runs:
                out.append((f"{run} [{variant}]", run, variant_options(variant)))
    return out


def _train_loader_for_batch(loader, config):
    """The TRAIN loader at config's train_batch_size (RecBole's torch DataLoader fixes its batch
    size when built, so the standard one is rebuilt; the fast one just changes its step)."""
    from recbole.data.dataloader.general_dataloader import TrainDataLoader

    if isinstance(loader, TrainDataLoader):
        return TrainDataLoader(config, loader._dataset, loader._sampler, shuffle=loader.shuffle)
    loader.update_config(config)
    return loader


def worker_session(spec: dict) -> dict:
    """One dataset, loaded once. For each batch size, every run (and variant) takes turns for
    `repeats` rounds, each time with a fresh model from the same seed."""
    import torch

    from recbole_dlrrec.runtime.fast_loader import fast_dataloaders
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits

    _quiet()
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    dataset = spec["dataset"]
    base = _base_overrides(spec)
    started = time.perf_counter()
    config0 = build_config("DeepFM", dataset, config_dict={**base, "fast_dataloader": False})
    _, train, valid, test = load_splits(config0)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    fast = fast_dataloaders(config0, train, valid, test)
    join_s = time.perf_counter() - started
    out = {"dataset": dataset, "train_rows": len(train._dataset), "valid_rows": len(valid._dataset),
           "test_rows": len(test._dataset), "load_s": load_s, "join_s": join_s,
           "fast_table_mib": sum(loader.nbytes for loader in fast) / 2**20, "rss_after_load_mib": max_rss_mib(),
           "batches": {}}
    runs = expand_runs(spec["runs"], spec.get("variants") or [])
    for batch in spec["batches"]:
        config_b = build_config("DeepFM", dataset, config_dict={**base, "train_batch_size": batch})
        loaders = {False: (_train_loader_for_batch(train, config_b), valid, test),
                   True: (_train_loader_for_batch(fast[0], config_b), fast[1], fast[2])}
        records = {label: {"epoch_s": [], "rounds": {}, "notes": []} for label, _, _ in runs}
        loader_only = {"standard": [], "fast": []}
        for round_idx in range(spec["repeats"]):
            if not (spec.get("deadline") and time.time() > spec["deadline"]):
                for path, is_fast in (("standard", False), ("fast", True)):
                    loader_only[path].append(_loader_rate(loaders[is_fast][0], spec["max_batches"]))
            shift = round_idx % len(runs)
            for label, run, options in runs[shift:] + runs[:shift]:
                if spec.get("deadline") and time.time() > spec["deadline"]:
                    records[label].setdefault("skipped", f"time budget spent before round {round_idx}")
                    continue
                if not records[label].get("error"):
                    _one_run(spec, records[label], run, {**spec, **options}, loaders, base, batch, round_idx)
        for rec in records.values():
            _summarise(rec)
        out["batches"][str(batch)] = {"runs": records, "ratios": paired_ratios(records),
                                      "eval_ratios": eval_ratios(records),
                                      "loader_only": {k: statistics.median(v) for k, v in loader_only.items() if v}}
        if spec.get("partial_out"):  # what is done survives a kill (launch() reads it back)
            atomic.write_text(spec["partial_out"], json.dumps({**out, "partial": True}, default=str))
    out["peak_rss_process_mib"] = max_rss_mib()
    return out


def _loader_rate(loader, max_batches: Optional[int]) -> float:
    """Samples/s of iterating the TRAIN loader alone (no model), extrapolated like the epochs."""
    limited = LimitedLoader(loader, max_batches)
    t0 = time.perf_counter()
    for _ in limited:
        pass
    t1 = time.perf_counter()
    rows, full = limited.rows_per_pass(), len(loader._dataset)
    if rows < full and limited.first_at is not None and t1 > limited.first_at:
        return full / ((limited.first_at - t0) + full * (t1 - limited.first_at) / rows)
    return full / (t1 - t0)


def _one_run(spec, rec, run, options, loaders, base, batch, round_idx) -> None:
    """Train `run` once (fresh model, seed-reset loaders) and add its timings to `rec`."""
    import torch

    from recbole_dlrrec.runtime.quick_start import build_config, build_model
    from recbole_dlrrec.runtime.training import build_trainer

    device = spec["device"]
    model_name, overrides = RUNS[run]
    tr, va, te = loaders[bool(overrides.get("fast_dataloader"))]
    try:
        seed = spec["seed"] + (round_idx if spec.get("seed_per_round") else 0)
        config = build_config(model_name, spec["dataset"], config_dict={
            **base, **overrides, **_step_overrides(options), "train_batch_size": batch, "seed": seed})

        def reseed():  # both paths then draw the same orders (on the CPU: the same batches)
            for path in (False, True):
                loaders[path][0].generator.manual_seed(seed)

        reseed()
        model = build_model(config, tr)
        trainer = build_trainer(config, model)  # what run_recbole.py builds
        rec["notes"] = _apply_step_options(trainer, options)
        if model_name == "DLRREC":
            heads = ("no heads" if not (config["w1"] or config["w2"]) else
                     f"heads {config['cl_negatives']}/{config['cl_max_anchors'] or 'all'} "
                     f"(w1 {config['w1']:g}, w2 {config['w2']:g}, tau {config['tau']:g})")
            rec["notes"].insert(0, heads)
        if spec["warmup_batches"]:
            trainer._train_epoch(LimitedLoader(tr, spec["warmup_batches"]), -1)
            reseed()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        limited = LimitedLoader(tr, spec["max_batches"])
        full_rows = len(tr._dataset)
        epoch_times: List[float] = []  # measured, or extrapolated to a full epoch
        valid_aucs: List[Optional[float]] = []
        train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

        def timed(train_data, epoch_idx, *args, **kwargs):
            _sync(device)
            t0 = time.perf_counter()
            result = train_epoch(train_data, epoch_idx, *args, **kwargs)
            _sync(device)
            t1 = time.perf_counter()
            rows = train_data.rows_per_pass()
            if rows < full_rows and train_data.first_at is not None and t1 > train_data.first_at:
                # the steady rate after the epoch's set-up (drawing the permutation), over a full epoch
                epoch_times.append((train_data.first_at - t0) + full_rows * (t1 - train_data.first_at) / rows)
            else:
                epoch_times.append(t1 - t0)
            return result

        def timed_valid(valid_data, *args, **kwargs):
            t0 = time.perf_counter()
            score, result = valid_epoch(valid_data, *args, **kwargs)
            rec.setdefault("eval_times", []).append(time.perf_counter() - t0)
            valid_aucs.append(_auc(result))
            return score, result

        trainer._train_epoch, trainer._valid_epoch = timed, timed_valid
        evaluate = round_idx == 0 or spec.get("seed_per_round")
        with PeakRSS() as rss:
            trainer.fit(limited, va if evaluate else None, saved=False, show_progress=False)
            test_result = trainer.evaluate(te, load_best_model=False) if evaluate else None
        rec["epoch_s"].extend(epoch_times)
        rec["rounds"][round_idx] = statistics.median(epoch_times)
        rec["rows_per_epoch"], rec["rows_timed"] = full_rows, limited.rows_per_pass()
        rec["eval_rows"] = len(va._dataset)
        rec["peak_rss_mib"] = max(rec.get("peak_rss_mib", 0.0), rss.peak / 2**20)
        if device == "cuda":
            rec["cuda_max_alloc_mib"] = max(rec.get("cuda_max_alloc_mib", 0.0),
                                            torch.cuda.max_memory_allocated() / 2**20)
        if evaluate:
            rec.setdefault("valid_auc_rounds", []).append(valid_aucs[-1] if valid_aucs else None)
            rec.setdefault("valid_auc_best_rounds", []).append(_auc(trainer.best_valid_result))
            rec.setdefault("test_auc_rounds", []).append(_auc(test_result))
            rec["num_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    except Exception as exc:  # a refused option (e.g. --compile without a compiler) ends that run only
        message = str(exc).strip().splitlines()
        rec["error"] = f"{type(exc).__name__}: {message[0][:160] if message else ''}"


def _summarise(rec: dict) -> None:
    if not rec["epoch_s"]:
        return
    rec["median_epoch_s"] = rec["epoch_s_full"] = statistics.median(rec["rounds"].values())
    rec["samples_per_s"] = rec["rows_per_epoch"] / rec["median_epoch_s"]
    rec["extrapolated"] = rec["rows_timed"] < rec["rows_per_epoch"]
    if rec.get("eval_times"):
        rec["eval_s"] = statistics.median(rec["eval_times"])
        rec["eval_samples_per_s"] = rec["eval_rows"] / rec["eval_s"]
    for key in ("valid_auc", "valid_auc_best", "test_auc"):
        values = [v for v in rec.get(f"{key}_rounds", []) if v is not None]
        if values:
            rec[key] = sum(values) / len(values)
        if len(values) > 1:
            rec[f"{key}_sd"] = statistics.stdev(values)


def eval_ratios(records: dict) -> dict:
    """Evaluation (valid split) samples/s, fast over standard, from the evaluated rounds."""
    out = {}
    for model in ("DeepFM", "DLRREC"):
        fast, std = records.get(f"{model} fast", {}), records.get(f"{model} standard", {})
        if fast.get("eval_samples_per_s") and std.get("eval_samples_per_s"):
            out[f"{model} fast / {model} standard (eval)"] = fast["eval_samples_per_s"] / std["eval_samples_per_s"]
    return out


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def paired_ratios(records: dict) -> dict:
    """Speed ratio numerator/denominator (samples/s) per round, then the median over rounds."""
    out = {}
    for label, num, den, target in RATIOS:
        if num not in records or den not in records:
            continue
        a, b = records[num]["rounds"], records[den]["rounds"]
        rows_a, rows_b = records[num].get("rows_per_epoch"), records[den].get("rows_per_epoch")
        per_round = [(rows_a / a[r]) / (rows_b / b[r]) for r in sorted(set(a) & set(b))]
        if per_round:
            out[label] = {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round),
                          "rounds": len(per_round), "target": target,
                          "met": None if target is None else statistics.median(per_round) >= target}
    return out


def fresh_ratio(points: List[dict], num: str, den: str) -> Optional[dict]:
    """samples/s of `num` over `den`, per round (both in fresh processes), then the median."""
    rates = {(p["round"], p["run"]): p["samples_per_s"] for p in points if p.get("samples_per_s")}
    per_round = [rates[(r, num)] / rates[(r, den)] for r in sorted({r for r, _ in rates})
                 if (r, num) in rates and (r, den) in rates]
    if not per_round:
        return None
    return {"label": f"{num} / {den}", "median": statistics.median(per_round), "min": min(per_round),
            "max": max(per_round), "rounds": len(per_round),
            "rates": {run: statistics.median([p["samples_per_s"] for p in points
                                              if p["run"] == run and p.get("samples_per_s")] or [0.0])
                      for run in (num, den)}}


def worker_scaling(spec: dict) -> dict:
    """One size, one run, fresh process: data load + join + model + timed epoch; peak RSS."""
    import torch

    from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits
    from recbole_dlrrec.runtime.training import build_trainer

    _quiet()
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    model_name, overrides = RUNS[spec["run"]]
    base = _base_overrides(spec)
    t0 = time.perf_counter()
    config = build_config(model_name, spec["dataset"], config_dict={**base, **overrides, "epochs": 1})
    _, train, valid, _ = load_splits(config)
    load_s = time.perf_counter() - t0
    rss_loaded = max_rss_mib()
    model = build_model(config, train)
    trainer = build_trainer(config, model)  # what run_recbole.py builds
    limited = LimitedLoader(train, spec["max_batches"])
    trainer._train_epoch(LimitedLoader(train, spec.get("fresh_warmup") or 1), -1)  # warm-up
    _sync(spec["device"])
    t0 = time.perf_counter()
    trainer._train_epoch(limited, 0)
    _sync(spec["device"])
    t1 = time.perf_counter()
    full_rows = len(train._dataset)
    if limited.rows_per_pass() < full_rows:  # extrapolate the steady rate after the epoch's set-up
        epoch_s = (limited.first_at - t0) + full_rows * (t1 - limited.first_at) / limited.rows_per_pass()
    else:
        epoch_s = t1 - t0
    out = {"run": spec["run"], "dataset": spec["dataset"], "rows": spec["rows"], "train_rows": full_rows,
           "load_s": load_s, "samples_per_s": full_rows / epoch_s, "epoch_s": epoch_s,
           "extrapolated": limited.rows_per_pass() < len(train._dataset),
           "rss_after_load_mib": rss_loaded, "peak_rss_mib": max_rss_mib()}
    if spec["device"] == "cuda":
        out["cuda_max_alloc_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def worker_encoder(spec: dict) -> dict:
    """Sentences/s of the TextEncoder with an empty cache in a temporary directory."""
    _quiet()
    try:
        from recbole_dlrrec.data.encoder import TextEncoder
    except ImportError as exc:
        return {"error": f"ImportError: {exc}"}
    rng = np.random.default_rng(0)
    words = ("great pasta friendly staff slow service cozy room spicy noodles fair prices the a was and "
             "we loved it not worth wait again dessert").split()
    texts = [" ".join(rng.choice(words, rng.integers(8, 40))) + f" #{i}" for i in range(spec["sentences"])]
    device = "cuda" if spec["device"] == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as cache_dir:
        try:
            encoder = TextEncoder(cache_path=os.path.join(cache_dir, "vectors.sqlite"), device=device,
                                  show_progress=False)
            t0 = time.perf_counter()
            encoder._get_model()
            load_s = time.perf_counter() - t0
            encoder.encode(texts[:8])  # warm-up (first batch builds kernels)
            t0 = time.perf_counter()
            vectors = encoder.encode(texts[8:])
            encode_s = time.perf_counter() - t0
            stats = dict(encoder.last_stats)
            encoder.close()
        except Exception as exc:  # a missing model package is reported, not fatal
            return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
    n = len(texts) - 8
    return {"sentences": n, "dim": int(vectors.shape[1]), "model_load_s": load_s, "encode_s": encode_s,
            "sentences_per_s": n / encode_s, "cache_stats": stats, "device": device}


def _row_matrix(columns: Dict[str, "object"], n: int) -> np.ndarray:
    """n x C float64 matrix of every field's values (multi-column fields flattened), on the CPU."""
    return np.concatenate([columns[k].reshape(n, -1).double().cpu().numpy() for k in columns], axis=1)


def _sorted_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.lexsort(matrix.T[::-1])]


def check_exactness(spec: dict) -> dict:
    """--check on the chosen device: the fast loaders against RecBole's own join, row for row."""
    import torch

    from recbole_dlrrec.runtime.fast_loader import FastEvalDataLoader, FastTrainDataLoader, join_columns
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits

    _quiet()
    started = time.perf_counter()
    base = _base_overrides(spec)
    config = build_config("DeepFM", spec["dataset"], config_dict={**base, "fast_dataloader": False})
    _, train, valid, _ = load_splits(config)
    dataset = train._dataset
    device = torch.device(config["device"])
    n = len(dataset)
    expected = dataset[np.arange(n)]  # RecBole's own join (Dataset.__getitem__), on the CPU
    joined = join_columns(dataset, device)
    join_ok = list(joined) == list(expected.interaction) and all(
        joined[k].device.type == device.type and joined[k].dtype == expected[k].dtype
        and torch.equal(joined[k].cpu(), expected[k]) for k in joined)

    loader = FastTrainDataLoader(config, dataset, shuffle=True, device=device)
    batches = list(loader)
    epoch = {k: torch.cat([b[k] for b in batches]) for k in expected.interaction}
    rows_ok = bool(np.array_equal(_sorted_rows(_row_matrix(epoch, n)),
                                  _sorted_rows(_row_matrix(expected.interaction, n))))
    second = torch.cat([b[dataset.iid_field] for b in loader])
    reshuffled = not torch.equal(second, epoch[dataset.iid_field])
    again = FastTrainDataLoader(config, dataset, shuffle=True, device=device)
    order_ok = torch.equal(torch.cat([b[dataset.iid_field] for b in again]), epoch[dataset.iid_field])

    eval_loader = FastEvalDataLoader(config, valid._dataset, device=device, phase="valid")
    eval_ok = all(
        fast_batch[1:] == std_batch[1:] and all(torch.equal(fast_batch[0][k].cpu(), std_batch[0][k])
                                                for k in std_batch[0].interaction)
        for fast_batch, std_batch in zip(eval_loader, valid))
    return {"dataset": spec["dataset"], "device": str(device), "rows": n, "seconds": time.perf_counter() - started,
            "join_equals_recbole": bool(join_ok), "epoch_rows_equal_recbole": rows_ok,
            "next_epoch_reshuffled": bool(reshuffled), "same_seed_same_order": bool(order_ok),
            "eval_batches_equal_recbole": bool(eval_ok)}


WORKERS = {"session": worker_session, "scaling": worker_scaling, "encoder": worker_encoder, "check": check_exactness}


def worker_prepare(spec: dict) -> dict:
    """Build (or find) a dataset's SWING cache outside any measured process: computing it runs
    numba's parallel kernels, which leave OpenMP threads behind that slow the training after."""
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits
    from recbole_dlrrec.swing.cache import swing_for_dataset

    _quiet()
    config = build_config("DLRREC", spec["dataset"], config_dict=_base_overrides(spec))
    _, train, _, _ = load_splits(config)
    t0 = time.perf_counter()
    swing_for_dataset(config, train._dataset, progress=False)
    if spec.get("marker"):
        with open(os.path.join(spec["data_path"], spec["dataset"], "SWING_READY"), "w", encoding="utf-8") as f:
            f.write("swing cache built by benchmarks/bench_train.py\n")
    return {"dataset": spec["dataset"], "swing_s": time.perf_counter() - t0}


WORKERS["prepare"] = worker_prepare


# ---------------------------------------------------------------------------------------------
# orchestration and report
# ---------------------------------------------------------------------------------------------
def launch(kind: str, spec: dict, timeout: Optional[float] = None) -> dict:
    """Run one worker in a fresh Python process (its own peak RSS); returns its JSON or an error
    (with whatever the worker had finished, when it wrote partial results)."""
    if timeout is not None and timeout <= 0:
        return {"error": f"{kind} worker skipped: time budget spent"}
    fd, out_path = tempfile.mkstemp(prefix="bench-train-", suffix=".json")
    os.close(fd)
    os.remove(out_path)
    spec = {**spec, "partial_out": out_path}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--spec", json.dumps(spec),
           "--worker-out", out_path]
    env = dict(os.environ)
    # libgomp's default active spin-wait makes OpenMP threads stall each other on shared cores
    # (5-10x slower steps measured here), and numba's SWING kernels resize torch's OpenMP team.
    env.setdefault("OMP_WAIT_POLICY", "passive")
    error = None
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            error = f"{kind} worker exited {proc.returncode}: {' | '.join(tail)[:400]}"
    except subprocess.TimeoutExpired:
        error = f"{kind} worker timed out after {timeout:.0f} s"
    try:
        with open(out_path, encoding="utf-8") as handle:
            result = json.load(handle)
    except (OSError, ValueError):
        result = {}
    finally:
        with contextlib.suppress(OSError):
            os.remove(out_path)
    if error:
        result["error"] = error
    return result


def machine_info(device: str) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": device, "niceness": os.nice(0)}
    with contextlib.suppress(OSError):
        info["load_avg"] = os.getloadavg()
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def linear_fit(xs: List[float], ys: List[float]) -> Optional[dict]:
    if len(xs) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return {"slope": float(slope), "intercept": float(intercept)}


def _fmt(value, spec: str = ",.0f", missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def render(report: dict) -> str:
    out = io.StringIO()
    m = report["machine"]
    p = report["params"]
    out.write(f"machine: {m['cpu']} ({m['cpu_count']} CPUs), {m['platform']}, python {m['python']}, "
              f"torch {m['torch']} ({p.get('threads') or m['torch_threads']} thread(s) per worker), device {m['device']}"
              f"{', ' + m['gpu'] if m.get('gpu') else ''}, nice {m['niceness']}, "
              f"load avg at start {tuple(round(x, 1) for x in m.get('load_avg', ()))}\n")
    out.write(f"batch {', '.join(str(b) for b in p.get('batches', [p['batch']]))}, eval batch {p['eval_batch']}, {p['repeats']} round(s) x {p['epochs']} epoch(s), "
              f"seed {p['seed']}{' + round' if p.get('seed_per_round') else ''}{', fused Adam' if p['fused_adam'] else ''}"
              f"{', compile=' + p['compile'] if p['compile'] else ''}\n")
    for session in report["sessions"]:
        out.write("\n")
        if "batches" not in session:
            out.write(f"dataset {session.get('dataset', '?')}: ERROR {session.get('error')}\n")
            continue
        limit = session.get("max_batches")
        out.write(f"dataset {session['dataset']}: train {session['train_rows']:,} rows (valid {session['valid_rows']:,}, "
                  f"test {session['test_rows']:,}); RecBole load {session['load_s']:.1f} s, fast join {session['join_s']:.2f} s, "
                  f"fast tables {session['fast_table_mib']:.1f} MiB\n")
        if session.get("error"):
            out.write(f"  (incomplete: {session['error']})\n")
        for batch, block in session["batches"].items():
            note = (f"; timed: first {limit} batches of each epoch, s/epoch extrapolated from their steady rate (~)"
                    if limit else "")
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
                line = (f"  {name:32s} {_fmt(rec.get('samples_per_s')):>10s} {epoch_s:>9s} "
                        f"{_fmt(rec.get('eval_samples_per_s')):>9s} {_fmt(rec.get('peak_rss_mib')):>12s}")
                if m["device"] == "cuda":
                    line += f" {_fmt(rec.get('cuda_max_alloc_mib')):>9s}"
                line += f" {_fmt(rec.get('valid_auc'), '.4f'):>9s} {_fmt(rec.get('test_auc'), '.4f'):>9s}"
                if rec.get("valid_auc_sd") is not None:
                    line += (f"  sd over seeds: valid {rec['valid_auc_sd']:.4f}, test {rec.get('test_auc_sd', 0):.4f}; "
                             f"best-epoch valid {rec.get('valid_auc_best', 0):.4f}")
                if rec.get("notes"):
                    line += f"  {', '.join(rec['notes'])}"
                out.write(line.rstrip() + "\n")
            lo = block.get("loader_only", {})
            if lo.get("standard") and lo.get("fast"):
                b = int(batch)
                std_ms, fast_ms = 1000 * b / lo["standard"], 1000 * b / lo["fast"]
                out.write(f"  loaders alone (no model): standard {lo['standard']:,.0f} samples/s = {std_ms:.1f} ms/batch, "
                          f"fast {lo['fast']:,.0f} samples/s = {fast_ms:.2f} ms/batch\n")
                for model in ("DeepFM", "DLRREC"):
                    rate = block["runs"].get(f"{model} fast", {}).get("samples_per_s")
                    if rate:
                        step_ms = 1000 * b / rate - fast_ms  # the model's own share of a fast-path step
                        bound = (step_ms + std_ms) / (step_ms + fast_ms)
                        out.write(f"  {model} step without loading ~{step_ms:.1f} ms/batch: the loader swap can give at "
                                  f"most {bound:.2f}x\n")
            out.write("  ratios of training samples/s (median of per-round ratios [min .. max]):\n")
            for label, r in block["ratios"].items():
                verdict = "" if r["target"] is None else f"  target >= {r['target']:g}x: {'MET' if r['met'] else 'NOT met'}"
                out.write(f"    {label:40s} {r['median']:6.2f}x [{r['min']:.2f} .. {r['max']:.2f}]{verdict}\n")
            for label, value in block.get("eval_ratios", {}).items():
                out.write(f"    {label:40s} {value:6.2f}x\n")
    for fresh in report.get("fresh", []):
        r = fresh.get("ratio")
        out.write(f"\nfresh processes, {fresh['dataset']} (each run in its own process, {FRESH_WARMUP_BATCHES} warm-up "
                  "batches, then the timed batches as above; runs alternate):\n")
        for point in fresh["points"]:
            if "error" in point:
                out.write(f"  round {point['round']} {point['run']:18s} ERROR {point['error']}\n")
        if r:
            rates = ", ".join(f"{run} {rate:,.0f}" for run, rate in r["rates"].items())
            out.write(f"  median samples/s: {rates}\n")
            out.write(f"    {r['label']:40s} {r['median']:6.2f}x [{r['min']:.2f} .. {r['max']:.2f}]  target >= 1x: "
                      f"{'MET' if r['median'] >= 1 else 'NOT met'}\n")
    if report.get("scaling"):
        out.write("\nscaling (one fresh process per point; peak RSS = the process's ru_maxrss):\n")
        out.write(f"{'run':18s} {'rows':>10s} {'train rows':>10s} {'load s':>7s} {'samples/s':>10s} {'s/epoch':>9s} "
                  f"{'RSS loaded':>10s} {'peak RSS MiB':>12s}\n")
        for point in report["scaling"]:
            if "error" in point:
                out.write(f"{point.get('run', '?'):18s} {point.get('rows', 0):>10,} ERROR {point['error']}\n")
                continue
            epoch_s = ("~" if point["extrapolated"] else "") + f"{point['epoch_s']:.1f}"
            out.write(f"{point['run']:18s} {point['rows']:>10,} {point['train_rows']:>10,} {point['load_s']:7.1f} "
                      f"{point['samples_per_s']:10,.0f} {epoch_s:>9s} {point['rss_after_load_mib']:10,.0f} "
                      f"{point['peak_rss_mib']:12,.0f}\n")
        for run, fit in report.get("memory_per_million_rows", {}).items():
            out.write(f"  peak RSS of {run}: {fit['slope']:,.0f} MiB per million rows (+ {fit['intercept']:,.0f} MiB)\n")
        if report.get("plot"):
            out.write(f"  plot: {report['plot']}\n")
    enc = report.get("encoder")
    if enc:
        out.write("\n")
        if "error" in enc:
            out.write(f"text encoder: ERROR {enc['error']}\n")
        else:
            out.write(f"text encoder (all-MiniLM-L6-v2, empty cache, {enc['device']}): {enc['sentences_per_s']:,.1f} "
                      f"sentences/s ({enc['sentences']} sentences in {enc['encode_s']:.1f} s; model load "
                      f"{enc['model_load_s']:.1f} s)\n")
    if report.get("check"):
        out.write(f"\nexactness checks: {json.dumps(report['check'])}\n")
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
        right.plot(rows, [p["rss_after_load_mib"] for p in pts], marker=".", linestyle=":", label=f"{run} (data loaded)")
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
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=directory)
    os.close(fd)
    try:
        figure.savefig(tmp, dpi=100, format="png")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--rows", type=int, default=None, help="rows of the generated dataset (default 2,000,000)")
    parser.add_argument("--batch", type=str, default=None, help="train batch size(s), comma list (default 4096)")
    parser.add_argument("--variants", default="plain",
                        help="comma list of step variants also timed for DLRREC fast and DeepFM fast: plain, fused, amp, "
                             "compile, cudagraphs, max-autotune, or '+' combinations (e.g. fused+cudagraphs)")
    parser.add_argument("--eval-batch", type=int, default=None, help="eval batch size (default 16384)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for the CI smoke test")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per dataset (default 3)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per run and round")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="batches per epoch on the generated dataset (default 20; 0 = full epochs)")
    parser.add_argument("--warmup-batches", type=int, default=None, help="untimed batches before each run (default 2)")
    parser.add_argument("--datasets", default=None, help="comma list of restaurants, generated, or dataset names")
    parser.add_argument("--runs", default=None, help="comma list of run names (default: all)")
    parser.add_argument("--scaling", default=None, help="comma list of row counts, '' = none (default 0.1M,0.5M,1M,rows)")
    parser.add_argument("--scaling-max-batches", type=int, default=None, help="batches per scaling epoch (default 10)")
    parser.add_argument("--fresh-rounds", type=int, default=None,
                        help="rounds of the fresh-process headline check per dataset (default 3; --quick 1; 0 = skip)")
    parser.add_argument("--encoder-sentences", type=int, default=None, help="sentences for the encoder (default 512; 0 = skip)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads in the workers (default: 1 on cpu, where the cores are shared "
                             "and torch's OpenMP threads stall each other; torch's default on cuda)")
    parser.add_argument("--seed-per-round", action="store_true",
                        help="round r uses seed + r and every round is evaluated (AUC mean and sd over seeds)")
    parser.add_argument("--fused-adam", action="store_true", help="Adam(fused=True) in place of RecBole's Adam")
    parser.add_argument("--compile", nargs="?", const="default", default=None,
                        help="torch.compile the model's forward (mode: default | reduce-overhead | max-autotune)")
    parser.add_argument("--check", action="store_true", help="exactness checks on the device first")
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds for the whole benchmark: later runs and steps are skipped (and said so) "
                             "once it is spent; what finished is reported and saved")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="where generated datasets live")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--save", default=None, help="also write PREFIX.txt and PREFIX.json")
    parser.add_argument("--plot", default=None, help="scaling PNG (default results/bench/scaling.png; --quick: none)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    from recbole_dlrrec import patches

    patches.apply()  # RecBole fixes, OMP_WAIT_POLICY and malloc settings, as every CLI (patches.py)
    args = parse_args(argv)
    if args.worker:
        result = WORKERS[args.worker](json.loads(args.spec))
        atomic.write_text(args.worker_out, json.dumps(result, default=str))
        return result

    quick = args.quick
    rows = args.rows or (2000 if quick else 2_000_000)
    batches = [int(b) for b in (args.batch or ("256" if quick else "4096")).split(",")]
    batch = batches[0]
    variants = [v for v in args.variants.split(",") if v]
    for variant in variants:
        variant_options(variant)  # fail early on a typo
    eval_batch = args.eval_batch or (1024 if quick else 16384)
    repeats = args.repeats or (1 if quick else 3)
    max_batches = args.max_batches if args.max_batches is not None else (0 if quick else 20)
    warmup = args.warmup_batches if args.warmup_batches is not None else (1 if quick else 2)
    datasets = (args.datasets or ("generated" if quick else "restaurants,generated")).split(",")
    runs = args.runs.split(",") if args.runs else (MAIN_RUNS + ["DLRREC fast no heads"] if quick else list(RUNS))
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        raise SystemExit(f"unknown run(s) {unknown}; known: {list(RUNS)}")
    if args.scaling is None:
        scaling = [rows // 2, rows] if quick else sorted({100_000, 500_000, 1_000_000, rows})
    else:
        scaling = [int(float(x)) for x in args.scaling.split(",") if x.strip()]
    scaling_batches = args.scaling_max_batches if args.scaling_max_batches is not None else (0 if quick else 10)
    sentences = args.encoder_sentences if args.encoder_sentences is not None else (8 if quick else 512)
    plot_path = args.plot or (None if quick else os.path.join("results", "bench", "scaling.png"))
    threads = args.threads if args.threads is not None else (1 if args.device == "cpu" else None)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is visible to torch")

    os.makedirs(args.data_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-train-")
    common = {"device": args.device, "batch": batch, "eval_batch": eval_batch, "epochs": args.epochs,
              "seed": args.seed, "tmp": tmp, "threads": threads, "fused_adam": args.fused_adam,
              "seed_per_round": args.seed_per_round,
              "compile": args.compile, "warmup_batches": warmup}
    report = {"machine": machine_info(args.device),
              "params": {"rows": rows, "batch": batch, "batches": batches, "variants": variants, "eval_batch": eval_batch, "repeats": repeats,
                         "epochs": args.epochs, "max_batches_generated": max_batches, "warmup_batches": warmup,
                         "seed": args.seed, "fused_adam": args.fused_adam, "compile": args.compile, "quick": quick,
                         "threads": threads, "seed_per_round": args.seed_per_round},
              "sessions": [], "scaling": []}
    started = time.perf_counter()
    deadline = time.time() + args.time_budget if args.time_budget else None

    def remaining() -> Optional[float]:
        return None if deadline is None else deadline - time.time()

    def finish(final: bool) -> dict:
        report["total_s"] = time.perf_counter() - started
        report["complete"] = final
        report["targets"] = {
            f"{s['dataset']} batch {b}: {label}": {"ratio": r["median"], "target": r["target"], "met": r["met"]}
            for s in report["sessions"] for b, block in s.get("batches", {}).items()
            for label, r in block["ratios"].items() if r["target"] is not None}
        for fresh in report.get("fresh", []):
            if fresh.get("ratio"):
                report["targets"][f"{fresh['dataset']} fresh processes: {fresh['ratio']['label']}"] = {
                    "ratio": fresh["ratio"]["median"], "target": 1.0, "met": fresh["ratio"]["median"] >= 1.0}
        text = render(report)
        line = json.dumps(report, default=str, sort_keys=True)
        if args.save:  # also after every step, so a killed run keeps what it finished
            atomic.write_text(args.save + ".txt", text + line + "\n")
            atomic.write_text(args.save + ".json", json.dumps(report, default=str, sort_keys=True, indent=2) + "\n")
        if final:
            print(text, end="")
            print(line)
        return report

    def progress(what: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {what}", file=sys.stderr, flush=True)
        finish(False)

    try:
        generated = {}
        for n in sorted(set([rows] * ("generated" in datasets) + scaling)):
            generated[n] = write_generated_dataset(args.data_dir, n, dim=48 if quick else TEXT_DIM)
        names = [(generated[rows], args.data_dir, max_batches) if d == "generated" else (d, "dataset/", 0)
                 for d in datasets]
        if args.check:
            report["check"] = [launch("check", {**common, "dataset": n, "data_path": p}, remaining())
                               for n, p, _ in names]
            progress("exactness checks done")
        for name, path, limit in names:
            if not quick and any(RUNS[r][0] == "DLRREC" for r in runs):  # --quick: timings are not the point
                prepared = launch("prepare", {**common, "dataset": name, "data_path": path}, remaining())
                if "error" in prepared:
                    print(f"prepare {name}: {prepared['error']}", file=sys.stderr)
            spec = {**common, "dataset": name, "data_path": path, "runs": runs, "repeats": repeats,
                    "max_batches": limit or None, "batches": batches, "variants": variants,
                    "deadline": deadline}
            session = launch("session", spec, None if deadline is None else remaining() + 60)
            session.setdefault("dataset", name)
            session["max_batches"] = limit or None
            report["sessions"].append(session)
            progress(f"{name} done")
        fresh_rounds = args.fresh_rounds if args.fresh_rounds is not None else (1 if quick else 3)
        for name, path, limit in names if fresh_rounds else ():
            points = []
            for round_idx in range(fresh_rounds):
                order = FRESH_RUNS if round_idx % 2 == 0 else FRESH_RUNS[::-1]
                for run in order:
                    point = launch("scaling", {**common, "dataset": name, "data_path": path, "rows": None, "run": run,
                                               "max_batches": limit or None, "fresh_warmup": FRESH_WARMUP_BATCHES},
                                   remaining())
                    points.append({**point, "run": run, "round": round_idx})
            report.setdefault("fresh", []).append({"dataset": name, "points": points,
                                                   "ratio": fresh_ratio(points, *FRESH_RUNS[::-1])})
            progress(f"{name} fresh-process check done")
        scaling_runs = ["DeepFM standard"] if quick else ([r for r in SCALING_RUNS if r in runs] or runs[:1])
        for n in scaling:
            name = generated[n]
            marker = os.path.join(args.data_dir, name, "SWING_READY")
            if any(RUNS[r][0] == "DLRREC" for r in scaling_runs) and not os.path.isfile(marker):
                launch("prepare", {**common, "dataset": name, "data_path": args.data_dir, "marker": True}, remaining())
            for run in scaling_runs:
                point = launch("scaling", {**common, "dataset": name, "data_path": args.data_dir, "rows": n,
                                           "run": run, "max_batches": scaling_batches or None}, remaining())
                point.setdefault("run", run)
                point.setdefault("rows", n)
                report["scaling"].append(point)
        fits = {}
        for run in scaling_runs:
            pts = [p for p in report["scaling"] if p.get("run") == run and "error" not in p]
            fit = linear_fit([p["rows"] / 1e6 for p in pts], [p["peak_rss_mib"] for p in pts])
            if fit:
                fits[run] = fit
        report["memory_per_million_rows"] = fits
        if plot_path and report["scaling"]:
            report["plot"] = plot_scaling(report["scaling"], plot_path)
        if scaling:
            progress("scaling done")
        if sentences:
            report["encoder"] = launch("encoder", {**common, "sentences": sentences + 8}, remaining())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish(True)


if __name__ == "__main__":
    main()
