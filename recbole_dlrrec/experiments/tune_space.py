"""Search spaces for run_tune.py: parse a space file, check it against the model's config keys.

A space file (default ``properties/tune/<MODEL>.yaml``) maps config keys to one distribution
each, written as a one-key mapping::

    w1: {loguniform: [0.001, 1.0]}       # log-uniform real in [low, high], 0 < low < high
    dropout_prob: {uniform: [0.0, 0.5]}   # uniform real in [low, high]
    swing_topk: {quniform: [10, 100, 10]} # uniform in [low, high], rounded to a multiple of q
    reduction_dim: {choice: [16, 32, 64]} # one of the listed values (any YAML values, lists too)
    interaction: {choice: declared}       # one of the values the key's note declares, in its order

Everything is checked before any data is loaded or any trial starts, and every error is one
line naming the file, the line and the key: the distribution name and its arguments, that the
key exists for the model (RecBole's general keys, the plugin's, the dataset's and the model's
own, but not another model's), and that every sample value has the type the key's YAML comment
declares (``config_keys.check_overrides``). A key that takes only ints is sampled as ints:
``quniform`` with integer low/high/q, or ``choice``; ``uniform``/``loguniform`` are refused there.

Shared ranges. ``properties/tune/shared.yaml`` holds the keys every model is tuned on (learning
rate, weight decay, dropout, embedding size) with ONE range each: every other space file in the
same folder is read on top of it, so the ranges cannot drift apart between models. A model's
file may not set a shared key again (refused, naming the line); a model that has no such key
leaves it out with ``key: ~`` (e.g. LR has no dropout), and the space records what it left out.
A space file outside that folder stands alone.

This module never imports ray: the Ray adapter (``recbole_dlrrec.experiments.ray_backend``) turns a
:class:`SearchSpace` into Ray's own distributions.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from recbole_dlrrec.config.keys import ConfigKeyError, KeySpec, check_overrides, known_keys, read_key_specs
from recbole_dlrrec.errors import InputError

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "quniform")
DECLARED = "declared"  # `key: {choice: declared}`: every value the key's YAML note declares
SHARED_SPACE_FILE = "shared.yaml"  # beside the model files: the ranges every model shares

# Keys the tuning driver owns: the budget, where data lives, what is selected on.
RESERVED_KEYS = {
    "model": "pass --model",
    "dataset": "pass --dataset",
    "data_path": "pass --data_path=... as a fixed override",
    "side_data_path": "pass --side_data_path=... as a fixed override",
    "checkpoint_dir": "set by run_tune.py",
    "epochs": "pass --max_epochs",
    "eval_step": "run_tune.py validates after every epoch",
    "seed": "pass --seed (every trial uses the same seed)",
    "valid_metric": "selection must use one fixed metric; pass --valid_metric=... as a fixed override",
    "gpu_id": "set from --gpus_per_trial",
}


class SpaceError(InputError, ValueError):
    """A space file that cannot be read, or that names a bad key, distribution or value."""


@dataclass(frozen=True)
class Param:
    """One tuned key: ``dist`` in DISTRIBUTIONS with its ``args`` (see the module doc)."""

    key: str
    dist: str
    args: tuple
    line: int = 0
    as_int: bool = False  # the key takes only ints: draws are cast to int
    source: str = ""  # the file that defines it (the shared file for a shared key); "" = the space's own

    @property
    def numeric(self) -> bool:
        """True when values lie on a number line (plots use it as the x axis)."""
        if self.dist != "choice":
            return True
        return all(_is_number(v) for v in self.args)

    @property
    def log_scale(self) -> bool:
        return self.dist == "loguniform"

    def sample_values(self) -> list:
        """Values that represent the whole range: the choices, or the ends of the interval."""
        if self.dist == "choice":
            return [self.coerce(v) for v in self.args]
        return [self.coerce(self.args[0]), self.coerce(self.args[1])]

    def coerce(self, value):
        """A drawn value as the config takes it (an int for int-only keys)."""
        if self.as_int and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def draw(self, rng) -> object:
        """One value from `rng` (numpy Generator), as the config takes it; quniform rounds a
        uniform draw to the nearest multiple of q, as Ray's quniform does."""
        if self.dist == "choice":
            return self.coerce(self.args[int(rng.integers(len(self.args)))])
        low, high = float(self.args[0]), float(self.args[1])
        if self.dist == "loguniform":
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        value = float(rng.uniform(low, high))
        if self.dist == "quniform":
            q = float(self.args[2])
            value = min(max(round(value / q) * q, low), high)
        return self.coerce(value)

    def describe(self) -> str:
        return f"{self.dist}{list(self.args)}"


@dataclass
class SearchSpace:
    path: str
    params: Dict[str, Param] = field(default_factory=dict)
    shared_path: Optional[str] = None  # the shared file merged under it, if any
    left_out: Dict[str, str] = field(default_factory=dict)  # shared key -> why this space leaves it out

    @property
    def files(self) -> List[str]:
        """Every file this space was read from (the shared file first)."""
        return ([self.shared_path] if self.shared_path else []) + [self.path]

    @property
    def keys(self) -> List[str]:
        return list(self.params)

    def coerce(self, sampled: Dict[str, object]) -> Dict[str, object]:
        """A trial's drawn values, cast as the config keys take them."""
        return {k: (self.params[k].coerce(v) if k in self.params else v) for k, v in sampled.items()}

    def draws(self, count: int, seed: int) -> List[Dict[str, object]]:
        """`count` configurations drawn up front from `seed` alone, keys in sorted order: the trial
        set of a search without pruning is a function of (space, seed, count), whatever order or
        timing the trials then run in. Each key draws from a stream of its own (seed, key name), so
        two spaces that share a key's range draw the same values of it trial by trial (every model
        of a board tries the same learning rates), and a larger count only adds trials. Plain
        Python values (JSON-safe), int-only keys as ints."""
        import zlib

        import numpy as np

        columns = {}
        for key in sorted(self.params):
            rng = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
            columns[key] = [self.params[key].draw(rng) for _ in range(count)]
        return [{key: values[i] for key, values in columns.items()} for i in range(count)]

    def to_dict(self) -> Dict[str, dict]:
        """The space as written in a space file (JSON/YAML-safe)."""
        return {p.key: {p.dist: list(p.args)} for p in self.params.values()}

    def without(self, keys: Iterable[str], reason: str) -> "SearchSpace":
        """This space minus `keys` (e.g. those a model variant fixes), each noted in left_out."""
        keys = set(keys)
        out = SearchSpace(
            self.path, {k: p for k, p in self.params.items() if k not in keys}, self.shared_path, dict(self.left_out)
        )
        out.left_out.update({k: reason for k in sorted(keys & set(self.params))})
        return out

    def to_text(self, header: Sequence[str] = ()) -> str:
        """The merged space as one standalone space file (what a run copies beside its outputs;
        read back with parse_space it gives the same params)."""
        import yaml

        lines = [f"# {line}" for line in header]
        lines += [f"# left out: {key} ({why})" for key, why in self.left_out.items()]
        for key, entry in _plain_entries(self.to_dict()).items():
            lines.append(f"{key}: " + yaml.safe_dump(entry, default_flow_style=True, width=1000).strip())
        return "\n".join(lines) + "\n"


def _plain_entries(entries: Dict[str, dict]) -> Dict[str, dict]:
    """Tuples -> lists, so that safe_dump writes plain YAML lists."""

    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {k: {d: plain(a) for d, a in e.items()} for k, e in entries.items()}


def default_space_file(model_name: str, properties_dir: str) -> str:
    return os.path.join(properties_dir, "tune", f"{model_name}.yaml")


def space_model_name(model_class: type) -> str:
    """The model whose space file `model_class` is tuned on: itself, or for a text-aware
    baseline (models/text_fields.py, `tuned_as`) its RecBole model, so both get one space."""
    return str(getattr(model_class, "tuned_as", model_class.__name__))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _yaml_loader():
    """The config stack's safe loader (no `!!python/...` tags; `1e-3` reads as a float as it
    does in config files)."""
    from recbole_dlrrec.config.stack import safe_yaml_loader

    return safe_yaml_loader()


def _key_lines(text: str) -> Dict[str, int]:
    lines = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:", line)
        if match and match.group(1) not in lines:
            lines[match.group(1)] = number
    return lines


def _where(path: str, line: int) -> str:
    return f"{path}:{line}" if line else path


def _check_args(where: str, key: str, dist: str, args, int_only: bool) -> tuple:
    def fail(message: str):
        raise SpaceError(f"{where}: {key}: {dist} {message}")

    if not isinstance(args, (list, tuple)):
        fail(f"takes a list, got {args!r}")
    args = tuple(args)
    if dist == "choice":
        if not args:
            fail("needs at least one value")
        return args
    expected = 3 if dist == "quniform" else 2
    shape = "[low, high, q]" if dist == "quniform" else "[low, high]"
    if len(args) != expected or not all(_is_number(a) for a in args):
        fail(f"takes {shape} as numbers, got {list(args)!r}")
    if not all(math.isfinite(a) for a in args):
        fail(f"bounds must be finite, got {list(args)!r}")
    low, high = args[0], args[1]
    if not low < high:
        fail(f"needs low < high, got {list(args)!r}")
    if dist == "loguniform" and low <= 0:
        fail(f"needs 0 < low, got {list(args)!r}")
    if dist == "quniform" and args[2] <= 0:
        fail(f"needs q > 0, got {list(args)!r}")
    if int_only:
        if dist != "quniform":
            fail(f"draws reals, but {key!r} takes an int: use quniform [low, high, q] with integers, or choice")
        if not all(float(a).is_integer() for a in args):
            fail(f"on int key {key!r} needs integer low, high and q, got {list(args)!r}")
    return args


def _read_space_file(path: str):
    """(mapping, key -> line) of one space file; SpaceError naming the file for unreadable YAML."""
    import yaml

    if not os.path.isfile(path):
        raise SpaceError(f"search space file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = _where(path, mark.line + 1 if mark is not None else 0)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpaceError(f"{path}: expected a mapping of key: {{distribution: [args]}}, got {type(data).__name__}")
    return data, _key_lines(text)


def shared_space_file(path: str) -> Optional[str]:
    """The shared file merged under the space file `path`: shared.yaml in the same folder (None
    for the shared file itself, or when there is none)."""
    shared = os.path.join(os.path.dirname(os.path.abspath(path)), SHARED_SPACE_FILE)
    if os.path.abspath(path) == shared or not os.path.isfile(shared):
        return None
    return shared


def _parse_entries(
    space: SearchSpace,
    path: str,
    data: dict,
    lines: Dict[str, int],
    specs: Optional[Dict[str, KeySpec]],
    source: str = "",
) -> None:
    for key, entry in data.items():
        where = _where(path, lines.get(str(key), 0))
        if not isinstance(key, str):
            raise SpaceError(f"{where}: keys must be config key names, got {key!r}")
        if key in RESERVED_KEYS:
            raise SpaceError(f"{where}: {key} cannot be tuned ({RESERVED_KEYS[key]})")
        if not isinstance(entry, dict) or len(entry) != 1:
            raise SpaceError(
                f"{where}: {key}: expected one {{distribution: [args]}} such as "
                f"{{loguniform: [0.001, 1.0]}}, got {entry!r}"
            )
        dist, args = next(iter(entry.items()))
        if dist not in DISTRIBUTIONS:
            raise SpaceError(f"{where}: {key}: unknown distribution {dist!r}; valid: {', '.join(DISTRIBUTIONS)}")
        spec = (specs or {}).get(key)
        int_only = bool(spec and spec.types == frozenset({"int"}))
        if dist == "choice" and args == DECLARED:  # the key's valid values stay listed in one place
            if not (spec and spec.choices):
                raise SpaceError(f"{where}: {key}: choice: {DECLARED} needs a key whose note lists its values")
            args = list(spec.choices)
        args = _check_args(where, key, dist, args, int_only)
        space.params[key] = Param(key, dist, args, lines.get(key, 0), as_int=int_only, source=source)


def parse_space(path: str, specs: Optional[Dict[str, KeySpec]] = None) -> SearchSpace:
    """Read a space file into a SearchSpace, over the shared file beside it (module doc);
    `specs` (name -> KeySpec) marks int-only keys.

    Raises SpaceError naming the file (and line) for anything malformed.
    """
    data, lines = _read_space_file(path)
    space = SearchSpace(path=path, shared_path=shared_space_file(path))
    if space.shared_path:
        shared, shared_lines = _read_space_file(space.shared_path)
        for key, entry in data.items():
            if key in shared and entry is not None:
                raise SpaceError(
                    f"{_where(path, lines.get(str(key), 0))}: {key} is a shared key ({space.shared_path}): its range "
                    "is "
                    f"the same for every model and is set there only; write `{key}: ~` to leave it out of this model"
                )
            if entry is None and key not in shared:
                raise SpaceError(
                    f"{_where(path, lines.get(str(key), 0))}: {key}: `~` leaves out a shared key, "
                    f"and {key} is not one ({space.shared_path})"
                )
        left_out = {k for k, v in data.items() if v is None}
        space.left_out = {k: f"left out by {os.path.basename(path)}" for k in shared if k in left_out}
        _parse_entries(
            space,
            space.shared_path,
            {k: v for k, v in shared.items() if k not in left_out},
            shared_lines,
            specs,
            source=space.shared_path,
        )
        data = {k: v for k, v in data.items() if v is not None}
    if not space.params and not data:
        raise SpaceError(f"{path}: the search space is empty; expected lines like w1: {{loguniform: [0.001, 1.0]}}")
    _parse_entries(space, path, data, lines, specs)
    return space


# -- keys of one model ------------------------------------------------------------------------
def _recbole_properties() -> str:
    import recbole

    return os.path.join(os.path.dirname(recbole.__file__), "properties")


def _model_yaml_files(properties_dir: str) -> Iterable[str]:
    for root in (os.path.join(_recbole_properties(), "model"), os.path.join(properties_dir, "model")):
        if os.path.isdir(root):
            for name in sorted(os.listdir(root)):
                if name.endswith(".yaml"):
                    yield os.path.join(root, name)


def foreign_keys(model_name: str, properties_dir: str, own_files: Sequence[str]) -> Dict[str, str]:
    """Keys that only other models' property files define: key -> one file that defines it.

    `own_files` are the files this run layers (plugin overall/swing, the model's, the
    dataset's, the user's): their keys are the model's, whatever else defines them too.
    """
    own = set()
    for path in own_files:
        own |= set(read_key_specs(path))
    recbole_own = os.path.join(_recbole_properties(), "model", f"{model_name}.yaml")
    if os.path.isfile(recbole_own):
        own |= set(read_key_specs(recbole_own))
    general = set(read_key_specs(os.path.join(_recbole_properties(), "overall.yaml")))
    foreign: Dict[str, str] = {}
    for path in _model_yaml_files(properties_dir):
        if os.path.splitext(os.path.basename(path))[0] == model_name:
            continue
        for key in read_key_specs(path):
            if key not in own and key not in general:
                foreign.setdefault(key, path)
    return foreign


def check_space(
    space: SearchSpace,
    model_name: str,
    properties_dir: str,
    config_files: Sequence[str],
    specs: Optional[Dict[str, KeySpec]] = None,
) -> None:
    """Raise SpaceError (naming file, line, key) unless every key is one of `model_name`'s
    config keys and every sample value of it has the declared type.

    config_files: the YAML files a run of this model layers (as quick_start.build_config does).
    """
    specs = specs if specs is not None else model_key_specs(properties_dir, config_files)
    foreign = foreign_keys(model_name, properties_dir, config_files)
    for param in space.params.values():
        where = _where(param.source or space.path, param.line)
        if param.key in foreign and param.key in specs:
            raise SpaceError(
                f"{where}: {param.key} is not a config key of {model_name} (other models define it, "
                f"e.g. {os.path.basename(foreign[param.key])}; {model_name}'s own keys are in its model YAML)"
            )
        for value in param.sample_values():
            try:
                check_overrides({param.key: value}, specs)
            except ConfigKeyError as exc:
                message = str(exc)
                if message.startswith("unknown config key"):
                    # Keep the hint, drop the full list of valid keys.
                    message = message.split(" Valid keys:")[0].rstrip(".")
                    message = f"{message} ({model_name} has no such key)"
                raise SpaceError(f"{where}: {message}") from None


def model_key_specs(properties_dir: str, config_files: Sequence[str]) -> Dict[str, KeySpec]:
    """config_keys.known_keys without what only the space files under properties/tune/ name
    (known_keys walks all of properties/, and a space file is no definition of a key)."""
    tune_dir = os.path.join(os.path.abspath(properties_dir), "tune") + os.sep
    return {
        name: spec
        for name, spec in known_keys(properties_dir, config_files).items()
        if not os.path.abspath(spec.source).startswith(tune_dir)
    }


def load_space(path: str, model_name: str, properties_dir: str, config_files: Sequence[str]) -> SearchSpace:
    """parse_space + check_space with the key specs of this model's config files."""
    specs = model_key_specs(properties_dir, config_files)
    space = parse_space(path, specs)
    check_space(space, model_name, properties_dir, config_files, specs)
    return space


def sample_configs(space: SearchSpace) -> List[Dict[str, object]]:
    """A few full assignments that together use every sample value (for checks and tests)."""
    values: List[Tuple[str, list]] = [(k, p.sample_values()) for k, p in space.params.items()]
    width = max((len(v) for _, v in values), default=0)
    return [{k: v[i % len(v)] for k, v in values} for i in range(width)]


def model_space(model: str, properties_dir: str, config_files: Sequence[str]) -> SearchSpace:
    """The checked space of a model or DLRREC variant as the leaderboard tunes it:
    properties/tune/<model>.yaml (over shared.yaml); a text-aware baseline uses its RecBole model's
    file (`space_model_name`); a variant with no file of its own uses its
    base model's file minus the keys its settings fix (a tuned w1 must not undo DLRREC-noCL's
    w1 = 0). `config_files`: the files a run of the base model layers."""
    from recbole_dlrrec.config.registry import resolve_model

    model_class, variant = resolve_model(model)
    base = model_class.__name__
    own = default_space_file(model, properties_dir)
    shared = default_space_file(space_model_name(model_class), properties_dir)
    space = load_space(own if os.path.isfile(own) else shared, base, properties_dir, config_files)
    return space.without(variant, f"fixed by {model}") if variant else space
