"""recbole-dlrrec: the DLRREC recommender (and DLRM) as a RecBole 1.2.1 plugin.

Importing the package (or any of its modules) changes no process-wide state. The RecBole
fixes and the plugin's metric registration are installed by one explicit, idempotent call,
`recbole_dlrrec.patches.apply()`, which every CLI and every entry point that touches RecBole
makes (see patches.py). Models are looked up by name through config/registry.py.
"""

__version__ = "0.1.0"
