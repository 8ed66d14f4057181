"""SWING user-user and item-item similarities (numba kernels, cached) and the sampler of
contrastive positives and negatives."""
