"""The text-aware baselines (models/text_fields.py): RecBole's DCNV2 / DeepFM / WideDeep with the
frozen text vectors as float fields, and the item semantic IDs (models/semantic_ids.py) for them
and for DLRREC."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from conftest import write_tiny_dataset
from test_dlrrec_user_text import _listed, hist_data  # noqa: F401 (a fixture: the user history dataset)

from recbole_dlrrec.config.registry import resolve_model
from recbole_dlrrec.config.stack import ConfigStack, model_config_files, read_yaml
from recbole_dlrrec.data.text_vectors import save_text_vectors
from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits

TEXT_MODELS = ("DCNV2Text", "DeepFMText", "WideDeepText")
K = 3  # text_fields in these tests; the tiny dataset's vectors are 24-d


def _build(data_path, model, **overrides):
    config = build_config(model, "tiny", config_dict={"data_path": data_path, "text_fields": K, **overrides})
    dataset, train, valid, test = load_splits(config)
    torch.manual_seed(0)
    return build_model(config, train), config, dataset, train


def _batch(train):
    batch = next(iter(train))
    return batch[0] if isinstance(batch, tuple) else batch


@pytest.fixture(scope="module")
def unseen_data(tmp_path_factory):
    """The tiny dataset plus an item i_new that only test rows have, with a vector of its own."""
    root = write_tiny_dataset(tmp_path_factory.mktemp("unseen"))
    folder = os.path.join(root, "tiny")
    with open(os.path.join(folder, "tiny.test.inter"), "a") as handle:
        handle.write("u1\ti_new\t1\t99999\nu2\ti_new\t0\t99998\n")
    with open(os.path.join(folder, "tiny.item"), "a") as handle:
        handle.write("i_new\tc0\tt0\t1\n")
    _set_item_vector(root, "i_new", np.full(24, 5.0))
    return root


def _set_item_vector(root, token, vector):
    path = os.path.join(root, "tiny", "tiny.itemvec.npz")
    with np.load(path) as data:
        ids, vectors = list(data["ids"]), data["vectors"].copy()
    if token in ids:
        vectors[ids.index(token)] = vector
    else:
        ids, vectors = ids + [token], np.vstack([vectors, vector])
    save_text_vectors(path, ids, vectors)


def _copy(root, tmp_path):
    shutil.copytree(os.path.join(root, "tiny"), os.path.join(tmp_path, "tiny"))
    return str(tmp_path)


def test_a_text_model_layers_its_recbole_models_defaults_and_the_text_keys():
    cls, _ = resolve_model("dcnv2text")
    assert cls.__name__ == "DCNV2Text" and cls.tuned_as == "DCNV2"
    names = [os.path.basename(path) for path in model_config_files(cls)]
    assert names == ["SemanticIds.yaml", "TextFields.yaml", "DCNV2.yaml"]
    assert model_config_files(resolve_model("DCNV2")[0]) == []  # RecBole reads its own models' files
    values, source = ConfigStack("DCNV2Text", "tiny").merged()
    recbole_file = model_config_files(cls)[-1]
    assert recbole_file.endswith(os.path.join("recbole", "properties", "model", "DCNV2.yaml"))
    assert (values["cross_layer_num"], source["cross_layer_num"]) == (
        read_yaml(recbole_file)["cross_layer_num"],
        recbole_file,
    )
    assert (values["text_fields"], values["semantic_ids"], values["user_text"]) == (8, 0, "auto")


@pytest.mark.slow
@pytest.mark.parametrize("model", TEXT_MODELS)
def test_text_fields_widen_the_fields_and_change_the_score(model, tiny_data_path):
    text, config, dataset, train = _build(tiny_data_path, model)
    base, *_ = _build(tiny_data_path, model.removesuffix("Text"))
    batch = _batch(train)
    sides = 2  # item and user text
    assert text.num_feature_field == base.num_feature_field + sides * K
    fields = text.concat_embed_input_fields(batch)
    assert fields.shape == (len(batch), base.num_feature_field + sides * K, config["embedding_size"])
    text.eval()
    before = text.predict(batch)
    with torch.no_grad():
        text.text_field_arch.table_0.mul_(-1.0)  # the item side's values
    assert not torch.allclose(before, text.predict(batch))


@pytest.mark.slow
def test_the_first_order_term_sees_the_text_fields(tiny_data_path):
    model, _, _, train = _build(tiny_data_path, "WideDeepText")
    batch = _batch(train)
    before = model.first_order_linear(batch)
    with torch.no_grad():
        model.text_field_arch.field_weights.weight.add_(1.0)
    values = model.text_field_arch.values(model.text_rows(batch))
    assert torch.allclose(model.first_order_linear(batch) - before, values.sum(1, keepdim=True), atol=1e-5)


@pytest.mark.slow
def test_an_id_without_a_vector_gets_zeros_and_the_pca_is_fitted_on_train_ids(unseen_data, tmp_path):
    model, config, dataset, train = _build(unseen_data, "DeepFMText", user_text="full")
    users = dataset.field2token_id[config["USER_ID_FIELD"]]
    items = dataset.field2token_id[config["ITEM_ID_FIELD"]]
    item_values, user_values = model.text_field_arch.table_0, model.text_field_arch.table_1
    assert model.text_field_sides == ["item", "user"]
    assert torch.equal(user_values[users["u79"]], torch.zeros(K))  # the tiny dataset's user without text
    assert torch.equal(item_values[0], torch.zeros(K))  # padding
    # i_new is in no train row: its vector moves no component, yet it gets values from its text.
    moved = _copy(unseen_data, tmp_path)
    _set_item_vector(moved, "i_new", np.full(24, -3.0))
    again, *_ = _build(moved, "DeepFMText", user_text="full")
    new = items["i_new"]
    keep = torch.arange(len(item_values)) != new
    assert torch.allclose(again.text_field_arch.table_0[keep], item_values[keep])
    assert not torch.allclose(again.text_field_arch.table_0[new], item_values[new])


@pytest.mark.slow
def test_text_fields_follow_dlrrecs_before_row_rule(hist_data):  # noqa: F811 (the imported fixture)
    """With {dataset}.userhist.npz (user_text auto -> before_row) a train row's user fields are
    the frozen PCA of its user's earlier reviews (zeros without any), as DLRREC's user text."""
    root, _, pairs, row, vectors = hist_data
    model, config, dataset, train = _build(root, "WideDeepText")
    assert model.history_lookup is not None
    batch = _batch(train)
    listed = _listed(model, config, dataset, batch, pairs, row)
    n_users = dataset.user_num
    assert model.text_field_arch.table_1.shape == (n_users + len(vectors), K)
    _, user_rows = model.text_rows(batch)
    assert torch.equal(user_rows, torch.tensor([n_users + r if r >= 0 else 0 for r in listed]))
    values = model.text_field_arch.values(model.text_rows(batch))[:, K:]
    without = torch.tensor([r < 0 for r in listed])
    assert without.any() and torch.equal(values[without], torch.zeros(int(without.sum()), K))
    assert (values[~without] != 0).any(1).all()


@pytest.mark.slow
@pytest.mark.parametrize("model", TEXT_MODELS)
def test_a_text_model_trains_one_epoch(model, tiny_data_path, tmp_path):
    from recbole_dlrrec.runtime.quick_start import run

    results = run(
        model,
        "tiny",
        config_dict={"data_path": tiny_data_path, "epochs": 1, "state": "ERROR", "semantic_ids": 2},
        result_file=os.path.join(tmp_path, "run.json"),
        saved=False,
    )
    assert results["model_class"] == model and len(results["epochs"]) == 1
    assert 0.0 <= results["test_result"]["auc"] <= 1.0


# -- semantic IDs ----------------------------------------------------------------------------
@pytest.mark.slow
def test_semantic_ids_are_fitted_on_train_items_and_an_unseen_item_gets_its_texts_codes(unseen_data, tmp_path):
    model, config, dataset, _ = _build(unseen_data, "DCNV2Text", semantic_ids=2, semantic_id_codes=8)
    items = dataset.field2token_id[config["ITEM_ID_FIELD"]]
    codes = model.semantic_ids.codes
    assert codes.shape == (len(items), 2) and codes[0].tolist() == [0, 0]
    assert int(codes[1:].min()) >= 1 and int(codes.max()) <= 8
    # Changing the test-only item's text changes no centroid: every other item keeps its codes,
    # and i_new given i3's text gets i3's codes.
    moved = _copy(unseen_data, tmp_path)
    with np.load(os.path.join(moved, "tiny", "tiny.itemvec.npz")) as data:
        i3 = data["vectors"][list(data["ids"]).index("i3")]
    _set_item_vector(moved, "i_new", i3)
    again, *_ = _build(moved, "DCNV2Text", semantic_ids=2, semantic_id_codes=8)
    new = items["i_new"]
    keep = torch.arange(len(codes)) != new
    assert torch.equal(again.semantic_ids.codes[keep], codes[keep])
    assert torch.equal(again.semantic_ids.codes[new], codes[items["i3"]])
    # Same seed, same codes; the text model's fields grow by one per level.
    twice, *_ = _build(unseen_data, "DCNV2Text", semantic_ids=2, semantic_id_codes=8)
    assert torch.equal(twice.semantic_ids.codes, codes)
    assert model.num_feature_field == twice.num_feature_field
    plain, *_ = _build(unseen_data, "DCNV2Text")
    assert model.num_feature_field == plain.num_feature_field + 2


@pytest.mark.slow
def test_dlrrec_semantic_ids_add_one_interaction_vector_per_level(tiny_data_path):
    off, _, _, train = _build(tiny_data_path, "DLRREC")
    on, *_ = _build(tiny_data_path, "DLRREC", semantic_ids=3, semantic_id_codes=4)
    batch = _batch(train)
    assert off.semantic_ids is None and not any("semantic" in key for key in off.state_dict())
    assert len(on.extra_vectors(batch)) == len(off.extra_vectors(batch)) + 3
    vectors, _ = on.feature_vectors(batch)
    assert vectors.shape[1] == off.feature_vectors(batch)[0].shape[1] + 3
    on.eval()
    before = on.predict(batch)
    with torch.no_grad():
        on.semantic_ids.tables[0].weight.mul_(-1.0)
    assert not torch.allclose(before, on.predict(batch))
    assert torch.isfinite(torch.stack(list(on.calculate_loss(batch)))).all()


def test_semantic_ids_without_item_text_is_a_one_line_error(tiny_data_path):
    from recbole_dlrrec.data.text_vectors import TextVectorsMissingError

    with pytest.raises(TextVectorsMissingError, match="semantic_ids=2 needs item text vectors"):
        _build(tiny_data_path, "DLRREC", semantic_ids=2, item_text_vec=None, reduction="none")


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_a_text_model_is_searched_on_its_recbole_models_space(model):
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, plugin_config_files
    from recbole_dlrrec.experiments.space_audit import TUNED_MODELS
    from recbole_dlrrec.experiments.tune_request import TuneRequest, new_request
    from recbole_dlrrec.experiments.tune_space import model_space

    base = model.removesuffix("Text")
    text_space = model_space(model, PROPERTIES_DIR, plugin_config_files(model))
    base_space = model_space(base, PROPERTIES_DIR, plugin_config_files(base))
    assert text_space.path == base_space.path and text_space.left_out == base_space.left_out
    assert {k: (p.dist, p.args) for k, p in text_space.params.items()} == {
        k: (p.dist, p.args) for k, p in base_space.params.items()
    }
    assert model in TUNED_MODELS
    request = new_request(TuneRequest(model=model, dataset="tiny", num_samples=1))
    assert request.space_file == base_space.path


def test_frozen_pca_values_have_recboles_float_field_spread_over_the_fit_rows():
    """Each text field's spread over the train ids is that of a float field RecBole min-max scales
    to [0, 1] (1/sqrt(12)); ids without a vector stay at 0, the train mean."""
    from recbole_dlrrec.models.text_fields import FIELD_STD, frozen_pca_values

    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(40, 12, generator=generator) * torch.linspace(3.0, 0.1, 12)
    has_vector = torch.ones(40, dtype=torch.bool)
    has_vector[5] = False
    fit_rows = torch.arange(10, 40)
    values = frozen_pca_values(vectors, has_vector, fit_rows, 4)
    assert torch.allclose(values[fit_rows].std(0), torch.full((4,), FIELD_STD), atol=1e-5)
    assert torch.allclose(values[fit_rows].mean(0), torch.zeros(4), atol=1e-5)
    assert torch.equal(values[5], torch.zeros(4))
