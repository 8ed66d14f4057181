"""oov_user_token (data/oov_token.py): unseen users mapped to one reserved token through the data."""

from __future__ import annotations

import pytest
import torch

from recbole_dlrrec.data.oov_token import RESERVED_ID
from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits

pytestmark = pytest.mark.slow  # each test loads the dataset (about 1 s)


@pytest.fixture(scope="module")
def sparse_data_path(tmp_path_factory):
    """Many users over few rows: most valid / test users never occur in TRAIN."""
    from conftest import write_tiny_dataset

    return write_tiny_dataset(tmp_path_factory.mktemp("oovtok"), name="sparse", n_users=300, n_rows=600, seed=4)


def _splits(path, model="FM", **overrides):
    config = build_config(model, "sparse", config_dict={"data_path": path, **overrides})
    _, train, valid, test = load_splits(config)
    return config, {"train": train, "valid": valid, "test": test}


def _users(loader):
    return loader._dataset.inter_feat["user_id"].clone()


@pytest.mark.parametrize("fast", [False, True])
def test_exactly_the_unseen_users_are_mapped_in_valid_and_test(sparse_data_path, fast):
    _, plain = _splits(sparse_data_path, fast_dataloader=fast)
    _, mapped = _splits(sparse_data_path, fast_dataloader=fast, oov_user_token=True, oov_user_token_rate=0.2)
    train_users = set(_users(plain["train"]).tolist())
    for split in ("valid", "test"):
        before, after = _users(plain[split]), _users(mapped[split])
        unseen = torch.tensor([u not in train_users for u in before.tolist()])
        assert unseen.any() and (~unseen).any()  # the fixture has both kinds
        assert torch.equal(after[unseen], torch.full_like(after[unseen], RESERVED_ID))
        assert torch.equal(after[~unseen], before[~unseen])
        batch = next(iter(mapped[split]))[0]  # what the loader yields (fast: joined at start-up)
        assert torch.equal(batch["user_id"], after[: len(batch)])


def test_a_seeded_share_of_train_rows_is_mapped_the_same_for_the_same_seed(sparse_data_path):
    _, plain = _splits(sparse_data_path)
    runs = [_splits(sparse_data_path, oov_user_token=True, oov_user_token_rate=0.25, seed=s)[1] for s in (1, 1, 2)]
    before = _users(plain["train"])
    masks = [_users(run["train"]) != before for run in runs]
    assert abs(masks[0].float().mean().item() - 0.25) < 0.06
    assert torch.equal(_users(runs[0]["train"])[masks[0]], torch.zeros(int(masks[0].sum()), dtype=torch.long))
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    assert RESERVED_ID not in before.tolist()  # the token is no real user


def test_a_baseline_trains_and_scores_on_the_mapped_data(sparse_data_path):
    config, loaders = _splits(sparse_data_path, oov_user_token=True)
    model = build_model(config, loaders["train"])
    loss = model.calculate_loss(next(iter(loaders["train"])))
    assert torch.isfinite(loss)
    assert model.predict(next(iter(loaders["test"]))[0]).shape[0] > 0
