"""Where the plugin's YAML defaults (properties/) are, in a checkout and in an installed wheel.

The repository keeps properties/ at its top level; the wheel ships the same folder inside the
package as `recbole_dlrrec/properties/` (setup.py maps one onto the other). An editable install
(`pip install -e .`, `make install`) leaves it at the top level. `properties_dir()` is the one
place that knows this.
"""

from __future__ import annotations

import os
from typing import List

#: Environment variable that points the plugin at another properties folder.
PROPERTIES_ENV = "RECBOLE_DLRREC_PROPERTIES"

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def properties_candidates() -> List[str]:
    """Where properties/ may be, first match wins: inside the package (installed wheel), then
    beside it (checkout, editable install)."""
    return [os.path.join(_PACKAGE_DIR, "properties"), os.path.join(os.path.dirname(_PACKAGE_DIR), "properties")]


def properties_dir() -> str:
    """The properties folder: $RECBOLE_DLRREC_PROPERTIES when set, else the first candidate
    holding overall.yaml.

    Raises:
        FileNotFoundError: no candidate holds overall.yaml (a broken installation).
    """
    override = os.environ.get(PROPERTIES_ENV)
    if override:
        return override
    candidates = properties_candidates()
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, "overall.yaml")):
            return folder
    raise FileNotFoundError(
        f"recbole_dlrrec: no properties/overall.yaml in {' or '.join(candidates)}; "
        f"reinstall the package or set {PROPERTIES_ENV}"
    )
