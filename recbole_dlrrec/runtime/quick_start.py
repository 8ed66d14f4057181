"""One run of one model on one dataset: config -> data -> model -> train -> evaluate -> results.

Every CLI (run_recbole.py, run_leaderboard.py, run_tune.py) goes through `build_config`,
`load_splits` and `run` here. `build_config` is the config stack of config/stack.py (its
docstring has the one precedence rule, type checks and provenance) plus building a dataset on
first use. This module never imports ray (RecBole's own quick_start does), so training runs
where ray cannot be installed.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

from recbole_dlrrec import atomic, patches
from recbole_dlrrec.config.registry import get_model_class
from recbole_dlrrec.config.stack import ConfigStack
from recbole_dlrrec.errors import FeatureError, InputError, ResultFileError
from recbole_dlrrec.runtime import distributed
from recbole_dlrrec.runtime.stopping import apply_step_budget
from recbole_dlrrec.runtime.training import apply_precision, build_trainer

# Datasets the plugin can build on first use: name -> "module:function(data_path)".
DATASET_BUILDERS: Dict[str, str] = {
    "restaurants": "recbole_dlrrec.data.sample:ensure_restaurants",
    "ml-100k": "recbole_dlrrec.data.movielens:ensure_ml100k_vectors",
}
# Datasets RecBole ships inside its package (it forces their data_path there).
RECBOLE_BUNDLED = {"ml-100k"}


class DatasetNotFoundError(InputError, ValueError):
    """A dataset name with no atomic files, no builder, and no RecBole bundle."""


# -- config --------------------------------------------------------------------------------
def available_datasets(data_path: str) -> List[str]:
    names = set(DATASET_BUILDERS) | RECBOLE_BUNDLED
    if os.path.isdir(data_path):
        for name in os.listdir(data_path):
            folder = os.path.join(data_path, name)
            if os.path.isdir(folder) and any(f.startswith(name + ".") for f in os.listdir(folder)):
                names.add(name)
    return sorted(names)


def check_dataset(dataset: str, data_path: str) -> None:
    """Raise DatasetNotFoundError unless `dataset` can be built or has atomic files, so RecBole
    never tries to download it."""
    if dataset in DATASET_BUILDERS:
        return
    folder = os.path.join(data_path, dataset)
    if not (os.path.isdir(folder) and any(f.startswith(dataset + ".") for f in os.listdir(folder))):
        raise DatasetNotFoundError(
            f"unknown dataset {dataset!r}: no atomic files in {folder}; "
            f"available: {', '.join(available_datasets(data_path))} "
            "(make one with recbole-dlrrec convert)"
        )


def prepare_dataset(dataset: str, data_path: str, side_data_path: Optional[str] = None) -> None:
    """Build the dataset's files on first use (generated sample, text vectors); else check
    that its atomic files exist."""
    check_dataset(dataset, data_path)
    if dataset in DATASET_BUILDERS:
        module, func = DATASET_BUILDERS[dataset].split(":")
        builder = getattr(importlib.import_module(module), func)
        # A RecBole-bundled dataset's own files stay in RecBole; only side files are built.
        builder(side_data_path if dataset in RECBOLE_BUNDLED else data_path)


def build_config(
    model: str,
    dataset: Optional[str] = None,
    config_file_list: Optional[Sequence[str]] = None,
    config_dict: Optional[dict] = None,
    prepare: bool = True,
):
    """A RecBole Config for `model` on `dataset`, layered by config/stack.py; `config_dict`
    is the --key=value layer. `config.provenance` maps each key to the layer that set it.

    Every check runs before any data is loaded: the flags and files before a dataset is built
    (prepare=True builds it on first use), everything again once its own YAML exists. Raises
    UnknownModelError, DatasetNotFoundError, ConfigFileError or ConfigKeyError (InputErrors
    with one-line messages).
    """
    patches.apply()  # RecBole fixes and the plugin's metrics, before any Config is built
    stack = ConfigStack(model, dataset, config_file_list or (), config_dict)
    stack.check()
    if prepare:
        values, _ = stack.merged()
        prepare_dataset(stack.dataset, stack.data_path, values.get("side_data_path"))
        stack.reload_dataset()
        stack.check()
    config = stack.recbole_config()
    if apply_precision(config) == "bf16":
        source = f"train_precision={config['train_precision']!r} (runtime/training.py)"
        config.provenance.update(enable_amp=source, enable_scaler=source)
    return config


# -- data ----------------------------------------------------------------------------------
def load_splits(config):
    """(dataset, train_data, valid_data, test_data) for a built config, seeded by config."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    check_finite_features(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    check_both_labels(config, {"train": train_data, "valid": valid_data, "test": test_data})
    if config["oov_user_token"]:  # before any loader joins features or any model reads the ids
        from recbole_dlrrec.data.oov_token import map_unseen_users

        loaders = {"train": train_data, "valid": valid_data, "test": test_data}
        map_unseen_users(config, {split: loader._dataset for split, loader in loaders.items()})
    if config["fast_dataloader"]:  # join features once, slice batches on the device (fast_loader.py)
        from recbole_dlrrec.runtime.fast_loader import fast_dataloaders

        train_data, valid_data, test_data = fast_dataloaders(config, train_data, valid_data, test_data)
    return dataset, train_data, valid_data, test_data


class OneLabelSplitError(InputError):
    """A split whose rows all carry one label: AUC is undefined on it."""


def check_both_labels(config, loaders: dict) -> None:
    """Raise OneLabelSplitError naming the dataset and the first split (``loaders``: name ->
    RecBole dataloader) whose labels, read from its file and not sampled, are all equal: AUC
    is undefined on it, and training on it teaches nothing. Splits whose loader samples
    negatives, or that hold no label field, are not checked."""
    import torch

    label = config["LABEL_FIELD"]
    for split, loader in loaders.items():
        args = getattr(loader, "neg_sample_args", None)  # None: not a NegSampleDataLoader (full ranking)
        if args is None or (args.get("distribution") != "none" and args.get("sample_num") != "none"):
            continue
        feat = loader._dataset.inter_feat
        if label not in feat.columns:
            continue
        values = torch.unique(feat[label])
        if values.numel() < 2:
            only = "no rows" if not values.numel() else f"only {label} = {values[0].item():g}"
            raise OneLabelSplitError(
                f"dataset {config['dataset']!r}: the {split} split ({len(feat)} rows) has {only}; "
                "AUC is undefined without both labels: rebuild the dataset with both labels in every split"
            )


def check_finite_features(dataset) -> None:
    """Raise FeatureError naming the first float feature that holds NaN or inf after RecBole's
    preprocessing (an all-missing column becomes NaN when RecBole fills it with its mean), so
    that no model starts training on it: the loss would be NaN from the first batch."""
    import numpy as np
    from recbole.utils import FeatureType

    for source, feat in (("inter", dataset.inter_feat), ("user", dataset.user_feat), ("item", dataset.item_feat)):
        if feat is None:
            continue
        for field in list(feat.columns):
            if dataset.field2type.get(field) not in (FeatureType.FLOAT, FeatureType.FLOAT_SEQ):
                continue
            column = feat[field]
            if hasattr(column, "numpy"):  # an Interaction's tensor
                column = column.numpy()
            # Rows may be scalars, or lists (float_seq; numerical features RecBole keeps as [value, index]).
            bad_rows = sum(1 for row in column if not np.isfinite(np.asarray(row, dtype=float)).all())
            if bad_rows:
                raise FeatureError(
                    f"dataset {dataset.dataset_name!r}: float field {field!r} ({source} file) is NaN or inf "
                    f"in {bad_rows} of {len(column)} rows after RecBole's preprocessing (an all-missing "
                    f"column?); leave it out of load_col and numerical_features"
                )


def build_model(config, train_data):
    """The model for `config`, built on the TRAIN split (so nothing it precomputes sees
    valid/test rows), seeded by config."""
    from recbole.utils import init_seed

    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_class = get_model_class(config["model"])
    return model_class(config, train_data._dataset).to(config["device"])


# -- results -------------------------------------------------------------------------------
def atomic_write_json(path: str, payload: dict) -> str:
    return atomic.write_json(path, payload, indent=2, sort_keys=True, default=str)


def _plain(value):
    """A JSON-safe copy of a config value (enums, devices and numpy scalars become str/float)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, float):  # numpy 2's float64 prints as np.float64(...): make it a float
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def config_snapshot(config) -> dict:
    return {key: _plain(config[key]) for key in sorted(config.final_config_dict)}


RUNS_DIR = os.path.join("results", "runs")  # default folder of the results JSON


def default_result_file(config) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join(RUNS_DIR, f"{config['model']}-{config['dataset']}-seed{config['seed']}-{stamp}.json")


def check_result_file(path: Optional[str]) -> None:
    """Raise ResultFileError unless the results JSON can be written at `path` (None: the
    default folder RUNS_DIR): the path is not a folder, and its folder exists or can be created
    and takes a new file. Called before any data loads, so a run never trains for hours and
    then loses its results."""
    if path is not None and os.path.isdir(path):
        raise ResultFileError(f"result_file {path}: is a folder; name a .json file")
    folder = os.path.dirname(os.path.abspath(path)) if path is not None else os.path.abspath(RUNS_DIR)
    label = f"result_file {path}" if path is not None else f"results folder {RUNS_DIR}"
    try:
        os.makedirs(folder, exist_ok=True)
        # A real write: permission bits alone say nothing for root or on read-only mounts.
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise ResultFileError(f"{label}: cannot write in {folder} ({exc.strerror or exc})") from None


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def select_cls_threshold(config, trainer, valid_data, load_best_model: bool):
    """`cls_threshold: auto`: choose the decision threshold on the VALIDATION predictions of the
    trained model (the best checkpoint when `load_best_model`, else the model as it is) and set
    it on the trainer's threshold metrics, so the test evaluation that follows uses it unchanged.

    Returns (None, None) for a fixed threshold (nothing is evaluated), else (the ThresholdChoice,
    the valid metrics recomputed at the chosen threshold from the same predictions)."""
    from recbole_dlrrec.runtime.metrics import choose_threshold, set_threshold, threshold_settings

    auto, target_fpr = threshold_settings(config)
    if not auto:
        return None, None
    evaluator = trainer.evaluator
    captured = []

    def capture(struct):  # keep the predictions RecBole's evaluate collects
        captured.append(struct)
        return type(evaluator).evaluate(evaluator, struct)

    evaluator.evaluate = capture
    try:
        trainer.evaluate(valid_data, load_best_model=load_best_model, show_progress=config["show_progress"])
    finally:
        del evaluator.evaluate
    struct = captured[-1]
    if "rec.score" not in struct or "data.label" not in struct:
        raise ValueError(
            "cls_threshold: auto needs scores and labels of the valid rows: add a value metric "
            "(AUC, LogLoss, F1, ...) to metrics"
        )
    choice = choose_threshold(struct.get("rec.score").numpy(), struct.get("data.label").numpy(), target_fpr)
    set_threshold(evaluator, choice.value)
    logging.getLogger().info(f"cls_threshold: auto chose {choice.value:.6g} on valid ({choice.rule})")
    return choice, evaluator.evaluate(struct)


def run(
    model: str,
    dataset: Optional[str] = None,
    config_file_list: Optional[Sequence[str]] = None,
    config_dict: Optional[dict] = None,
    saved: bool = True,
    result_file: Optional[str] = None,
    epoch_callbacks: Sequence[Callable] = (),
    evaluate_test: bool = True,
    config=None,
    record_predictions: bool = False,
) -> dict:
    """Train `model` on `dataset` and return (and save as JSON) its results.

    Args:
        epoch_callbacks: called as f(epoch_idx, valid_score, trainer) after every validation.
        evaluate_test: False skips the test split (tuning selects on validation only).
        config: a prebuilt Config (skips build_config).
        record_predictions: the trainer keeps the last evaluation's per-row labels and scores
            (`trainer.evaluator.labels` / `.scores`, see training.PredictionRecorder), and after
            the test evaluation each test row's ids and train counts (`.row_ids`); an epoch
            callback gets the trainer.
    Returns:
        dict with model, dataset, seed, best_valid_score, best_epoch, valid_result,
        test_result, cls_threshold (the configured number, or with `cls_threshold: auto` the
        choice made on valid: value, rule, target_fpr, valid_f1, valid_fpr), epochs (per-epoch
        valid score and seconds), timings, num_parameters, config, result_file.
    """
    started = time.time()
    check_result_file(result_file)
    if config is None:
        config = build_config(model, dataset, config_file_list, config_dict)
    distributed.init_rank_logger(config)  # RecBole's init_logger; quiet on ranks other than 0
    logger = logging.getLogger()
    logger.info(config)

    dataset_obj, train_data, valid_data, test_data = load_splits(config)
    logger.info(dataset_obj)
    data_seconds = time.time() - started

    model_obj = build_model(config, train_data)
    logger.info(model_obj)
    trainer = build_trainer(config, model_obj, record_predictions=record_predictions)
    apply_step_budget(config, trainer, len(train_data))  # min_steps / stopping_patience_steps
    distributed.prepare_trainer(config, trainer)

    history: List[dict] = []
    epoch_started = [time.time()]

    def on_epoch(epoch_idx, valid_score):
        now = time.time()
        history.append({"epoch": epoch_idx, "valid_score": float(valid_score), "seconds": now - epoch_started[0]})
        epoch_started[0] = now
        hook = getattr(model_obj, "on_epoch_end", None)
        if hook is not None:
            hook(epoch_idx, trainer)
        for callback in epoch_callbacks:
            callback(epoch_idx, valid_score, trainer)

    train_started = time.time()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=on_epoch
    )
    train_seconds = time.time() - train_started
    threshold, threshold_valid_result = select_cls_threshold(config, trainer, valid_data, load_best_model=saved)

    test_result, test_seconds = None, 0.0
    if evaluate_test:
        test_started = time.time()
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
        test_seconds = time.time() - test_started
        keep_row_ids = getattr(trainer.evaluator, "keep_row_ids", None) if record_predictions else None
        if keep_row_ids is not None:  # a PredictionRecorder: name the test rows it just recorded
            keep_row_ids(train_data.dataset, test_data.dataset)

    bigger = config["valid_metric_bigger"]
    best = max(history, key=lambda h: h["valid_score"] if bigger else -h["valid_score"]) if history else None
    results = {
        "model": model or config["model"],
        "model_class": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "valid_metric": config["valid_metric"],
        "best_valid_score": _plain(best_valid_score),
        "best_epoch": best["epoch"] if best else None,
        "valid_result": _plain(dict(threshold_valid_result or best_valid_result or {})),
        "cls_threshold": threshold.as_dict() if threshold is not None else _plain(config["cls_threshold"]),
        "test_result": _plain(dict(test_result)) if test_result is not None else None,
        "epochs": history,
        "num_parameters": count_parameters(model_obj),
        "timings": {
            "data_s": round(data_seconds, 3),
            "train_s": round(train_seconds, 3),
            "test_s": round(test_seconds, 3),
            "total_s": round(time.time() - started, 3),
            "seconds_per_epoch": round(train_seconds / max(len(history), 1), 3),
        },
        "saved_model_file": trainer.saved_model_file if saved else None,
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "device": str(config["device"]),
        },
        "config": config_snapshot(config),
    }
    logger.info(f"best valid: {results['valid_result']}")
    if test_result is not None:
        logger.info(f"test result: {results['test_result']}")
    results["result_file"] = None
    if distributed.is_main_process(config):  # one results file per run, from global rank 0
        results["result_file"] = atomic_write_json(result_file or default_result_file(config), results)
    return results
