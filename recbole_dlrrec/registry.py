"""Model lookup: the plugin's models first, then RecBole's built-ins.

Names match case-insensitively (`dlrrec` finds DLRREC, `deepfm` finds DeepFM); an unknown name
raises `UnknownModelError` listing what is valid.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, List, Type

# name -> "module:Class" of the plugin's models; imported on first use.
PLUGIN_MODELS: Dict[str, str] = {
    "DLRM": "recbole_dlrrec.model.dlrm:DLRM",
    "DLRREC": "recbole_dlrrec.model.dlrrec:DLRREC",
}

_RECBOLE_SUBPACKAGES = (
    "context_aware_recommender",
    "general_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)  # exlib_recommender is left out: importing it needs lightgbm and xgboost


class UnknownModelError(ValueError):
    """A model name that neither the plugin nor RecBole defines."""


def _load(target: str):
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def plugin_model_names() -> List[str]:
    return list(PLUGIN_MODELS)


def recbole_model_names(subpackage: str = "context_aware_recommender") -> List[str]:
    """Class names of RecBole's built-in models in one subpackage (imports them)."""
    package = importlib.import_module(f"recbole.model.{subpackage}")
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for attr in dir(module):
            if attr.lower() == info.name and isinstance(getattr(module, attr), type):
                names.append(attr)
    return sorted(names)


def _recbole_model(name: str):
    for sub in _RECBOLE_SUBPACKAGES:
        module_name = f"recbole.model.{sub}.{name.lower()}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for attr in dir(module):
            if attr.lower() == name.lower() and isinstance(getattr(module, attr), type):
                return getattr(module, attr)
    return None


def get_model_class(name: str) -> Type:
    """The model class for `name`: plugin models first, then RecBole's."""
    for plugin_name, target in PLUGIN_MODELS.items():
        if plugin_name.lower() == name.lower():
            return _load(target)
    model = _recbole_model(name)
    if model is not None:
        return model
    raise UnknownModelError(
        f"unknown model {name!r}; plugin models: {', '.join(plugin_model_names())}; "
        f"RecBole context-aware models: {', '.join(recbole_model_names())} "
        "(RecBole's general and sequential models are accepted too)"
    )
