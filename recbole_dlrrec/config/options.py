"""Typed options objects: a model's config keys read once, checked, and converted.

A model declares the keys it reads as a frozen dataclass whose field names are config keys and
whose annotations are the Python types the model wants (`float`, `int`, `Optional[int]`,
`str`, `bool`, `List[int]`, ...). `build_options` fills it from a RecBole Config (or a dict):

- a key the config holds gives its value;
- a key it lacks (a Config built without the plugin's files) gives the value of the model's own
  property files (`stack.plugin_defaults`: overall.yaml, swing.yaml, the model's YAML chain), so
  a default lives in one place, the YAML, and never again as a constant in the model code;
- every value is checked against its key's declared type and rules (config/keys.py: the YAML
  comments), with the same one-line ConfigKeyError the config stack raises;
- int and float fields are converted (`int(...)`, `float(...)`), so a model never converts;
  null is refused for a field that is not Optional.

Fields carry no defaults on purpose: a default in the dataclass would be a second place.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import TYPE_CHECKING, Any, Dict, Optional, Type, TypeVar, Union

from recbole_dlrrec.config.keys import ConfigKeyError, KeySpec, value_problem
from recbole_dlrrec.config.stack import base_key_specs, plugin_defaults

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def _optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) is Union and type(None) in typing.get_args(annotation)


def _convert(value: Any, annotation: Any) -> Any:
    """`value` as the field's type: int and float fields (also inside Optional) are converted;
    everything else is kept as it is."""
    if typing.get_origin(annotation) is Union:
        if value is None:
            return None
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(others) != 1:  # e.g. pos_weight: a float or 'auto', kept as given
            return value
        annotation = others[0]
    if annotation is float:
        return float(value)
    if annotation is int:
        return int(value)
    if annotation is bool:
        return bool(value)
    return value


def build_options(
    options_class: Type[T], config, model: Union[str, type], specs: Optional[Dict[str, KeySpec]] = None
) -> T:
    """An `options_class` instance (see the module doc) for `model` (its name or class).

    Raises ConfigKeyError naming the key for a value of the wrong type or outside its rules, or
    for a field no property file of `model` gives a default and the config lacks."""
    specs = base_key_specs() if specs is None else specs
    hints = typing.get_type_hints(options_class)
    defaults: Optional[dict] = None
    values = {}
    for field in dataclasses.fields(options_class):
        key = field.name
        if key in config:
            value = config[key]
        else:
            defaults = plugin_defaults(model) if defaults is None else defaults
            if key not in defaults:
                raise ConfigKeyError(f"config key {key!r} is not set, and no property file of {model!r} sets it")
            value = defaults[key]
        problem = value_problem(value, specs[key]) if key in specs else None
        if value is None and not _optional(hints[key]):
            problem = "must not be null"
        if problem:
            raise ConfigKeyError(f"config key {key!r} {problem}")
        values[key] = _convert(value, hints[key])
    return options_class(**values)
