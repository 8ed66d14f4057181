"""The one config stack: every layer of a run's settings, in THE one precedence order, each
value type-checked and traced to where it came from.

Lowest first, each layer overriding the ones before it:

    1. RecBole defaults                  (RecBole's own property files; "RecBole default")
    2. properties/overall.yaml
    3. properties/swing.yaml
    4. properties/model/<MODEL>.yaml     after its base model's file (DLRM.yaml under DLRREC.yaml;
                                         a RecBole base model's own file under DCNV2Text's)
    5. dataset settings                  properties/dataset/<NAME>.yaml when it exists, else the
                                         converter's <data_path>/<NAME>/<NAME>.yaml
    6. a variant's settings              registry.MODEL_VARIANTS, e.g. "variant DLRREC-V0"
    7. --config_files, in the order given
    8. --key=value flags                 (the `config_dict` of build_config)

So a variant's defining settings (DLRREC-noCL's w1 = w2 = 0) sit above the model's and the
dataset's defaults and under anything the user names for the run.

Every key of every layer but the plugin's own files must be a declared one (config/keys.py:
RecBole's and the plugin's property files, plus the short list keys.UNDECLARED_KEYS): a typo in
a user's or a dataset's file is refused, naming the file, as a typo'd flag is. Every value of
every layer is checked against its key's declared type (config/keys.py: the YAML comments), and
the final merged values against the keys' rules (`(float, > 0)`, `(str: mlp|linear|pca|none)`),
before any data is loaded. `provenance()` says which layer set
each key (a file path, "--key=value flag" or "variant DLRREC-V0").

Every YAML the plugin reads goes through `read_yaml` (tuning spaces: `safe_yaml_loader`), a
safe loader (no `!!python/...` tags) that reads `1e-3` as a float as RecBole does and refuses a
document whose aliases expand past MAX_EXPANDED_VALUES values (a "billion laughs"). RecBole's
Config is then handed the merged dict only (`StackConfig`): it never opens the user's files
with its own FullLoader, never eval()s their strings, and never re-parses sys.argv.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import recbole
import yaml

from recbole_dlrrec.config.keys import (
    ConfigKeyError,
    KeySpec,
    known_keys,
    parse_flag_value,
    unknown_key_message,
    value_problem,
)
from recbole_dlrrec.config.paths import properties_dir
from recbole_dlrrec.config.registry import MODEL_VARIANTS, resolve_model
from recbole_dlrrec.errors import InputError

PROPERTIES_DIR = properties_dir()  # $RECBOLE_DLRREC_PROPERTIES, or the package's / checkout's properties/
RECBOLE_MODEL_PROPERTIES = os.path.join(os.path.dirname(recbole.__file__), "properties", "model")
DEFAULT_DATASET = "restaurants"
DEFAULT_DATA_PATH = "dataset/"
RECBOLE_DEFAULT = "RecBole default"
FLAG_SOURCE = "--key=value flag"


class ConfigFileError(InputError, ValueError):
    """A config file that does not exist, is not a YAML mapping, or uses a YAML tag that a
    safe loader refuses (`!!python/name:` and friends run code)."""


# -- YAML ----------------------------------------------------------------------------------
# RecBole's float resolver (recbole.config.Config._build_yaml_loader): YAML 1.1 reads `1e-3`
# as a string; RecBole, and so every existing config, reads it as a float.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


#: Most values a YAML document may expand to through its aliases (`*name` repeats the value
#: anchored `&name`). A "billion laughs" file nests aliases so that a few hundred bytes expand to
#: 10^9 values: composing it is cheap (aliases share nodes), but anything that walks the value
#: afterwards (RecBole's logger, json) does not end. No config needs a fraction of this.
MAX_EXPANDED_VALUES = 100_000


class YAMLExpansionError(yaml.MarkedYAMLError):
    """A YAML document whose aliases expand past MAX_EXPANDED_VALUES values or into themselves."""


_TOO_LARGE = (
    f"it expands to more than {MAX_EXPANDED_VALUES:,} values with its aliases repeated "
    '(a YAML "billion laughs"?); a config file needs far fewer'
)
_RECURSIVE = "an alias refers to a value that holds it (the value would be infinite)"


def check_expansion(root) -> None:
    """Raise YAMLExpansionError (marked at the node where it shows) when the composed document
    `root` expands, with its aliases repeated, to more than MAX_EXPANDED_VALUES values or holds
    itself (`&a [*a]`). Linear in the distinct nodes: each node's expanded size is counted once."""
    sizes: Dict[int, int] = {}
    open_nodes: set = set()

    def size(node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise YAMLExpansionError(problem=_RECURSIVE, problem_mark=node.start_mark)
        open_nodes.add(id(node))
        total = 1
        for child in node.value if isinstance(node.value, list) else []:
            for part in child if isinstance(child, tuple) else (child,):  # a mapping holds (key, value) pairs
                total += size(part)
                if total > MAX_EXPANDED_VALUES:
                    raise YAMLExpansionError(problem=_TOO_LARGE, problem_mark=node.start_mark)
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


def safe_yaml_loader():
    """yaml.SafeLoader plus RecBole's float resolver (on a subclass: the global SafeLoader is
    untouched), refusing a document whose aliases expand past MAX_EXPANDED_VALUES values or into
    themselves (YAMLExpansionError naming the line, before any value is built)."""

    class _Loader(yaml.SafeLoader):
        def compose_document(self):
            root = super().compose_document()
            if root is not None:
                check_expansion(root)
            return root

    _Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return _Loader


def load_yaml_text(text: str, source: str):
    """Parse YAML text safely; a syntax error, an unsafe tag or runaway aliases are a one-line
    ConfigFileError."""
    try:
        return yaml.load(text, Loader=safe_yaml_loader())
    except yaml.constructor.ConstructorError as exc:
        found = re.search(r"tag '([^']*)'", str(exc.problem or ""))
        tag = found.group(1).replace("tag:yaml.org,2002:", "!!") if found else "tag"
        line = f", line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigFileError(f"{source}{line}: refused {tag} (a safe loader reads plain values only)") from None
    except YAMLExpansionError as exc:
        raise ConfigFileError(f"{source}, line {exc.problem_mark.line + 1}: refused: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{source} is not valid YAML: {exc}".splitlines()[0]) from None


def read_yaml(path: str) -> dict:
    """A config file's top-level mapping, read safely ({} for an empty file)."""
    if os.path.isdir(path):
        raise ConfigFileError(f"config file {path} is a directory, not a YAML file")
    if not os.path.isfile(path):
        raise ConfigFileError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        data = load_yaml_text(handle.read(), f"config file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"config file {path} must hold a mapping of key: value")
    return data


# -- which files ---------------------------------------------------------------------------
def model_config_files(model_class: type) -> List[str]:
    """The model files of `model_class`, base class first: a model's YAML holds only what it
    adds to or changes from its base model's (DLRREC extends DLRM, so DLRREC.yaml is layered over
    DLRM.yaml). A plugin model built on a RecBole model (DCNV2Text on DCNV2) gets that model's
    own file from RecBole's properties, which RecBole reads only for the model it runs by name.
    [] for RecBole's models."""
    files = []
    for cls in reversed(model_class.__mro__):
        if cls is not model_class and cls.__module__.startswith("recbole.model."):
            files.append(os.path.join(RECBOLE_MODEL_PROPERTIES, f"{cls.__name__}.yaml"))
        else:
            files.append(os.path.join(PROPERTIES_DIR, "model", f"{cls.__name__}.yaml"))
    return [f for f in files if os.path.isfile(f)]


def plugin_config_files(model: Union[str, type]) -> List[str]:
    """Layers 2-4: the plugin's files for a model (a name or a class; those that exist)."""
    model_class = resolve_model(model)[0] if isinstance(model, str) else model
    files = [os.path.join(PROPERTIES_DIR, "overall.yaml"), os.path.join(PROPERTIES_DIR, "swing.yaml")]
    return [f for f in files if os.path.isfile(f)] + model_config_files(model_class)


def plugin_defaults(model: Union[str, type]) -> dict:
    """Layers 2-4 alone, merged: the value of every key the plugin's files give `model`."""
    values: dict = {}
    for path in plugin_config_files(model):
        values.update(read_yaml(path))
    return values


def dataset_config_files(dataset: str, data_path: str) -> List[str]:
    """Layer 5: the shipped properties/dataset/<NAME>.yaml, else the converter's file ([] if neither)."""
    shipped = os.path.join(PROPERTIES_DIR, "dataset", f"{dataset}.yaml")
    if os.path.isfile(shipped):
        return [shipped]
    written = os.path.join(data_path, dataset, f"{dataset}.yaml")
    return [written] if os.path.isfile(written) else []


def dataset_settings(dataset: str, data_path: str) -> dict:
    """Layer 5 alone: the dataset's own settings, merged ({} when it has no file)."""
    settings: dict = {}
    for path in dataset_config_files(dataset, data_path):
        settings.update(read_yaml(path))
    return settings


def base_key_specs() -> Dict[str, KeySpec]:
    """The keys RecBole's and the plugin's property files declare."""
    return known_keys(PROPERTIES_DIR)


def declared_default(key: str):
    """The value of a plugin key in the one property file that declares it (its `(type)` note):
    what code below the models (swing/) uses when handed a config that lacks the key.

    Raises:
        KeyError: no file of the plugin's properties declares `key`.
    """
    spec = base_key_specs().get(key)
    properties = os.path.abspath(PROPERTIES_DIR)
    if spec is None or os.path.commonpath([os.path.abspath(spec.source), properties]) != properties:
        raise KeyError(f"{key!r} is declared in none of the plugin's property files ({PROPERTIES_DIR})")
    return read_yaml(spec.source)[key]


def parse_flags(raw: Dict[str, str]) -> dict:
    """`--key=value` texts -> values, each parsed for its key's declared type (keys.parse_flag_value):
    `--reduction=none` stays the string 'none', `--epochs=5` is the int 5. Unknown keys are left
    for ConfigStack.check to name."""
    specs = base_key_specs()
    return {key: parse_flag_value(text, specs.get(key)) for key, text in raw.items()}


# -- the stack -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """One layer: where its values came from (the provenance label) and the values."""

    source: str
    values: Dict[str, object]


def variant_name(model: str) -> Optional[str]:
    """The canonical MODEL_VARIANTS name for `model`, or None when it is no variant."""
    return next((name for name in MODEL_VARIANTS if name.lower() == model.lower()), None)


class ConfigStack:
    """The layers of one run's config (module docstring), read when built.

    Args:
        model: a model or DLRREC variant name (case-insensitive).
        dataset: the dataset name (default restaurants).
        config_files: --config_files, in order.
        flags: --key=value values (already parsed; see parse_flags).
    Raises UnknownModelError or ConfigFileError at once; `check()` raises ConfigKeyError.
    """

    def __init__(
        self,
        model: str,
        dataset: Optional[str] = None,
        config_files: Sequence[str] = (),
        flags: Optional[dict] = None,
        flag_source: str = FLAG_SOURCE,
    ):
        self.model = model
        self.model_class, self.variant_settings = resolve_model(model)
        self.model_name = self.model_class.__name__
        self.variant = variant_name(model)
        self.dataset = dataset or DEFAULT_DATASET
        self.config_files = [str(path) for path in config_files or ()]
        self._user_layers = [Layer(path, read_yaml(path)) for path in self.config_files]
        self.flags = dict(flags or {})
        self.flag_source = flag_source
        self._dataset_layers: Optional[List[Layer]] = None

    # -- where things are ------------------------------------------------------------------
    def _named(self, key: str):
        """`key` from the layers that do not depend on data_path (variant, user files, flags)."""
        value = None
        for layer in [self._variant_layers(), self._user_layers, [self._flag_layer()]]:
            for item in layer:
                if item.values.get(key) is not None:
                    value = item.values[key]
        return value

    @property
    def data_path(self) -> str:
        return str(self._named("data_path") or DEFAULT_DATA_PATH)

    def plugin_files(self) -> List[str]:
        return plugin_config_files(self.model_class)

    def dataset_files(self) -> List[str]:
        return dataset_config_files(self.dataset, self.data_path)

    def reload_dataset(self) -> None:
        """Read the dataset's file again (it appears when a dataset is built on first use)."""
        self._dataset_layers = None

    # -- layers ----------------------------------------------------------------------------
    def _variant_layers(self) -> List[Layer]:
        if not self.variant:
            return []
        return [Layer(f"variant {self.variant}", dict(self.variant_settings))]

    def _flag_layer(self) -> Layer:
        return Layer(self.flag_source, self.flags)

    def layers(self) -> List[Layer]:
        """Layers 2-8 of the module docstring, lowest first (layer 1 is RecBole's own)."""
        if self._dataset_layers is None:
            self._dataset_layers = [Layer(path, read_yaml(path)) for path in self.dataset_files()]
        plugin = [Layer(path, read_yaml(path)) for path in self.plugin_files()]
        return [*plugin, *self._dataset_layers, *self._variant_layers(), *self._user_layers, self._flag_layer()]

    def merged(self) -> Tuple[dict, Dict[str, str]]:
        """(values, provenance): the merged values of layers 2-8 and, per key, the layer that set it."""
        values: dict = {}
        provenance: Dict[str, str] = {}
        for layer in self.layers():
            for key, value in layer.values.items():
                values[key] = value
                provenance[key] = layer.source
        return values, provenance

    def key_specs(self) -> Dict[str, KeySpec]:
        """The declared keys: RecBole's and the plugin's property files, and the few keys a
        file may set without a declaration (keys.UNDECLARED_KEYS). A user's or a dataset's file
        defines no key: one it names that is none of these is refused (`check`)."""
        return base_key_specs()

    # -- checks ----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ConfigKeyError for an unknown key in any layer but the plugin's own files (a
        flag, a variant's setting, a key of a dataset's or a user's file: the message names the
        file), a value of the wrong type in any layer, or a final value outside its key's rules;
        each message names the layer."""
        specs = self.key_specs()
        for layer in self.layers():
            for key, value in layer.values.items():
                if key not in specs:  # never a key of the plugin's files: they declare them
                    where = "" if layer.source == self.flag_source else f" in {layer.source}"
                    raise ConfigKeyError(unknown_key_message(key, specs, where))
                problem = value_problem(value, specs[key], rules=False)
                if problem:
                    raise ConfigKeyError(f"config key {key!r} {problem} (set by {layer.source})")
        values, provenance = self.merged()
        for key, value in values.items():
            if key in specs:
                problem = value_problem(value, specs[key])
                if problem:
                    raise ConfigKeyError(f"config key {key!r} {problem} (set by {provenance[key]})")

    # -- RecBole ---------------------------------------------------------------------------
    def recbole_config(self):
        """RecBole's Config for the merged layers (StackConfig), with `.provenance` per key."""
        values, provenance = self.merged()
        config = StackConfig(model=self.model_class, dataset=self.dataset, config_dict=values)
        provenance = {"model": f"model {self.model!r}", "dataset": f"dataset {self.dataset!r}", **provenance}
        config.provenance = {key: provenance.get(key, RECBOLE_DEFAULT) for key in config.final_config_dict}
        return config


def _stack_config_class():
    from recbole.config import Config

    class StackConfig(Config):
        """RecBole's Config fed the stack's merged, already checked values only: it reads no
        config file (RecBole's loader accepts `!!python/name:` tags), eval()s no string value
        (RecBole's `_convert_config_dict` does) and ignores sys.argv (the CLIs parsed it).
        RecBole's own property files (layer 1) are read by RecBole as always."""

        def _load_config_files(self, file_list):
            return {}

        def _load_variable_config_dict(self, config_dict):
            return dict(config_dict or {})

        def _load_cmd_line(self):
            return {}

    StackConfig.__module__ = __name__
    StackConfig.__qualname__ = "StackConfig"
    return StackConfig


StackConfig = _stack_config_class()


def config_lines(config) -> List[str]:
    """`key: value  # source` per final key, sorted (run_recbole.py --show-config).

    The value is JSON (so valid YAML); the source is a file path, "--key=value flag",
    "variant NAME", or "RecBole default" for what RecBole's own defaults and set-up decided."""
    provenance = getattr(config, "provenance", {})
    lines = []
    for key in sorted(config.final_config_dict):
        value = config.final_config_dict[key]
        try:
            shown = json.dumps(value)
        except (TypeError, ValueError):
            shown = json.dumps(str(value))
        lines.append(f"{key}: {shown}  # {provenance.get(key, RECBOLE_DEFAULT)}")
    return lines
