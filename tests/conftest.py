"""Shared fixtures: a tiny RecBole dataset with text vectors, written in the converter's layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # the CI machine has 2 cores; tests stay small and deterministic

TINY_YAML = """\
USER_ID_FIELD: user_id
ITEM_ID_FIELD: item_id
LABEL_FIELD: label
TIME_FIELD: timestamp
load_col:
  inter: [user_id, item_id, label]
  item: [item_id, cuisine, tags, price_level]
  user: [user_id, age_band]
benchmark_filename: [train, valid, test]
eval_args: {{split: {{RS: [0.8, 0.1, 0.1]}}, order: RO, group_by: ~, mode: labeled}}
train_neg_sample_args: ~
numerical_features: [price_level]
normalize_field: [price_level]
normalize_all: False
metrics: [AUC, LogLoss, Accuracy, FPR, Precision, Recall, F1]
valid_metric: AUC
item_text_vec: itemvec
user_text_vec: uservec
show_progress: False
reduction_dim: 8
state: WARNING
train_batch_size: 256
eval_batch_size: 1024
epochs: 2
use_gpu: False
checkpoint_dir: {checkpoint_dir}
"""


def write_tiny_dataset(root, name="tiny", n_users=80, n_items=50, n_rows=3000, dim=24, seed=0):
    """A small labeled dataset whose labels depend on hidden user/item factors that the text
    vectors partly reveal. Returns the data_path (root)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    k = 4
    user_f = rng.normal(size=(n_users, k))
    item_f = rng.normal(size=(n_items, k))
    proj = rng.normal(size=(k, dim))
    users = rng.integers(0, n_users, n_rows)
    items = rng.integers(0, n_items, n_rows)
    logits = (user_f[users] * item_f[items]).sum(1) + 1.0
    labels = (rng.random(n_rows) < 1 / (1 + np.exp(-logits))).astype(int)
    order = rng.permutation(n_rows)
    cut1, cut2 = int(0.8 * n_rows), int(0.9 * n_rows)
    for split, idx in (("train", order[:cut1]), ("valid", order[cut1:cut2]), ("test", order[cut2:])):
        with open(os.path.join(folder, f"{name}.{split}.inter"), "w") as f:
            f.write("user_id:token\titem_id:token\tlabel:float\ttimestamp:float\n")
            for i in idx:
                f.write(f"u{users[i]}\ti{items[i]}\t{labels[i]}\t{i}\n")
    with open(os.path.join(folder, f"{name}.item"), "w") as f:
        f.write("item_id:token\tcuisine:token\ttags:token_seq\tprice_level:float\n")
        for j in range(n_items):
            f.write(f"i{j}\tc{j % 5}\tt{j % 3} t{j % 7}\t{(j % 4) + 1}\n")
    with open(os.path.join(folder, f"{name}.user"), "w") as f:
        f.write("user_id:token\tage_band:token\n")
        for u in range(n_users):
            f.write(f"u{u}\ta{u % 6}\n")
    from recbole_dlrrec.data.text_vectors import save_text_vectors

    item_vec = item_f @ proj + 0.3 * rng.normal(size=(n_items, dim))
    user_vec = user_f @ proj + 0.3 * rng.normal(size=(n_users, dim))
    save_text_vectors(os.path.join(folder, f"{name}.itemvec.npz"), [f"i{j}" for j in range(n_items)], item_vec)
    # The last user has no text vector, as a user without training reviews would.
    save_text_vectors(os.path.join(folder, f"{name}.uservec.npz"), [f"u{u}" for u in range(n_users - 1)], user_vec[:-1])
    with open(os.path.join(folder, f"{name}.yaml"), "w") as f:
        f.write(TINY_YAML.format(checkpoint_dir=os.path.join(root, "saved")))
    return str(root)


def leaderboard_argv(data_path, out, *extra):
    """run_leaderboard.py arguments for a 1-seed, 2-epoch board on the tiny dataset under `out`."""
    return [
        "--dataset=tiny",
        f"--data_path={data_path}",
        f"--results_dir={out}",
        f"--checkpoint_dir={os.path.join(out, 'saved')}",
        "--seeds",
        "1",
        "--epochs",
        "2",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture
def tiny_config(tiny_data_path):
    """A factory: tiny_config(model, **overrides) -> RecBole Config on the tiny dataset."""
    from recbole_dlrrec.runtime.quick_start import build_config

    def make(model="DLRM", **overrides):
        overrides.setdefault("data_path", tiny_data_path)
        return build_config(model, "tiny", config_dict=overrides)

    return make


REAL_DATA = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "google-local-hi-ms"
)


@pytest.fixture(scope="session")
def real_data_slice(tmp_path_factory):
    """(reviews, meta) paths: every 60th line of the real Google Local reviews (about 900 lines)
    and the whole meta file; skips when ../shared/data is absent."""
    import gzip

    reviews = os.path.join(REAL_DATA, "reviews.json.gz")
    meta = os.path.join(REAL_DATA, "meta.json.gz")
    if not (os.path.isfile(reviews) and os.path.isfile(meta)):
        pytest.skip(f"real Google Local data not found at {os.path.normpath(REAL_DATA)} (../shared/data)")
    folder = tmp_path_factory.mktemp("real")
    sliced = os.path.join(folder, "reviews.json")
    with gzip.open(reviews, "rt", encoding="utf-8") as src, open(sliced, "w", encoding="utf-8") as dst:
        for lineno, line in enumerate(src, 1):
            if lineno % 60 == 0:
                dst.write(line)
    return sliced, meta
