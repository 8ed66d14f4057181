"""Which config keys exist, and what type each takes, read from the YAML files' own comments.

Every key in RecBole's and the plugin's property files carries a comment that starts with its
type, e.g. `epochs: 50   # (int) ...` or `pos_weight: 1.0  # (float or 'auto') ...`. That one
place is the reference for validating `--key=value` overrides and tuning spaces, so a typo'd key
or an `--epochs=ten` fails before any work starts, with the valid choices named.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional

import recbole

_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)$")
_TYPE_NOTE = re.compile(r"#\s*\(([^)]*)\)")
_TYPE_WORDS = ("int", "float", "bool", "str", "list", "dict")


class ConfigKeyError(ValueError):
    """An override names a key no config file defines, or gives it a value of the wrong type."""


@dataclass(frozen=True)
class KeySpec:
    name: str
    types: frozenset  # subset of _TYPE_WORDS; empty = unknown, anything goes
    source: str


def _parse_types(note: Optional[str]) -> frozenset:
    if not note:
        return frozenset()
    words = set(re.findall(r"[a-z]+", note.lower()))
    found = {t for t in _TYPE_WORDS if t in words}
    if "'" in note or '"' in note:  # e.g. (float or 'auto'): a quoted literal is a str choice
        found.add("str")
    return frozenset(found)


def read_key_specs(path: str) -> Dict[str, KeySpec]:
    """Top-level keys of one YAML file with the types their comments declare."""
    specs: Dict[str, KeySpec] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = _KEY_LINE.match(line)
            if not match:
                continue
            note = _TYPE_NOTE.search(match.group(2))
            specs[match.group(1)] = KeySpec(match.group(1), _parse_types(note.group(1) if note else None), path)
    return specs


def _yaml_files(root: str) -> Iterable[str]:
    for folder, subfolders, files in os.walk(root):
        # Tuning spaces (properties/tune/) describe searches, not config defaults.
        subfolders[:] = [name for name in subfolders if name != "tune"]
        for name in sorted(files):
            if name.endswith(".yaml"):
                yield os.path.join(folder, name)


def known_keys(plugin_properties: str, extra_files: Iterable[str] = ()) -> Dict[str, KeySpec]:
    """Every key of RecBole's property files, the plugin's, and `extra_files` (later wins)."""
    specs: Dict[str, KeySpec] = {}
    recbole_properties = os.path.join(os.path.dirname(recbole.__file__), "properties")
    for path in [*_yaml_files(recbole_properties), *_yaml_files(plugin_properties), *extra_files]:
        for name, spec in read_key_specs(path).items():
            # Keep a typed spec over an untyped one for the same key.
            if name not in specs or spec.types or not specs[name].types:
                specs[name] = spec
    return specs


def _value_type(value) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return "str"


def _accepts(types: frozenset, value_type: Optional[str]) -> bool:
    if not types or value_type is None or value_type in types:
        return True
    return value_type == "int" and "float" in types


def check_overrides(overrides: Dict[str, object], specs: Dict[str, KeySpec]) -> None:
    """Raise ConfigKeyError for the first unknown key or mistyped value in `overrides`."""
    for key, value in overrides.items():
        if key not in specs:
            close = difflib.get_close_matches(key, list(specs), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigKeyError(
                f"unknown config key {key!r}.{hint} ({len(specs)} keys are known: the plugin's, with "
                "their meaning, in properties/overall.yaml, properties/swing.yaml and properties/model/*.yaml; "
                "RecBole's in recbole/properties/)"
            )
        spec = specs[key]
        if not _accepts(spec.types, _value_type(value)):
            raise ConfigKeyError(
                f"config key {key!r} takes {' or '.join(sorted(spec.types))} "
                f"(see {os.path.basename(spec.source)}), got {value!r}"
            )
