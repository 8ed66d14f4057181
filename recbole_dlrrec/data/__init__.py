"""Data preparation for recbole-dlrrec.

Modules (import them directly; this package imports nothing heavy):

- ``encoder``: offline sentence encoder (all-MiniLM-L6-v2) with an sqlite vector cache.
- ``text_build``: the exact item and user texts that are fed to the encoder.
- ``convert``: the converter's steps, the same for every review source (neutral records, reading
  in two passes, split, k-core, leak-free user history, train-only features, encoding, writing,
  options); the command is cli/convert.py (``recbole-dlrrec convert --source google|yelp``).
- ``google_local``: Google Local 2021 reviews + meta -> the neutral records (and the converter's
  promises, in its docstring).
- ``yelp``: the Yelp Open Dataset's review.json + business.json -> the neutral records.
- ``sources``: the ``--source`` names and their converter modules.
- ``dataset_folder``: the one atomic writer of a dataset folder (replaces only its own output).
- ``sample``: generated (not real) restaurant reviews in the Google Local format, and
  ``ensure_restaurants`` which builds the bundled ``restaurants`` dataset on first use.
"""
