"""NAME.userhist.npz: per train row, the user text of the user's strictly earlier train reviews.

The file is purely additive (every other output keeps its bytes), holds only the past of each
train row (a review at the same time is not the past), lists no valid/test row, and is built
with the same encoder as the other texts.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from recbole_dlrrec.data import google_local as gl
from recbole_dlrrec.data import text_build
from recbole_dlrrec.data.convert import split as splitting
from recbole_dlrrec.data.encoder import HashEncoder

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
REVIEWS = os.path.join(FIXTURES, "reviews_small.json")
META = os.path.join(FIXTURES, "meta_small.json")

# sha256 of every output but REPORT.* (which holds the run time), written by the converter
# before userhist.npz existed (commit eb7b61f), on the hand-made fixture with the HashEncoder.
DIGESTS_BEFORE_USERHIST = {
    "time": {
        "tiny.item": "8478ac5cab2f5e7e35cae70026fc8bee8a6ff7e8dcd0ba6cca2f43271b8a97a7",
        "tiny.itemvec.npz": "f6234e2767c5bd13f213177900938c78de05280d0161f15e80754ef17c02223a",
        "tiny.test.inter": "b376f2c3c87b5b1c2186ab8ee3833d244a78cf6d932908f9cc60e1bf96a45bcc",
        "tiny.train.inter": "1e3cc9bc6458dc8933b60ff1a3af1ebdf3f87ef9a749f100ef8ddd34dbd2dcb9",
        "tiny.user": "5b03b24f7d360663b9984f8925ebd46ffb4dcd9904a4024e1592b347097710e0",
        "tiny.uservec.npz": "f4a2f37d50d4bd09dfb8f7a7261148ec047452ebab85c264dfb70aa83029472c",
        "tiny.valid.inter": "9a6cb415a9d848161cd53bc021c8566b6e34b950335f2c2d193a9e845bc37e52",
        "tiny.yaml": "04cb9c4c2f9eb84db443d81a6a73bf8d654664edfaca8a50ebeb5fd29aad0915",
    },
    "random": {
        "tiny.item": "8d7e6747b25053d7d8e56bd9440e79ecf9b6b2ae06bc4ec9d07ba390954b30ac",
        "tiny.itemvec.npz": "f6234e2767c5bd13f213177900938c78de05280d0161f15e80754ef17c02223a",
        "tiny.test.inter": "9a6cb415a9d848161cd53bc021c8566b6e34b950335f2c2d193a9e845bc37e52",
        "tiny.train.inter": "af407910640165a7808d57b0d9ca31223f674bdf2254c30021014ab461342844",
        "tiny.user": "4363ad05919d7587e97b2d3c5a8c9e945b1c7dc77a786c1ef08552c787e9eb36",
        "tiny.uservec.npz": "630d12e1b5281119e3f188db79872a038b281193138b95434d39a890d5359e0b",
        "tiny.valid.inter": "e8f70d1bbe8c30c3107de4c5ee0916d7c93a8911a55069c40b94f3b136713415",
        "tiny.yaml": "04cb9c4c2f9eb84db443d81a6a73bf8d654664edfaca8a50ebeb5fd29aad0915",
    },
}

T0 = 1_600_000_000_000
# User "h": train reviews at distinct times plus a tie (b2 and b3 at T0 + 3000), one without text
# (b4), then one valid and one test review. Ten other users fill the train period, two the rest.
H_TRAIN = [
    ("b0", 1000, "first visit"),
    ("b1", 2000, "second visit"),
    ("b2", 3000, "tie one"),
    ("b3", 3000, "tie two"),
    ("b4", 4000, None),
    ("b5", 5000, "fifth"),
]
EXPECTED_H_HISTORY = {
    "b0": None,
    "b1": "first visit",
    "b2": "second visit\nfirst visit",  # the tied review b3 is not earlier
    "b3": "second visit\nfirst visit",
    "b4": "tie one\ntie two\nsecond visit\nfirst visit",  # a tie is ordered by item, as in user texts
    "b5": "tie one\ntie two\nsecond visit\nfirst visit",  # b4 has no text
}
EXPECTED_H_PROFILE = "fifth\ntie one\ntie two\nsecond visit\nfirst visit"


def _review(user, item, t, text, rating=5):
    return json.dumps({"user_id": user, "gmap_id": item, "time": T0 + t, "rating": rating, "text": text})


def history_fixture(tmp_path, h_train=H_TRAIN):
    lines = [_review("h", item, t, text) for item, t, text in h_train]
    lines += [_review(f"o{k}", f"b{k % 6}", 1500 + 500 * k, f"other {k}", rating=1 + k % 5) for k in range(10)]
    lines += [
        _review("h", "b6", 100_000, "valid text of h"),
        _review("o10", "b0", 100_500, "valid other"),
        _review("h", "b7", 200_000, "test text of h"),
        _review("o11", "b1", 200_500, "test other"),
    ]
    reviews = tmp_path / "reviews.json"
    reviews.write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = tmp_path / "meta.json"
    meta.write_text(
        "\n".join(json.dumps({"gmap_id": f"b{i}", "name": f"Place {i}"}) for i in range(8)) + "\n", encoding="utf-8"
    )
    return str(reviews), str(meta)


def convert(tmp_path, reviews, meta, name="hist", **kwargs):
    kwargs.setdefault("encoder", HashEncoder())
    kwargs.setdefault("category_filter", None)
    out = str(tmp_path / "out")
    report = gl.convert(reviews, meta, name, out, show_progress=False, **kwargs)
    return report, os.path.join(out, name)


def load_history(folder, name="hist"):
    with np.load(os.path.join(folder, f"{name}.userhist.npz"), allow_pickle=False) as z:
        return {key: z[key] for key in z.files}


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["time", "random"])
def test_userhist_is_purely_additive(tmp_path, split):
    out = str(tmp_path / "out")
    gl.convert(REVIEWS, META, "tiny", out, encoder=HashEncoder(), show_progress=False, split=split)
    folder = os.path.join(out, "tiny")
    names = sorted(n for n in os.listdir(folder) if not n.startswith("REPORT"))
    assert names == sorted([*DIGESTS_BEFORE_USERHIST[split], "tiny.userhist.npz"])
    for name, digest in DIGESTS_BEFORE_USERHIST[split].items():
        with open(os.path.join(folder, name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest, name


def test_user_history_false_writes_no_history_file_and_the_same_other_files(tmp_path):
    """user_history=False (the bundled generated dataset's build): no file, no history texts
    encoded, every other file as with it; the report says so."""
    out = str(tmp_path / "out")
    report = gl.convert(REVIEWS, META, "tiny", out, encoder=HashEncoder(), show_progress=False, user_history=False)
    folder = os.path.join(out, "tiny")
    names = sorted(n for n in os.listdir(folder) if not n.startswith("REPORT"))
    assert names == sorted(DIGESTS_BEFORE_USERHIST["time"])
    for name, digest in DIGESTS_BEFORE_USERHIST["time"].items():
        with open(os.path.join(folder, name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest, name
    assert report["user_history"] is None
    assert not any("history" in guard for guard in report["leakage_guards"])


def test_each_train_row_gets_only_its_strictly_earlier_reviews(tmp_path):
    encoder = HashEncoder()
    report, folder = convert(tmp_path, *history_fixture(tmp_path), encoder=encoder)
    z = load_history(folder)
    assert z["vectors"].dtype == np.float32 and z["row"].dtype == np.int64
    train = [line.split("\t")[:2] for line in open(os.path.join(folder, "hist.train.inter")).read().splitlines()[1:]]
    # One entry per train row, in the train file's order; no valid/test row (h's b6 and b7).
    assert [[u, i] for u, i in zip(z["users"].tolist(), z["items"].tolist())] == train
    assert ("h", "b6") not in set(zip(z["users"].tolist(), z["items"].tolist()))
    texts = encoder.calls[2]  # the third encode: the history texts (items, users, histories)
    got = {}
    for user, item, row in zip(z["users"].tolist(), z["items"].tolist(), z["row"].tolist()):
        if user == "h":
            got[item] = None if row < 0 else texts[row]
        else:
            assert row == -1, user  # one train review each: no past
    assert got == EXPECTED_H_HISTORY
    np.testing.assert_array_equal(z["vectors"], HashEncoder().encode(texts))
    assert len(texts) == len(set(texts)) == 3  # shared texts (the tie; b5 after the empty b4) encoded once
    assert encoder.calls[1][0] == EXPECTED_H_PROFILE  # the full profile: "h" sorts before "o0"
    assert not any("valid" in t or "test" in t for call in encoder.calls for t in call)
    h = report["user_history"]
    assert h == {
        "file": "hist.userhist.npz",
        "train_rows_with_history": 5,
        "train_rows_without_history": 11,
        "texts": 3,
        "cached": 0,
        "encoded": 3,
    }
    md = open(os.path.join(folder, "REPORT.md"), encoding="utf-8").read()
    assert "5 train rows with earlier text, 11 without; 3 distinct texts" in md


def test_history_text_is_cut_exactly_like_a_user_text(tmp_path):
    """With a small cap, each history text equals text_build.user_text over the full earlier
    texts newest first: texts are fetched cleaned and cut at cap + 2, which changes nothing,
    also when the cut falls just before a space."""
    cap = 20
    h_train = [
        ("b0", 1000, "one two   three four five six seven"),  # char 21 of the clean text is a space
        ("b1", 2000, "short"),
        ("b2", 3000, "a" * 30),
        ("b3", 4000, "end of story here"),
        ("b4", 5000, "x"),
    ]
    encoder = HashEncoder()
    _, folder = convert(tmp_path, *history_fixture(tmp_path, h_train), encoder=encoder, user_text_max_chars=cap)
    z = load_history(folder)
    texts = encoder.calls[2]
    earlier = []
    for user, item, row in zip(z["users"].tolist(), z["items"].tolist(), z["row"].tolist()):
        if user != "h":
            continue
        t_row = dict((i, t) for i, t, _ in h_train)[item]
        past = [text for i, t, text in sorted(h_train, key=lambda x: (-x[1], x[0])) if t < t_row]
        expected = text_build.user_text(past, cap) if past else ""
        assert (texts[row] if row >= 0 else "") == expected, item
        earlier.append(expected)
    assert earlier[1] == "one two three four"  # the newest earlier review alone is too long: cut at a space
    assert earlier[2] == "short"  # "short" fits; the older long one does not and is not cut
    assert len(earlier[3]) <= cap and earlier[3] == text_build.user_text(["a" * 30, "short"], cap)


def test_duplicate_pairs_fail_loudly():
    rows = [gl.Review(T0, "u", "b", 5.0, None, 0, None, 1), gl.Review(T0 + 1, "v", "b", 5.0, None, 0, None, 2)]
    parts = {"train": rows, "valid": [gl.Review(T0 + 2, "u", "b", 4.0, None, 0, None, 3)], "test": []}
    with pytest.raises(gl.ConversionError, match=r"user 'u' and business 'b' occur in more than one row"):
        splitting.check_unique_pairs(parts)
    splitting.check_unique_pairs({"train": rows, "valid": [], "test": []})


@pytest.mark.parametrize("k_core", [None, 3])
def test_generated_data_history_matches_a_reference_built_from_the_raw_lines(tmp_path, k_core):
    """Every train row of generated (dirty) data, with and without --k_core: its history text is
    user_text over the raw texts of its user's train rows strictly earlier, newest first."""
    import gzip
    from collections import defaultdict

    from recbole_dlrrec.data import sample

    reviews, meta = sample.generate(str(tmp_path / "raw"), seed=5, n_restaurants=40, n_users=60, n_reviews=900)
    encoder = HashEncoder()
    report, folder = convert(
        tmp_path, reviews, meta, name="gen", encoder=encoder, k_core=k_core, category_filter="restaurant"
    )
    text_of = {}
    with gzip.open(reviews, "rt", encoding="utf-8") as handle:
        for line in handle:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                text_of.setdefault((str(obj.get("user_id")), str(obj.get("gmap_id")), obj.get("time")), obj.get("text"))
    train = [line.split("\t") for line in open(os.path.join(folder, "gen.train.inter")).read().splitlines()[1:]]
    by_user = defaultdict(list)
    for user, item, _, _, time in train:
        by_user[user].append((int(time), item, text_of[(user, item, int(time))]))
    z = load_history(folder, "gen")
    texts = encoder.calls[2]
    assert [[u, i] for u, i in zip(z["users"].tolist(), z["items"].tolist())] == [r[:2] for r in train]
    with_history = 0
    for (user, item, _, _, time), row in zip(train, z["row"].tolist()):
        past = [t for when, it, t in sorted(by_user[user], key=lambda r: (-r[0], r[1])) if when < int(time)]
        expected = text_build.user_text([t for t in past if isinstance(t, str)], 600)
        assert (texts[row] if row >= 0 else "") == expected, (user, item)
        with_history += bool(expected)
    assert with_history == report["user_history"]["train_rows_with_history"] > 0
    assert len(z["users"]) == report["splits"]["train"]["interactions"]


def test_the_cli_flag_turns_the_history_file_off():
    from recbole_dlrrec.cli import convert as cli_convert

    parser = cli_convert.build_arg_parser()
    base = ["--reviews", "r.json", "--meta", "m.json", "--name", "x"]
    assert cli_convert.options_from_args(parser.parse_args(base)).user_history is True
    assert cli_convert.options_from_args(parser.parse_args(base + ["--no_user_history"])).user_history is False
