"""SWING user-user and item-item similarities and the sampler of contrastive pairs.

    graph.py    edges of the TRAIN split, degree-capped sampling, connector weights, top-k tables
    kernels.py  the numba kernels: item_similarity / user_similarity (exact, parallel)
    cache.py    swing_for_dataset: config keys -> neighbours, cached on disk by parameters and edges
    similarity.py   co-occurrence cosine / Jaccard tables instead of SWING (cl_similarity)
    audit.py    summary, score histograms and category / text agreement of the neighbours
    sampler.py  SwingSampler: SWING positives and random negatives on the device
    hard_negatives.py   text-close ids with no shared interaction: table and sampler (cl_negatives: hard)

The audit command is ``recbole-dlrrec swing`` (recbole_dlrrec/cli/swing.py)."""
