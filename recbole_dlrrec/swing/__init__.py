"""SWING user-user and item-item similarities and the sampler of contrastive pairs.

    graph.py    edges of the TRAIN split, degree-capped sampling, connector weights, top-k tables
    kernels.py  the numba kernels: item_similarity / user_similarity (exact, parallel)
    cache.py    swing_for_dataset: config keys -> neighbours, cached on disk by parameters and edges
    audit.py    summary and score histograms of the neighbours
    sampler.py  SwingSampler: SWING positives and random negatives on the device

The audit CLI is recbole_dlrrec/cli/swing.py (``python -m recbole_dlrrec.swing``)."""
