"""Which config keys exist, what type each takes and which values are valid, read from the YAML
files' own comments.

Every key in RecBole's and the plugin's property files carries a comment that starts with its
type, e.g. `epochs: 50   # (int) ...` or `pos_weight: 1.0  # (float or 'auto') ...`. That one
place is the reference for validating config values from every layer (files and `--key=value`)
and tuning spaces, so a typo'd key or an `--epochs=ten` fails before any work starts, with the
valid choices named.

The note in parentheses is `(TYPES[: CHOICE|CHOICE...][, RULE]...)`:

    (int)                          an int
    (float or 'auto')              a float, or a string that is one of the quoted literals
    (float, > 0)                   a float above 0 (RULE: > N, >= N, < N or <= N; numbers only)
    (str: mlp|linear|pca|none)     one of these strings
    (int or null, >= 2)            null is a valid value too

A key may be null (None) when its note says `null` or its default is `~`/null; a key with a
choice list or a RULE that may not be null refuses None. RecBole's own property files cannot
carry the plugin's rules, so `RECBOLE_RULES` below adds them for RecBole's keys in the same
grammar.
"""

from __future__ import annotations

import ast
import difflib
import operator
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import recbole

from recbole_dlrrec.errors import InputError

_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:(.*)$")
_TYPE_NOTE = re.compile(r"#\s*\(([^)]*)\)")
_TYPE_WORDS = ("int", "float", "bool", "str", "list", "dict")
_RULE = re.compile(r"^\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_NULL_WORDS = {"null", "none", "~"}

# Value rules for RecBole's own keys (its YAML comments carry types only): the step sizes a run
# cannot do anything useful with when they are zero or negative. (`epochs`, >= 1, is declared
# in properties/overall.yaml, which sets the plugin's budget.)
RECBOLE_RULES: Dict[str, str] = {
    "learning_rate": "float, > 0",
    "train_batch_size": "int, >= 1",
    "eval_batch_size": "int, >= 1",
    "weight_decay": "float, >= 0",
}


# Keys that no property file declares and that a file may still set on purpose, each with the
# note (grammar above) its values are checked against. Every other key of a user's or a dataset's
# file must be declared in RecBole's or the plugin's property files: a typo is refused, not run.
UNDECLARED_KEYS: Dict[str, str] = {
    # Written by the converter (data/convert/write.py) into NAME.yaml when it encodes images
    # (and kept by the cold-item copy of a dataset); no model reads it yet.
    "item_image_vec": "str or null",
    # Read by RecBole's own code, declared in none of its property files: its models (KD_DAGFM:
    # cin, feature_num; AutoInt: has_residual; DiffRec: norm; FEARec: contrast, sim, use_filter),
    # data (encoding, eta, token_num_threshold), metrics (tail_ratio) and trainer
    # (xgb_early_stopping_rounds). Any value: RecBole gives them no type.
    **{
        name: ""
        for name in (
            "cin",
            "contrast",
            "encoding",
            "eta",
            "feature_num",
            "has_residual",
            "norm",
            "sim",
            "tail_ratio",
            "token_num_threshold",
            "use_filter",
            "xgb_early_stopping_rounds",
        )
    },
}


class ConfigKeyError(InputError, ValueError):
    """A config value names a key no config file defines, or gives it a value of the wrong type
    or outside the key's valid values."""


@dataclass(frozen=True)
class KeySpec:
    name: str
    types: frozenset  # subset of _TYPE_WORDS; empty = unknown, anything goes
    source: str
    choices: Optional[Tuple[str, ...]] = None  # valid strings, when the note lists them
    rules: Tuple[Tuple[str, float], ...] = ()  # (operator, bound) pairs for numbers
    nullable: bool = True  # None is valid (only enforced for keys with choices or rules)

    @property
    def str_only(self) -> bool:
        return self.types == frozenset({"str"})


def _parse_types(note: Optional[str]) -> frozenset:
    if not note:
        return frozenset()
    head = note.split(",")[0].split(":")[0]
    words = set(re.findall(r"[a-z]+", head.lower()))
    found = {t for t in _TYPE_WORDS if t in words}
    if "'" in head or '"' in head:  # e.g. (float or 'auto'): a quoted literal is a str choice
        found.add("str")
    return frozenset(found)


def parse_note(name: str, note: Optional[str], source: str, default_text: str = "") -> KeySpec:
    """A KeySpec from the text inside a comment's parentheses (grammar in the module doc)."""
    if not note:
        return KeySpec(name, frozenset(), source)
    head, *rule_texts = note.split(",")
    choices: Optional[Tuple[str, ...]] = None
    if ":" in head:
        head, choice_text = head.split(":", 1)
        choices = tuple(c.strip().strip("'\"") for c in choice_text.split("|") if c.strip())
    quoted = re.findall(r"'([^']*)'|\"([^\"]*)\"", head)
    if (
        quoted and not re.search(r"\bstr\b", head) and _parse_types(head) - {"str"}
    ):  # (float or 'auto'): the only valid strings
        choices = tuple(a or b for a, b in quoted)
    rules = []
    for text in rule_texts:
        match = _RULE.match(text)
        if match:
            rules.append((match.group(1), float(match.group(2))))
    default = default_text.split("#")[0].strip()
    nullable = "null" in note.lower() or default in ("", "~", "null", "Null", "NULL")
    return KeySpec(name, _parse_types(head), source, choices, tuple(rules), nullable)


_SPEC_CACHE: Dict[Tuple[str, int, int], Dict[str, KeySpec]] = {}


def read_key_specs(path: str) -> Dict[str, KeySpec]:
    """Top-level keys of one YAML file with the types and rules their comments declare."""
    stat = os.stat(path)
    cache_key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
    if cache_key in _SPEC_CACHE:
        return _SPEC_CACHE[cache_key]
    specs: Dict[str, KeySpec] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = _KEY_LINE.match(line)
            if not match:
                continue
            note = _TYPE_NOTE.search(match.group(2))
            specs[match.group(1)] = parse_note(match.group(1), note.group(1) if note else None, path, match.group(2))
    _SPEC_CACHE[cache_key] = specs
    return specs


def _yaml_files(root: str) -> Iterable[str]:
    for folder, subfolders, files in os.walk(root):
        # Tuning spaces (properties/tune/) describe searches, not config defaults.
        subfolders[:] = sorted(name for name in subfolders if name != "tune")
        for name in sorted(files):
            if name.endswith(".yaml"):
                yield os.path.join(folder, name)


def _merge(old: Optional[KeySpec], new: KeySpec) -> KeySpec:
    """Two declarations of one key: a typed one beats an untyped one; two typed ones accept
    either type (RecBole's models declare e.g. reg_weight as float in one, list in another);
    choices and rules come from the later declaration that has them; null is valid when any
    declaration allows it."""
    if old is None:
        return new
    types = old.types | new.types if old.types and new.types else (new.types or old.types)
    return KeySpec(
        new.name,
        types,
        new.source if new.types or not old.types else old.source,
        new.choices or old.choices,
        new.rules or old.rules,
        old.nullable or new.nullable,
    )


def known_keys(plugin_properties: str, extra_files: Iterable[str] = ()) -> Dict[str, KeySpec]:
    """Every key of RecBole's property files, UNDECLARED_KEYS, the plugin's, and `extra_files`
    (merged by `_merge`), with RECBOLE_RULES applied to RecBole's keys."""
    specs: Dict[str, KeySpec] = {}
    recbole_properties = os.path.join(os.path.dirname(recbole.__file__), "properties")
    for path in _yaml_files(recbole_properties):
        for name, spec in read_key_specs(path).items():
            specs[name] = _merge(specs.get(name), spec)
    for name, rule in RECBOLE_RULES.items():
        source = specs[name].source if name in specs else __file__
        ruled = parse_note(name, rule, source, "0")
        specs[name] = KeySpec(name, ruled.types, source, ruled.choices, ruled.rules, False)
    for name, note in UNDECLARED_KEYS.items():
        specs[name] = _merge(specs.get(name), parse_note(name, note, __file__))
    for path in [*_yaml_files(plugin_properties), *extra_files]:
        for name, spec in read_key_specs(path).items():
            if name in specs and not spec.types:
                continue  # a line without a note sets a value; it declares nothing (DLRREC.yaml over DLRM.yaml)
            specs[name] = _merge(specs.get(name), spec)
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


def _format_rule(spec: KeySpec) -> str:
    parts = [f"{op} {bound:g}" for op, bound in spec.rules]
    if spec.choices:
        parts.append("one of " + "|".join(spec.choices))
    return " and ".join(parts) + (" or null" if spec.nullable else "")


def value_problem(value, spec: KeySpec, rules: bool = True) -> Optional[str]:
    """Why `value` is not valid for `spec` ('takes int, got ...'), or None when it is;
    rules=False checks the type only."""
    value_type = _value_type(value)
    if not _accepts(spec.types, value_type):
        return f"takes {' or '.join(sorted(spec.types))} (see {os.path.basename(spec.source)}), got {value!r}"
    if not rules:
        return None
    if value is None:
        if (spec.rules or spec.choices) and not spec.nullable:
            return f"must be {_format_rule(spec)}, got null"
        return None
    if spec.choices and value_type == "str" and value not in spec.choices:
        return f"must be one of {'|'.join(spec.choices)}, got {value!r}"
    if spec.rules and value_type in ("int", "float"):
        number = float(value)
        if number != number or not all(_COMPARE[op](number, bound) for op, bound in spec.rules):
            return f"must be {_format_rule(spec)}, got {value!r}"
    return None


def unknown_key_message(key: str, specs: Dict[str, KeySpec], where: str = "") -> str:
    """One line naming `key` (and `where`, e.g. ' in my.yaml'), the closest known keys and where
    the known ones are declared."""
    close = difflib.get_close_matches(key, list(specs), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown config key {key!r}{where}.{hint} ({len(specs)} keys are known: the plugin's, with "
        "their meaning, in properties/overall.yaml, properties/swing.yaml and properties/model/*.yaml; "
        "RecBole's in recbole/properties/)"
    )


def check_overrides(overrides: Dict[str, object], specs: Dict[str, KeySpec], where: str = "") -> None:
    """Raise ConfigKeyError for the first unknown key or invalid value in `overrides`;
    `where` (e.g. ' (set in my.yaml)') is appended to a value's message."""
    for key, value in overrides.items():
        if key not in specs:
            raise ConfigKeyError(unknown_key_message(key, specs))
        problem = value_problem(value, specs[key])
        if problem:
            raise ConfigKeyError(f"config key {key!r} {problem}{where}")


def parse_flag_value(text: str, spec: Optional[KeySpec] = None):
    """A `--key=value` text as the value the key takes.

    A key that takes only strings gets the text back as it is (`--reduction=none` is the string
    'none'), except a null word (null, none, ~) for a key that may be null. Any other key gets
    a Python literal when the text is one, the YAML words true/false/null, else the text."""
    lowered = text.strip().lower()
    if spec is not None and spec.str_only:
        return None if lowered in _NULL_WORDS and spec.nullable else text
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in _NULL_WORDS:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
