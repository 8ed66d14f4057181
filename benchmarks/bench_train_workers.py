"""The worker processes of bench_train.py, each started fresh by bench_train.launch (its own
peak RSS) and answering with one JSON dict:

    session   one dataset loaded once; every run takes turns over the rounds (RecBole's Trainer)
    scaling   one size and one run: load, join, model, one timed epoch
    encoder   sentences/s of the TextEncoder with an empty cache
    check     the fast loaders against RecBole's own join, row for row (--check)
    prepare   a dataset's SWING cache, built outside any measured process
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np
from bench_common import PeakRSS, max_rss_mib, quiet, sync
from bench_train_runs import RUNS, eval_ratios, expand_runs, paired_ratios, summarise

from recbole_dlrrec import atomic


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

    quiet()
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
    out = {
        "dataset": dataset,
        "train_rows": len(train._dataset),
        "valid_rows": len(valid._dataset),
        "test_rows": len(test._dataset),
        "load_s": load_s,
        "join_s": join_s,
        "fast_table_mib": sum(loader.nbytes for loader in fast) / 2**20,
        "rss_after_load_mib": max_rss_mib(),
        "batches": {},
    }
    runs = expand_runs(spec["runs"], spec.get("variants") or [])
    for batch in spec["batches"]:
        config_b = build_config("DeepFM", dataset, config_dict={**base, "train_batch_size": batch})
        loaders = {
            False: (_train_loader_for_batch(train, config_b), valid, test),
            True: (_train_loader_for_batch(fast[0], config_b), fast[1], fast[2]),
        }
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
            summarise(rec)
        out["batches"][str(batch)] = {
            "runs": records,
            "ratios": paired_ratios(records),
            "eval_ratios": eval_ratios(records),
            "loader_only": {k: statistics.median(v) for k, v in loader_only.items() if v},
        }
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


class _EpochTimer:
    """Wraps a trainer's _train_epoch and _valid_epoch: seconds per training epoch (a partial
    pass of a LimitedLoader extrapolated to a full epoch from its steady rate after the epoch's
    set-up, e.g. drawing the permutation), eval seconds (into rec["eval_times"]) and valid AUCs."""

    def __init__(self, trainer, device: str, full_rows: int, rec: dict):
        self.device, self.full_rows, self.rec = device, full_rows, rec
        self.epoch_times: List[float] = []  # measured, or extrapolated to a full epoch
        self.valid_aucs: List[Optional[float]] = []
        self._train_epoch, self._valid_epoch = trainer._train_epoch, trainer._valid_epoch
        trainer._train_epoch, trainer._valid_epoch = self.timed, self.timed_valid

    def timed(self, train_data, epoch_idx, *args, **kwargs):
        sync(self.device)
        t0 = time.perf_counter()
        result = self._train_epoch(train_data, epoch_idx, *args, **kwargs)
        sync(self.device)
        t1 = time.perf_counter()
        rows = train_data.rows_per_pass()
        if rows < self.full_rows and train_data.first_at is not None and t1 > train_data.first_at:
            # the steady rate after the epoch's set-up (drawing the permutation), over a full epoch
            self.epoch_times.append((train_data.first_at - t0) + self.full_rows * (t1 - train_data.first_at) / rows)
        else:
            self.epoch_times.append(t1 - t0)
        return result

    def timed_valid(self, valid_data, *args, **kwargs):
        t0 = time.perf_counter()
        score, result = self._valid_epoch(valid_data, *args, **kwargs)
        self.rec.setdefault("eval_times", []).append(time.perf_counter() - t0)
        self.valid_aucs.append(_auc(result))
        return score, result


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
        config = build_config(
            model_name,
            spec["dataset"],
            config_dict={**base, **overrides, **_step_overrides(options), "train_batch_size": batch, "seed": seed},
        )

        def reseed():  # both paths then draw the same orders (on the CPU: the same batches)
            for path in (False, True):
                loaders[path][0].generator.manual_seed(seed)

        reseed()
        model = build_model(config, tr)
        trainer = build_trainer(config, model)  # what run_recbole.py builds
        rec["notes"] = _apply_step_options(trainer, options)
        if model_name == "DLRREC":
            heads = (
                "no heads"
                if not (config["w1"] or config["w2"])
                else f"heads {config['cl_negatives']}/{config['cl_max_anchors'] or 'all'} "
                f"(w1 {config['w1']:g}, w2 {config['w2']:g}, tau {config['tau']:g})"
            )
            rec["notes"].insert(0, heads)
        if spec["warmup_batches"]:
            trainer._train_epoch(LimitedLoader(tr, spec["warmup_batches"]), -1)
            reseed()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        limited = LimitedLoader(tr, spec["max_batches"])
        full_rows = len(tr._dataset)
        timer = _EpochTimer(trainer, device, full_rows, rec)
        evaluate = round_idx == 0 or spec.get("seed_per_round")
        with PeakRSS() as rss:
            trainer.fit(limited, va if evaluate else None, saved=False, show_progress=False)
            test_result = trainer.evaluate(te, load_best_model=False) if evaluate else None
        rec["epoch_s"].extend(timer.epoch_times)
        rec["rounds"][round_idx] = statistics.median(timer.epoch_times)
        rec["rows_per_epoch"], rec["rows_timed"] = full_rows, limited.rows_per_pass()
        rec["eval_rows"] = len(va._dataset)
        rec["peak_rss_mib"] = max(rec.get("peak_rss_mib", 0.0), rss.peak / 2**20)
        if device == "cuda":
            rec["cuda_max_alloc_mib"] = max(
                rec.get("cuda_max_alloc_mib", 0.0), torch.cuda.max_memory_allocated() / 2**20
            )
        if evaluate:
            rec.setdefault("valid_auc_rounds", []).append(timer.valid_aucs[-1] if timer.valid_aucs else None)
            rec.setdefault("valid_auc_best_rounds", []).append(_auc(trainer.best_valid_result))
            rec.setdefault("test_auc_rounds", []).append(_auc(test_result))
            rec["num_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    except Exception as exc:  # a refused option (e.g. --compile without a compiler) ends that run only
        message = str(exc).strip().splitlines()
        rec["error"] = f"{type(exc).__name__}: {message[0][:160] if message else ''}"


def worker_scaling(spec: dict) -> dict:
    """One size, one run, fresh process: data load + join + model + timed epoch; peak RSS."""
    import torch

    from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits
    from recbole_dlrrec.runtime.training import build_trainer

    quiet()
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
    sync(spec["device"])
    t0 = time.perf_counter()
    trainer._train_epoch(limited, 0)
    sync(spec["device"])
    t1 = time.perf_counter()
    full_rows = len(train._dataset)
    if limited.rows_per_pass() < full_rows:  # extrapolate the steady rate after the epoch's set-up
        epoch_s = (limited.first_at - t0) + full_rows * (t1 - limited.first_at) / limited.rows_per_pass()
    else:
        epoch_s = t1 - t0
    out = {
        "run": spec["run"],
        "dataset": spec["dataset"],
        "rows": spec["rows"],
        "train_rows": full_rows,
        "load_s": load_s,
        "samples_per_s": full_rows / epoch_s,
        "epoch_s": epoch_s,
        "extrapolated": limited.rows_per_pass() < len(train._dataset),
        "rss_after_load_mib": rss_loaded,
        "peak_rss_mib": max_rss_mib(),
    }
    if spec["device"] == "cuda":
        out["cuda_max_alloc_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def worker_encoder(spec: dict) -> dict:
    """Sentences/s of the TextEncoder with an empty cache in a temporary directory."""
    quiet()
    try:
        from recbole_dlrrec.data.encoder import TextEncoder
    except ImportError as exc:
        return {"error": f"ImportError: {exc}"}
    rng = np.random.default_rng(0)
    words = (
        "great pasta friendly staff slow service cozy room spicy noodles fair prices the a was and "
        "we loved it not worth wait again dessert"
    ).split()
    texts = [" ".join(rng.choice(words, rng.integers(8, 40))) + f" #{i}" for i in range(spec["sentences"])]
    device = "cuda" if spec["device"] == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as cache_dir:
        try:
            encoder = TextEncoder(
                cache_path=os.path.join(cache_dir, "vectors.sqlite"), device=device, show_progress=False
            )
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
    return {
        "sentences": n,
        "dim": int(vectors.shape[1]),
        "model_load_s": load_s,
        "encode_s": encode_s,
        "sentences_per_s": n / encode_s,
        "cache_stats": stats,
        "device": device,
    }


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

    quiet()
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
        joined[k].device.type == device.type
        and joined[k].dtype == expected[k].dtype
        and torch.equal(joined[k].cpu(), expected[k])
        for k in joined
    )

    loader = FastTrainDataLoader(config, dataset, shuffle=True, device=device)
    batches = list(loader)
    epoch = {k: torch.cat([b[k] for b in batches]) for k in expected.interaction}
    rows_ok = bool(
        np.array_equal(_sorted_rows(_row_matrix(epoch, n)), _sorted_rows(_row_matrix(expected.interaction, n)))
    )
    second = torch.cat([b[dataset.iid_field] for b in loader])
    reshuffled = not torch.equal(second, epoch[dataset.iid_field])
    again = FastTrainDataLoader(config, dataset, shuffle=True, device=device)
    order_ok = torch.equal(torch.cat([b[dataset.iid_field] for b in again]), epoch[dataset.iid_field])

    eval_loader = FastEvalDataLoader(config, valid._dataset, device=device, phase="valid")
    eval_ok = all(
        fast_batch[1:] == std_batch[1:]
        and all(torch.equal(fast_batch[0][k].cpu(), std_batch[0][k]) for k in std_batch[0].interaction)
        for fast_batch, std_batch in zip(eval_loader, valid)
    )
    return {
        "dataset": spec["dataset"],
        "device": str(device),
        "rows": n,
        "seconds": time.perf_counter() - started,
        "join_equals_recbole": bool(join_ok),
        "epoch_rows_equal_recbole": rows_ok,
        "next_epoch_reshuffled": bool(reshuffled),
        "same_seed_same_order": bool(order_ok),
        "eval_batches_equal_recbole": bool(eval_ok),
    }


def worker_prepare(spec: dict) -> dict:
    """Build (or find) a dataset's SWING cache outside any measured process: computing it runs
    numba's parallel kernels, which leave OpenMP threads behind that slow the training after."""
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits
    from recbole_dlrrec.swing.cache import swing_for_dataset

    quiet()
    config = build_config("DLRREC", spec["dataset"], config_dict=_base_overrides(spec))
    _, train, _, _ = load_splits(config)
    t0 = time.perf_counter()
    swing_for_dataset(config, train._dataset, progress=False)
    if spec.get("marker"):
        with open(os.path.join(spec["data_path"], spec["dataset"], "SWING_READY"), "w", encoding="utf-8") as f:
            f.write("swing cache built by benchmarks/bench_train.py\n")
    return {"dataset": spec["dataset"], "swing_s": time.perf_counter() - t0}


WORKERS = {
    "session": worker_session,
    "scaling": worker_scaling,
    "encoder": worker_encoder,
    "check": check_exactness,
    "prepare": worker_prepare,
}
