"""``user_vector: mean``: each train review encoded once; user, per-row history and item review
vectors are (normalised) means of review vectors, leak-free by construction.

The leak tests edit one review's text and compare every row's vector byte for byte: a later
review moves no earlier row, a valid/test review moves nothing.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from recbole_dlrrec.data.convert import review_means
from recbole_dlrrec.data.convert.options import ConvertOptions
from recbole_dlrrec.data.convert.records import ConversionError
from recbole_dlrrec.data.encoder import HashEncoder
from tests.data.test_google_local_history import H_TRAIN, convert, history_fixture, load_history

SIDE_FILES = ("uservec", "userhist", "itemrev", "itemrevhist", "itemvec")


def _unit_mean(vectors) -> np.ndarray:
    mean = np.mean(np.asarray(vectors, dtype=np.float64), axis=0)
    return mean / np.linalg.norm(mean)


def _build(tmp_path, h_train=H_TRAIN, edit=None, **kwargs):
    """A mean build of the history fixture (``edit``: old text -> new text in the reviews file)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    reviews, meta = history_fixture(tmp_path, h_train)
    if edit:
        text = open(reviews, encoding="utf-8").read()
        for old, new in edit.items():
            assert json.dumps(old) in text, old
            text = text.replace(json.dumps(old), json.dumps(new))
        open(reviews, "w", encoding="utf-8").write(text)
    encoder = HashEncoder()
    report, folder = convert(tmp_path, reviews, meta, encoder=encoder, user_vector="mean", **kwargs)
    return report, folder, encoder


def _per_row(folder, suffix) -> dict:
    """(user, item) -> the bytes of its per-row vector (None: no earlier review)."""
    with np.load(os.path.join(folder, f"hist.{suffix}.npz"), allow_pickle=False) as z:
        return {
            (u, i): None if r < 0 else z["vectors"][r].tobytes()
            for u, i, r in zip(z["users"].tolist(), z["items"].tolist(), z["row"].tolist())
        }


def _per_id(folder, suffix) -> dict:
    with np.load(os.path.join(folder, f"hist.{suffix}.npz"), allow_pickle=False) as z:
        return {i: v.tobytes() for i, v in zip(z["ids"].tolist(), z["vectors"])}


# ---------------------------------------------------------------------------------------------
def test_prefix_means_equal_brute_force_means_with_ties():
    rng = np.random.default_rng(3)
    n, dim = 60, 8
    groups = [f"g{k}" for k in rng.integers(0, 5, n)]
    times = rng.integers(0, 12, n).astype(np.int64)  # many ties
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    query_groups = [f"g{k}" for k in rng.integers(0, 6, 40)]  # g5 has no review
    query_times = rng.integers(0, 14, 40).astype(np.int64)
    full_ids, full, row, means = review_means.compose(groups, times, vectors, query_groups, query_times)
    assert full_ids == sorted(set(groups))
    for g, vec in zip(full_ids, full):
        mine = [vectors[k] for k in range(n) if groups[k] == g]
        np.testing.assert_allclose(vec, _unit_mean(mine), rtol=0, atol=1e-6)
    assert means.dtype == np.float32 and row.dtype == np.int64
    for g, t, r in zip(query_groups, query_times, row):
        earlier = [vectors[k] for k in range(n) if groups[k] == g and times[k] < t]  # a tie is not earlier
        if not earlier:
            assert r == -1
        else:
            np.testing.assert_allclose(means[r], _unit_mean(earlier), rtol=0, atol=1e-6)
    assert (row == -1).any() and (row >= 0).any()


def test_a_groups_vectors_depend_on_its_own_reviews_only():
    """Each group is summed alone: huge vectors of another group (sorted before it) change no bit
    of its vectors, as one running sum over all groups would."""
    rng = np.random.default_rng(4)
    mine = rng.standard_normal((5, 4)).astype(np.float32)
    other = (rng.standard_normal((3, 4)) * 1e12).astype(np.float32)
    times = np.array([1, 2, 2, 3, 4], dtype=np.int64)
    queries = np.array([1, 2, 3, 4, 5], dtype=np.int64)
    alone = review_means.compose(["b"] * 5, times, mine, ["b"] * 5, queries)
    mixed = review_means.compose(
        ["a"] * 3 + ["b"] * 5, np.concatenate([[0, 1, 2], times]), np.vstack([other, mine]), ["b"] * 5, queries
    )
    assert alone[2].tolist() == mixed[2].tolist()
    assert alone[3].tobytes() == mixed[3].tobytes() and alone[1].tobytes() == mixed[1][1:].tobytes()


def test_summing_in_blocks_changes_no_bit(monkeypatch):
    rng = np.random.default_rng(5)
    groups = [f"g{k}" for k in rng.integers(0, 9, 80)]
    times = rng.integers(0, 20, 80).astype(np.int64)
    vectors = rng.standard_normal((80, 6)).astype(np.float32)
    queries = ([f"g{k}" for k in rng.integers(0, 9, 50)], rng.integers(0, 22, 50).astype(np.int64))
    whole = review_means.compose(groups, times, vectors, *queries)
    monkeypatch.setattr(review_means, "CHUNK_ROWS", 3)  # many blocks of whole groups
    blocks = review_means.compose(groups, times, vectors, *queries)
    assert whole[0] == blocks[0] and whole[2].tolist() == blocks[2].tolist()
    assert whole[1].tobytes() == blocks[1].tobytes() and whole[3].tobytes() == blocks[3].tobytes()


def test_mean_build_encodes_each_train_review_once_and_composes_the_history(tmp_path):
    report, folder, encoder = _build(tmp_path)
    assert len(encoder.calls) == 2  # item texts, then the review texts: no concatenated text
    reviews = encoder.calls[1]
    assert len(reviews) == report["review_vectors"]["texts"] == 15  # train rows with text (h's b4 has none)
    assert not any("\n" in t or "valid" in t or "test" in t for t in reviews)
    vec = dict(zip(reviews, HashEncoder().encode(reviews)))
    expected = {  # h's rows: the mean of the strictly earlier texts (the tie b2/b3 sees neither)
        "b0": None,
        "b1": ["first visit"],
        "b2": ["first visit", "second visit"],
        "b3": ["first visit", "second visit"],
        "b4": ["first visit", "second visit", "tie one", "tie two"],
        "b5": ["first visit", "second visit", "tie one", "tie two"],
    }
    z = load_history(folder)
    for user, item, r in zip(z["users"].tolist(), z["items"].tolist(), z["row"].tolist()):
        if user != "h":
            assert r == -1  # one train review each
        elif expected[item] is None:
            assert r == -1
        else:
            np.testing.assert_allclose(z["vectors"][r], _unit_mean([vec[t] for t in expected[item]]), atol=1e-6)
    users = _per_id(folder, "uservec")
    h_texts = [t for _, _, t in H_TRAIN if t]
    np.testing.assert_allclose(
        np.frombuffer(users["h"], dtype=np.float32), _unit_mean([vec[t] for t in h_texts]), atol=1e-6
    )
    assert report["params"]["user_vector"] == "mean"
    assert report["user_history"]["train_rows_with_history"] == 5 and report["user_history"]["vectors"] == 3


def test_editing_a_later_review_moves_no_earlier_user_or_item_vector(tmp_path):
    """h's "tie two" (item b3, time 3000) edited: h's rows up to the tie keep their bytes, the
    later ones move; item b3's row of o3 (also at 3000: a tie) keeps its bytes, o9's (6000) moves."""
    _, before, _ = _build(tmp_path / "a")
    _, after, _ = _build(tmp_path / "b", edit={"tie two": "an edited tie"})
    user_a, user_b = _per_row(before, "userhist"), _per_row(after, "userhist")
    moved = {key for key in user_a if user_a[key] != user_b[key]}
    assert moved == {("h", "b4"), ("h", "b5")}
    item_a, item_b = _per_row(before, "itemrevhist"), _per_row(after, "itemrevhist")
    assert {key for key in item_a if item_a[key] != item_b[key]} == {("o9", "b3")}
    assert item_a[("o3", "b3")] is None  # o3's review ties with h's: no earlier review of b3
    # The full (train-period) vectors that valid/test rows read hold the edited review.
    assert _per_id(before, "uservec")["h"] != _per_id(after, "uservec")["h"]
    assert _per_id(before, "itemrev")["b3"] != _per_id(after, "itemrev")["b3"]


def test_editing_valid_and_test_reviews_moves_no_vector(tmp_path):
    _, before, _ = _build(tmp_path / "a")
    _, after, _ = _build(
        tmp_path / "b", edit={"valid text of h": "changed", "test text of h": "changed too", "test other": "x"}
    )
    for suffix in SIDE_FILES:
        with (
            open(os.path.join(before, f"hist.{suffix}.npz"), "rb") as a,
            open(os.path.join(after, f"hist.{suffix}.npz"), "rb") as b,
        ):
            assert hashlib.sha256(a.read()).digest() == hashlib.sha256(b.read()).digest(), suffix


def test_item_review_vectors_are_means_of_the_items_train_reviews(tmp_path):
    report, folder, encoder = _build(tmp_path)
    reviews = encoder.calls[1]
    vec = dict(zip(reviews, HashEncoder().encode(reviews)))
    train = [line.split("\t") for line in open(os.path.join(folder, "hist.train.inter")).read().splitlines()[1:]]
    text_of = {("h", item): text for item, _, text in H_TRAIN}
    text_of.update({(f"o{k}", f"b{k % 6}"): f"other {k}" for k in range(10)})
    items = _per_id(folder, "itemrev")
    for item, got in items.items():
        texts = [text_of[(u, i)] for u, i, *_ in train if i == item and text_of[(u, i)]]
        np.testing.assert_allclose(np.frombuffer(got, dtype=np.float32), _unit_mean([vec[t] for t in texts]), atol=1e-6)
    assert sorted(items) == [f"b{k}" for k in range(6)]  # b6/b7 only in valid/test: no train review
    rows = _per_row(folder, "itemrevhist")
    assert list(rows) == [(u, i) for u, i, *_ in train]
    assert report["review_vectors"]["items_with_reviews"] == 6
    assert report["review_vectors"]["train_rows_with_earlier_item_review"] == sum(v is not None for v in rows.values())


def test_mean_without_user_history_writes_no_userhist_but_the_item_review_files(tmp_path):
    report, folder, _ = _build(tmp_path, user_history=False)
    names = set(os.listdir(folder))
    assert "hist.userhist.npz" not in names and {"hist.itemrev.npz", "hist.itemrevhist.npz"} <= names
    assert report["user_history"] is None


def test_concat_is_the_default_and_writes_no_item_review_files(tmp_path):
    reviews, meta = history_fixture(tmp_path)
    report, folder = convert(tmp_path, reviews, meta)
    assert ConvertOptions().user_vector == "concat" and report["params"]["user_vector"] == "concat"
    assert not any(n.startswith("hist.itemrev") for n in os.listdir(folder))
    assert "review_vectors" not in report


def test_user_vector_option_is_checked_and_on_the_command_line():
    with pytest.raises(ConversionError, match="user_vector must be one of concat, mean, got 'sum'"):
        ConvertOptions(user_vector="sum").validate()
    from recbole_dlrrec.cli import convert as cli_convert

    parser = cli_convert.build_arg_parser()
    base = ["--reviews", "r.json", "--meta", "m.json", "--name", "x"]
    assert cli_convert.options_from_args(parser.parse_args(base)).user_vector == "concat"
    assert cli_convert.options_from_args(parser.parse_args(base + ["--user_vector", "mean"])).user_vector == "mean"


def _stub_dataset(folder):
    """RecBole's token <-> id maps of the build's users and items (id 0: padding)."""
    from types import SimpleNamespace

    tokens = {"user_id": ["[PAD]"], "item_id": ["[PAD]"]}
    for split in ("train", "valid", "test"):
        for line in open(os.path.join(folder, f"hist.{split}.inter")).read().splitlines()[1:]:
            user, item = line.split("\t")[:2]
            for field, token in (("user_id", user), ("item_id", item)):
                if token not in tokens[field]:
                    tokens[field].append(token)
    ids = {field: {t: k for k, t in enumerate(ts)} for field, ts in tokens.items()}
    config = {"side_data_path": folder, "data_path": folder, "dataset": "hist", "USER_ID_FIELD": "user_id"}
    return SimpleNamespace(field2id_token=tokens, field2token_id=ids), {**config, "ITEM_ID_FIELD": "item_id"}


def test_load_item_reviews_aligns_both_files_with_recbole_ids(tmp_path):
    from recbole_dlrrec.data.text_vectors import TextVectorsMissingError, load_item_reviews

    _, folder, _ = _build(tmp_path)
    dataset, config = _stub_dataset(folder)
    loaded = load_item_reviews(config, dataset, 16)
    full = _per_id(folder, "itemrev")
    item_tokens = dataset.field2id_token["item_id"]
    for k, token in enumerate(item_tokens[1:], start=1):
        assert bool(loaded.table.has_vector[k]) == (token in full), token
        if token in full:
            assert loaded.table.vectors[k].numpy().tobytes() == full[token]
    per_row = _per_row(folder, "itemrevhist")
    assert len(loaded.rows.keys) == len(per_row)
    num_items = len(item_tokens)
    for (user, item), want in per_row.items():
        key = dataset.field2token_id["user_id"][user] * num_items + dataset.field2token_id["item_id"][item]
        r = int(loaded.rows.rows[int(np.searchsorted(loaded.rows.keys.numpy(), key))])
        assert (None if r < 0 else loaded.rows.vectors[r].numpy().tobytes()) == want
    with pytest.raises(
        TextVectorsMissingError, match=r"hist\.itemrev\.npz: vectors are 16-d, the item text vectors 8-d"
    ):
        load_item_reviews(config, dataset, 8)
    os.remove(os.path.join(folder, "hist.itemrevhist.npz"))
    with pytest.raises(
        TextVectorsMissingError, match=r"hist\.itemrevhist\.npz \(written by the converter with --user_vector mean\)"
    ):
        load_item_reviews(config, dataset, 16)
