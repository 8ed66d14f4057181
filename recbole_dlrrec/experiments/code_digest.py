"""What code a board cell or a saved search ran: a digest of the plugin's sources on its path.

    code_version("DLRREC")  # "plugin-<16 hex>": run code + model code
    code_version("DeepFM")  # "recbole-1.2.1-<16 hex>": run code only

A cell (board_cells.py) or a saved search (tuned_board.py) whose recorded code_version differs
from today's is run again. The digest covers the code that decides a run's numbers and nothing
else: experiments/ (boards, reports, the search driver) is left out on purpose, so reorganising
how boards are run and written keeps every committed cell and search current.
"""

from __future__ import annotations

import hashlib
import os
from typing import Iterable

from recbole_dlrrec.config.registry import resolve_model

# The plugin's sources every model's numbers depend on: the run loop (config stack, loaders,
# training step, metrics, evaluation) and RecBole's fixes. config/registry.py is left out: it
# only maps names to classes (a new DLRREC variant must not rerun RecBole's cells).
# data/oov_token.py rewrites the loaded splits for every model (oov_user_token).
RUN_CODE = tuple(os.path.join("config", name) for name in ("__init__.py", "stack.py", "keys.py", "paths.py")) + (
    "runtime",
    "patches.py",
    os.path.join("data", "oov_token.py"),
)
# ... and, for the plugin's own models (DLRM, DLRREC and its variants), the model code and the
# reader of the text side files (RecBole's models never read those).
MODEL_CODE = ("nn", "models", "swing", os.path.join("config", "options.py"), os.path.join("data", "text_vectors.py"))


def source_digest(entries: Iterable[str]) -> str:
    """sha256 (16 hex) over the relative paths and bytes of the package's .py files under `entries`."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for entry in entries:
        path = os.path.join(package, entry)
        files = (
            sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".py"))
            if os.path.isdir(path)
            else [path]
        )
        for name in files:
            if os.path.isfile(name):
                digest.update(os.path.relpath(name, package).encode("utf-8"))
                with open(name, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()[:16]


def is_plugin_model(model: str) -> bool:
    """True for the plugin's own models (DLRM, DLRREC and its variants), False for RecBole's."""
    model_class, _ = resolve_model(model)
    return model_class.__module__.startswith("recbole_dlrrec")


def code_version(model: str) -> str:
    """What code a model's cell ran. RecBole's models: RecBole's version plus a hash of every
    plugin module on their path (config stack, loaders, training step, metrics, patches); the
    plugin's models: that hash over their model code too. A cell whose code_version differs from
    today's is run again, so one table never mixes code versions."""
    if not is_plugin_model(model):
        import recbole

        return f"recbole-{recbole.__version__}-{source_digest(RUN_CODE)}"
    return "plugin-" + source_digest(MODEL_CODE + RUN_CODE)
