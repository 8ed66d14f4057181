"""The side files a dataset folder holds beside RecBole's atomic files: ``NAME.<suffix>.npz``.

One owner for their names, below every module that writes them (the Google Local converter,
the ml-100k and sample builders) and every module that reads them (text_vectors, the models).
The item and user suffixes are also what a dataset's NAME.yaml gives as ``item_text_vec`` /
``user_text_vec`` (properties/overall.yaml).
"""

from __future__ import annotations

#: Per-item and per-user text vectors (arrays ``ids`` and ``vectors``).
ITEM_VEC_SUFFIX = "itemvec"
USER_VEC_SUFFIX = "uservec"
#: Per-item image vectors, written only with an image encoder.
ITEM_IMAGE_VEC_SUFFIX = "itemimgvec"
#: Per-train-row history text vectors. Not named in NAME.yaml (the yaml stays what it was):
#: the model looks for the file beside NAME.uservec.npz.
USER_HIST_SUFFIX = "userhist"
#: Item vectors from the item's TRAIN reviews (``user_vector: mean`` builds): per item (``ids``,
#: ``vectors``, the itemvec layout) and per train row (its earlier reviews, the userhist layout).
#: Not named in NAME.yaml either: DLRREC reads them beside NAME.itemvec.npz under item_review_text.
ITEM_REV_SUFFIX = "itemrev"
ITEM_REV_HIST_SUFFIX = "itemrevhist"


def side_file_name(dataset: str, suffix: str) -> str:
    """``<dataset>.<suffix>.npz``, the file name of one side file."""
    return f"{dataset}.{suffix}.npz"
