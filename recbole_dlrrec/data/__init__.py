"""Data preparation for recbole-dlrrec.

Modules (import them directly; this package imports nothing heavy):

- ``encoder``: offline sentence encoder (all-MiniLM-L6-v2) with an sqlite vector cache.
- ``text_build``: the exact item and user texts that are fed to the encoder.
- ``google_local``: Google Local 2021 reviews + meta -> RecBole atomic files, text vectors, report
  (a package: read -> features from train rows only -> write; the command is cli/convert.py).
- ``dataset_folder``: the one atomic writer of a dataset folder (replaces only its own output).
- ``sample``: generated (not real) restaurant reviews in the Google Local format, and
  ``ensure_restaurants`` which builds the bundled ``restaurants`` dataset on first use.
"""
