"""Model lookup: the plugin's models first, then RecBole's built-ins.

Names match case-insensitively (`dlrrec` finds DLRREC, `deepfm` finds DeepFM); an unknown name
raises `UnknownModelError` listing what is valid.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from typing import Dict, List, Tuple, Type

from recbole_dlrrec.errors import InputError

# name -> "module:Class" of the plugin's models; imported on first use.
PLUGIN_MODELS: Dict[str, str] = {
    "DLRM": "recbole_dlrrec.models.dlrm:DLRM",
    "DLRREC": "recbole_dlrrec.models.dlrrec:DLRREC",
    # RecBole's baselines with the frozen text vectors as extra fields (models/text_fields.py).
    "DCNV2Text": "recbole_dlrrec.models.text_fields:DCNV2Text",
    "DeepFMText": "recbole_dlrrec.models.text_fields:DeepFMText",
    "WideDeepText": "recbole_dlrrec.models.text_fields:WideDeepText",
}

# The paper's variants of DLRREC, runnable by name anywhere a model name is taken
# (run_recbole.py --model=DLRREC-V0, the leaderboard, tuning): name -> (base model, settings).
# The settings sit under the user's own config, so any of them can still be overridden.
MODEL_VARIANTS: Dict[str, Tuple[str, dict]] = {
    "DLRREC-noText": ("DLRREC", {"reduction": "none", "w1": 0.0, "w2": 0.0}),  # plain DLRM through DLRREC
    "DLRREC-rawText": ("DLRREC", {"reduction": "linear"}),  # raw text, one linear map
    "DLRREC-V0": ("DLRREC", {"reduction": "pca"}),  # two-step: frozen PCA, then train
    "DLRREC-noCL": ("DLRREC", {"w1": 0.0, "w2": 0.0}),  # co-trained reduction, no contrastive heads
    "DLRREC-Lii": ("DLRREC", {"w2": 0.0}),  # + item-item InfoNCE only
    "DLRREC-Luu": ("DLRREC", {"w1": 0.0}),  # + user-user InfoNCE only
    "DLRREC-fp32": ("DLRREC", {"train_precision": "fp32"}),  # DLRREC without bf16 autocast (precision A/B)
    # The paper's head, as DLRREC's defaults were before the head's switches (the defaults are now
    # CLplus's head with Jaccard positives): SWING positives drawn by score, negatives from all ids.
    "DLRREC-paperHead": (
        "DLRREC",
        {
            "cl_projection": "none",
            "cl_negative_pool": "all",
            "cl_negative_dist": "uniform",
            "cl_mask_neighbours": False,
            "swing_sample_mode": "score",
            "cl_similarity": "swing",
        },
    ),
    # The contrastive head's repairs together (issue #15 item 2): projection head, negatives from
    # the TRAIN ids by count^0.75, every SWING neighbour masked out of the negatives, uniform positives.
    "DLRREC-CLplus": (
        "DLRREC",
        {
            "cl_projection": "mlp",
            "cl_negative_pool": "seen",
            "cl_negative_dist": "popularity",
            "cl_mask_neighbours": True,
            "swing_sample_mode": "uniform",
        },
    ),
    # The same head, cross-modal: the anchor's text against ID embeddings (itself or a SWING neighbour).
    "DLRREC-CLtextVsId": (
        "DLRREC",
        {
            "cl_repr": "text_vs_id",
            "cl_projection": "mlp",
            "cl_negative_pool": "seen",
            "cl_negative_dist": "popularity",
            "cl_mask_neighbours": True,
            "swing_sample_mode": "uniform",
        },
    ),
    # The paper's open questions (issue #15 item 3): other positives, and hard negatives. Jaccard
    # positives became the default (results/dlrrec-defaults.md), so jaccardPos is DLRREC itself and
    # swingPos is the paper's SWING positives under today's head.
    "DLRREC-swingPos": ("DLRREC", {"cl_similarity": "swing"}),  # the paper's SWING neighbours
    "DLRREC-itemcfPos": ("DLRREC", {"cl_similarity": "itemcf_cosine"}),  # co-occurrence cosine neighbours
    "DLRREC-jaccardPos": ("DLRREC", {"cl_similarity": "jaccard"}),  # Jaccard neighbours
    "DLRREC-hardNeg": ("DLRREC", {"cl_negatives": "hard"}),  # close in text, no shared train interaction
    "DLRREC-itemText": ("DLRREC", {"user_text": "none"}),  # item text only: no user text tower
    "DLRREC-fullUserText": (
        "DLRREC",
        {"user_text": "full"},
    ),  # a train row's user vector holds its own review (leaky; ablation)
    # + the item's train-review vector as one more item feature (needs a --user_vector mean build)
    "DLRREC-itemRev": ("DLRREC", {"item_review_text": True}),
    # A reduction that starts from V0's PCA: a one-epoch linear probe, then fine-tuning at a tenth of the rate.
    "DLRREC-pcaInit": ("DLRREC", {"reduction_init": "pca", "reduction_warmup_epochs": 1, "reduction_lr_scale": 0.1}),
    "DLRREC-catalogSoftmax": ("DLRREC", {"contrastive": "catalog_softmax"}),  # item head over the whole catalogue
    "DLRREC-alignUniform": ("DLRREC", {"contrastive": "align_uniform"}),  # alignment + uniformity, no negatives
    # Unseen users and items by design (nn/oov.py): one learned OOV row per side, trained by id dropout
    # (user rate as oov_user_token_rate; items lower: on warm boards every test item is seen) ...
    "DLRREC-oov": ("DLRREC", {"oov_embedding": True, "id_dropout_user": 0.15, "id_dropout_item": 0.05}),
    # ... and an unseen id with a text takes the ID vector its text maps to (models/dlrrec_oov.py).
    "DLRREC-textToId": (
        "DLRREC",
        {"oov_embedding": True, "id_dropout_user": 0.15, "id_dropout_item": 0.05, "text_to_id": True},
    ),
    "DLRREC-semanticIds": ("DLRREC", {"semantic_ids": 3}),  # 3 levels of residual k-means codes of item text
    # Unseen users through the data alone (data/oov_token.py): any model can take it, so the
    # baselines closest to DLRREC get the same row.
    "DLRREC-oovToken": ("DLRREC", {"oov_user_token": True}),
    "DLRM-oovToken": ("DLRM", {"oov_user_token": True}),
    "FM-oovToken": ("FM", {"oov_user_token": True}),
}

_RECBOLE_SUBPACKAGES = (
    "context_aware_recommender",
    "general_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
)  # exlib_recommender is left out: importing it needs lightgbm and xgboost


class UnknownModelError(InputError, ValueError):
    """A model name that neither the plugin nor RecBole defines."""


def _load(target: str):
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def plugin_model_names() -> List[str]:
    return list(PLUGIN_MODELS)


def recbole_model_names(subpackage: str = "context_aware_recommender") -> List[str]:
    """Class names of RecBole's built-in models in one subpackage (imports them)."""
    package = importlib.import_module(f"recbole.model.{subpackage}")
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for attr in dir(module):
            if attr.lower() == info.name and isinstance(getattr(module, attr), type):
                names.append(attr)
    return sorted(names)


def _recbole_model(name: str):
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):  # `foo.bar` must not reach importlib
        return None
    for sub in _RECBOLE_SUBPACKAGES:
        module_name = f"recbole.model.{sub}.{name.lower()}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for attr in dir(module):
            if attr.lower() == name.lower() and isinstance(getattr(module, attr), type):
                return getattr(module, attr)
    return None


def resolve_model(name: str) -> Tuple[Type, dict]:
    """(model class, variant settings) for a model or variant name."""
    for variant, (base, settings) in MODEL_VARIANTS.items():
        if variant.lower() == name.lower():
            return get_model_class(base), dict(settings)
    return get_model_class(name), {}


def get_model_class(name: str) -> Type:
    """The model class for `name`: plugin models first, then RecBole's."""
    for plugin_name, target in PLUGIN_MODELS.items():
        if plugin_name.lower() == name.lower():
            return _load(target)
    model = _recbole_model(name)
    if model is not None:
        return model
    raise UnknownModelError(
        f"unknown model {name!r}; plugin models: {', '.join(plugin_model_names())}; "
        f"DLRREC variants: {', '.join(MODEL_VARIANTS)}; "
        f"RecBole context-aware models: {', '.join(recbole_model_names())} "
        "(RecBole's general and sequential models are accepted too)"
    )
