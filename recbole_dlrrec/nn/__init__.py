"""Torch-only building blocks, torchrec-style: arches with typed constructor arguments and
shapes in their docstrings. Nothing here imports RecBole or reads a Config (tested).

    layers.py       the DLRM arches: SparseArch, DenseArch, InteractionArch, OverArch, FirstOrderArch; mlp, Dropout
    text.py         ReductionTower (T -> R) and TextTower (ids -> text vector -> tower -> D)
    contrastive.py  info_nce, ContrastiveDraw (one batch's anchors / positives / negatives and their loss),
                    mean_pairwise_cosine
    oov.py          OOVArch (unseen ids -> one learned row per id field, ID dropout), TextToIdMap
"""
