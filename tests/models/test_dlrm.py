"""DLRM: the interaction is sized by the constructor for the extra feature vectors a subclass
adds (no hook called during __init__)."""
import pytest
import torch

from recbole_dlrrec.models.dlrm import DLRM
from recbole_dlrrec.runtime.quick_start import load_splits


@pytest.fixture
def dlrm_parts(tiny_config):
    config = tiny_config("DLRM")
    _, train, _, _ = load_splits(config)
    return config, train._dataset, next(iter(train))


def test_num_extra_vectors_sizes_the_interaction(dlrm_parts):
    config, dataset, batch = dlrm_parts
    plain = DLRM(config, dataset)
    extended = DLRM(config, dataset, num_extra_vectors=2)
    assert plain.num_extra_vectors == 0 and extended.num_extra_vectors == 2
    assert extended.interaction_arch.num_vectors == plain.interaction_arch.num_vectors + 2
    extras = [torch.randn(len(batch), config["embedding_size"]) for _ in range(2)]
    vectors, _ = extended.feature_vectors(batch, extras)
    assert vectors.shape[1] == extended.interaction_arch.num_vectors
    assert extended(batch, extras).shape == (len(batch),)
    assert plain(batch).shape == (len(batch),)


def test_field_rows_address_the_id_field_in_the_shared_table(dlrm_parts):
    config, dataset, batch = dlrm_parts
    model = DLRM(config, dataset)
    field = model.fields.token.index(config["ITEM_ID_FIELD"])
    ids = batch[config["ITEM_ID_FIELD"]]
    token_ids, _ = model.sparse_input(batch)
    assert torch.equal(model.sparse_arch.field_rows(field, ids), model.sparse_arch.token_rows(token_ids)[:, field])
