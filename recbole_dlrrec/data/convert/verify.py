"""``--verify``: load a converted dataset with RecBole, as a run would."""

from __future__ import annotations

import os
from typing import Any

from recbole_dlrrec.data.convert.records import ConversionError


def check_loads_in_recbole(data_path: str, name: str, model: str = "FM") -> dict:
    """Load ``<data_path>/<name>`` with RecBole (Config, create_dataset, data_preparation).

    Uses the metrics from NAME.yaml when recbole_dlrrec's metrics are registered, else
    RecBole's own AUC and LogLoss. Returns the row counts of the three loaders' datasets and
    the user/item counts; a dataset RecBole cannot load raises ConversionError with one line
    (the exception type and the first line of its message).
    """
    from recbole_dlrrec import patches

    patches.apply()  # RecBole fixes and the plugin's metrics (patches.py)

    from recbole.data import create_dataset, data_preparation
    from recbole.evaluator.register import metric_types

    from recbole_dlrrec.config.stack import StackConfig, read_yaml

    yaml_file = os.path.join(data_path, name, f"{name}.yaml")
    overrides: dict[str, Any] = {
        "data_path": data_path,
        "use_gpu": False,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "state": "WARNING",
    }
    wanted = ("auc", "prauc", "logloss", "accuracy", "fpr", "precision", "recall", "f1")
    if any(metric_types.get(m) != metric_types["auc"] for m in wanted):
        overrides["metrics"] = ["AUC", "LogLoss"]  # plugin metrics not registered: RecBole's own
    try:
        # The written YAML is read safely and handed over as values (RecBole's own loader takes
        # any tag); StackConfig reads no argv (the converter's options are not RecBole's).
        config = StackConfig(model=model, dataset=name, config_dict={**read_yaml(yaml_file), **overrides})
        dataset = create_dataset(config)
        train, valid, test = data_preparation(config, dataset)
    except Exception as exc:  # noqa: BLE001 - whatever RecBole raises, the answer is "it does not load"
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ConversionError(
            f"{os.path.join(data_path, name)}: RecBole cannot load it: {type(exc).__name__}: {first}"
        ) from exc
    return {
        "train": len(train.dataset),
        "valid": len(valid.dataset),
        "test": len(test.dataset),
        "users": dataset.user_num,
        "items": dataset.item_num,
    }
