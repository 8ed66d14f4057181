"""recbole-dlrrec: the DLRREC recommender (and DLRM) as a RecBole 1.2.1 plugin.

Importing the package applies the RecBole compatibility fixes (compat.py) and registers the
classification metrics (metrics.py). Models are looked up by name through registry.py.
"""
from recbole_dlrrec import patches as _compat

_compat.apply()

from recbole_dlrrec.runtime import metrics as _metrics  # noqa: E402  (needs the compat fixes first)

_metrics.register()

__version__ = "0.1.0"
