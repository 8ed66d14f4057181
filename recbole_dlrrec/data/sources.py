"""The review sources ``recbole-dlrrec convert --source NAME`` knows: name -> converter module.

Each module has ``SOURCE`` (its :class:`recbole_dlrrec.data.convert.source.Source`) and
``convert(reviews_path, meta_path, name, out_dir="dataset", options=None, **keywords)``; the
command line calls ``convert`` through the module (so a test may replace it there).
"""

from __future__ import annotations

from types import ModuleType

from recbole_dlrrec.data import google_local, yelp

#: The first is the default.
SOURCES: dict[str, ModuleType] = {"google": google_local, "yelp": yelp}
DEFAULT_SOURCE = "google"
