"""Every context-aware model RecBole 1.2.1 registers trains one epoch and evaluates on the tiny
dataset with the plugin's fixes installed (patches.apply()): the check that the patches keep
RecBole's own models working on today's numpy / pandas / torch.

The models are listed from RecBole's registry, the modules of
recbole.model.context_aware_recommender (and its tree models in exlib_recommender, which
RecBole's own context-aware tests include); a model is skipped only when the package it needs
is not in this Python's lock (lightgbm, xgboost).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
from typing import List, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTEXT_PACKAGE = "recbole.model.context_aware_recommender"
TREE_PACKAGE = "recbole.model.exlib_recommender"  # LightGBM, XGBoost: each needs its own library


def _modules(package: str) -> List[str]:
    """The model modules of a RecBole package, listed without importing it (collection stays quick)."""
    spec = importlib.util.find_spec(package)
    return sorted(info.name for info in pkgutil.iter_modules(spec.submodule_search_locations))


def _cases() -> List[Tuple[str, str]]:
    return [(CONTEXT_PACKAGE, name) for name in _modules(CONTEXT_PACKAGE)] + [
        (TREE_PACKAGE, name) for name in _modules(TREE_PACKAGE)
    ]


def _model_class_name(package: str, module_name: str) -> str:
    """RecBole's registry rule (recbole.utils.get_model): a model's module is its name, lower-cased."""
    module = importlib.import_module(f"{package}.{module_name}")
    names = [
        name
        for name, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__ and name.lower() == module_name
    ]
    assert len(names) == 1, f"{module.__name__} defines no model class named after it: {names}"
    return names[0]


@pytest.mark.slow
@pytest.mark.parametrize("package,module_name", _cases(), ids=lambda value: value.rsplit(".", 1)[-1])
def test_recbole_context_model_trains_one_epoch(package, module_name, tiny_data_path, tmp_path):
    if package == TREE_PACKAGE and importlib.util.find_spec(module_name) is None:
        lock = os.path.join(ROOT, "requirements-lock-py%d%d.txt" % sys.version_info[:2])
        with open(lock) as handle:  # a package the lock pins must be installed: only a missing pin skips
            assert not any(line.lower().startswith(f"{module_name}==") for line in handle), (
                f"{module_name} not installed"
            )
        pytest.skip(
            f"{module_name} is not installed: it is not in {os.path.basename(lock)} "
            f"(RecBole's {module_name} model needs it)"
        )
    from recbole_dlrrec import patches
    from recbole_dlrrec.runtime.quick_start import run

    patches.apply()
    model = _model_class_name(package, module_name)
    results = run(
        model,
        "tiny",
        config_dict={"data_path": tiny_data_path, "epochs": 1, "state": "ERROR"},
        result_file=os.path.join(tmp_path, "run.json"),
        saved=False,
    )
    assert results["model_class"] == model and len(results["epochs"]) == 1
    assert 0.0 <= results["test_result"]["auc"] <= 1.0
