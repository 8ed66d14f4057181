"""Tests of the Google Local converter (recbole_dlrrec.data.google_local)."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest
import yaml

from recbole_dlrrec.cli import convert as cli_convert
from recbole_dlrrec.data import google_local as gl
from recbole_dlrrec.data.convert import features as convert_features
from recbole_dlrrec.data.convert import write as convert_write
from recbole_dlrrec.data.encoder import HashEncoder
from recbole_dlrrec.errors import InputError

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
REVIEWS = os.path.join(DATA, "reviews_small.json")
META = os.path.join(DATA, "meta_small.json")

HEADER = "user_id:token\titem_id:token\trating:float\tlabel:float\ttimestamp:float\n"
EXPECTED_TRAIN = HEADER + (
    "u1\t0x11:0xa1\t5\t1\t1600000001000\n"
    "u2\t0x11:0xa1\t4\t1\t1600000002000\n"
    "u3\t0x11:0xa2\t2\t0\t1600000003000\n"
    "u1\t0x11:0xa2\t5\t1\t1600000004000\n"
    "u4\t0x11:0xa3\t3\t0\t1600000005000\n"
    "u2\t0x11:0xa3\t5\t1\t1600000006000\n"
    "u5\t0x11:0xa1\t1\t0\t1600000007000\n"
    "u3\t0x11:0xa3\t4\t1\t1600000008000\n"
    "u4\t0x11:0xa1\t5\t1\t1600000009000\n"
    "u1\t0x11:0xa3\t4\t1\t1600000010000\n"
)
EXPECTED_VALID = HEADER + "u5\t0x11:0xa2\t5\t1\t1600000011000\n"
EXPECTED_TEST = HEADER + "u6\t0x11:0xa2\t1\t0\t1600000012000\n"
EXPECTED_ITEM = (
    "item_id:token\tprice:token\tcategories:token_seq\tlatitude:float\tlongitude:float\tpic_count:float\n"
    "0x11:0xa1\t$$\tItalian_restaurant Pizza_restaurant\t40.1\t-74.2\t3\n"
    "0x11:0xa2\t$$$\tSushi_restaurant Japanese_restaurant\t40.2\t-74.1\t1\n"
    "0x11:0xa3\tunknown\tMexican_Restaurant\t40.15\t-74.25\t0\n"
)
EXPECTED_USER = "user_id:token\tn_train_reviews:float\nu1\t3\nu2\t2\nu3\t2\nu4\t2\nu5\t1\nu6\t0\n"
EXPECTED_ITEM_TEXTS = [
    "Luigi's Trattoria. Categories: Italian restaurant, Pizza restaurant. Price: $$. "
    "Cozy family trattoria with handmade pasta. Service options: Dine-in, Takeout. Atmosphere: Cozy.",
    "Sakura Sushi. Categories: Sushi restaurant, Japanese restaurant. Price: $$$. Atmosphere: Quiet, Trendy.",
    "Taco Loco. Categories: Mexican Restaurant. Street tacos and salsa bar.",
]
EXPECTED_USER_TEXTS = [
    "Good\nBest sushi in town 🍣\nGreat pasta!",
    "¡Muy buenos tacos!\nNice place",
    "Solid tacos\nFish was not fresh",
    "Lovely",
    "Cold food, rude staff.",
]
EXPECTED_HISTORY_TEXTS = ["Great pasta!", "Nice place", "Fish was not fresh", "Best sushi in town 🍣\nGreat pasta!"]


def run(tmp_path, reviews=REVIEWS, meta=META, name="tiny", **kwargs):
    kwargs.setdefault("encoder", HashEncoder())
    kwargs.setdefault("show_progress", False)
    out = str(tmp_path / "out")
    report = gl.convert(reviews, meta, name, out, **kwargs)
    return report, os.path.join(out, name)


def read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        return handle.read()


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return str(path)


def fixture_lines(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


# ---------------------------------------------------------------------------------------------
def test_hand_made_files_give_exactly_the_expected_rows(tmp_path):
    enc = HashEncoder()
    _, folder = run(tmp_path, encoder=enc)
    assert read(folder, "tiny.train.inter") == EXPECTED_TRAIN
    assert read(folder, "tiny.valid.inter") == EXPECTED_VALID
    assert read(folder, "tiny.test.inter") == EXPECTED_TEST
    assert read(folder, "tiny.item") == EXPECTED_ITEM
    assert read(folder, "tiny.user") == EXPECTED_USER
    # Third: the history texts of the train rows whose user has earlier train text (userhist.npz).
    assert enc.calls == [EXPECTED_ITEM_TEXTS, EXPECTED_USER_TEXTS, EXPECTED_HISTORY_TEXTS]
    with np.load(os.path.join(folder, "tiny.itemvec.npz"), allow_pickle=False) as z:
        assert z["ids"].tolist() == ["0x11:0xa1", "0x11:0xa2", "0x11:0xa3"]
        assert z["ids"].dtype.kind == "U" and z["vectors"].dtype == np.float32
        np.testing.assert_array_equal(z["vectors"], HashEncoder().encode(EXPECTED_ITEM_TEXTS))
    with np.load(os.path.join(folder, "tiny.uservec.npz"), allow_pickle=False) as z:
        assert z["ids"].tolist() == ["u1", "u2", "u3", "u4", "u5"]  # u6 has no train review
        np.testing.assert_array_equal(z["vectors"], HashEncoder().encode(EXPECTED_USER_TEXTS))
    assert sorted(os.listdir(os.path.dirname(folder))) == ["tiny"]  # no temp folder left behind


def test_report_counts_add_up(tmp_path):
    report, folder = run(tmp_path)
    meta, reviews = report["meta"], report["reviews"]
    assert meta["lines_read"] == 8 and meta["kept"] == 4
    assert meta["dropped"] == {"category_filter": 1, "duplicate": 1, "malformed_json": 1, "missing_field:gmap_id": 1}
    assert meta["malformed_lines"] == [6]
    assert reviews["lines_read"] == 20 and reviews["kept"] == 12
    assert reviews["dropped"] == {
        "business_not_matching_category": 1,
        "duplicate": 1,
        "invalid_value:rating": 1,
        "malformed_json": 1,
        "missing_field:user_id": 1,
        "null_rating": 1,
        "repeat_user_business": 1,
        "unknown_business": 1,
    }
    assert reviews["malformed_lines"] == [17]
    for part in (meta, reviews):
        assert part["lines_read"] == part["kept"] + sum(part["dropped"].values())
        assert part["dropped_total"] == sum(part["dropped"].values())
    splits = report["splits"]
    assert [splits[s]["interactions"] for s in gl.SPLITS] == [10, 1, 1]
    assert sum(splits[s]["interactions"] for s in gl.SPLITS) == reviews["kept"]
    assert (splits["train"]["positives"], splits["train"]["negatives"]) == (7, 3)
    assert splits["train"]["rows_with_text"] == 9  # u4's null text
    assert splits["test"]["users_not_in_train"] == 1  # u6
    assert report["totals"]["positive_to_negative"] == pytest.approx(8 / 4)
    assert report["businesses_without_kept_reviews"] == 1  # Golden Dragon
    assert report["vectors"] == {"items": 3, "users": 5, "dim": 16, "encoder": "hash-16", "cached": 0, "encoded": 8}
    assert report["seconds"] >= 0
    with open(os.path.join(folder, "REPORT.json"), encoding="utf-8") as handle:
        assert json.load(handle) == json.loads(json.dumps(report))
    md = read(folder, "REPORT.md")
    assert "20 lines read, 12 kept, 8 dropped" in md and "| repeat_user_business | 1 |" in md


def test_text_of_valid_and_test_reviews_cannot_influence_any_output(tmp_path):
    lines = fixture_lines(REVIEWS)
    _, clean = run(tmp_path / "a", reviews=write_lines(tmp_path / "r_a.json", lines))
    changed = list(lines)
    for n in (11, 12):  # 1-based: the valid row (u5) and the test row (u6)
        obj = json.loads(changed[n - 1])
        obj["text"] = "COMPLETELY DIFFERENT words that would move any vector " * 5
        obj["pics"] = [{"url": ["https://pics.example.com/x.jpg"]}] * 7
        changed[n - 1] = json.dumps(obj)
    _, dirty = run(tmp_path / "b", reviews=write_lines(tmp_path / "r_b.json", changed))
    files = sorted(f for f in os.listdir(clean) if not f.startswith("REPORT"))
    assert files == sorted(f for f in os.listdir(dirty) if not f.startswith("REPORT"))
    assert "tiny.uservec.npz" in files and "tiny.item" in files
    for name in files:
        with open(os.path.join(clean, name), "rb") as a, open(os.path.join(dirty, name), "rb") as b:
            assert a.read() == b.read(), f"{name} changed although only valid/test text changed"

    # The same check is sensitive: changing a TRAIN review's text does change the user vectors.
    train_changed = list(lines)
    obj = json.loads(train_changed[0])
    obj["text"] = "Changed train text"
    train_changed[0] = json.dumps(obj)
    _, other = run(tmp_path / "c", reviews=write_lines(tmp_path / "r_c.json", train_changed))
    with (
        open(os.path.join(clean, "tiny.uservec.npz"), "rb") as a,
        open(os.path.join(other, "tiny.uservec.npz"), "rb") as b,
    ):
        assert a.read() != b.read()


def test_features_are_given_the_train_rows_and_nothing_else(tmp_path, monkeypatch):
    """The leakage boundary is a function boundary: train_features receives the train rows only."""
    given = []
    original = convert_features.train_features

    def spy(train, *args, **kwargs):
        given.append(list(train))
        return original(train, *args, **kwargs)

    monkeypatch.setattr(convert_features, "train_features", spy)
    _, folder = run(tmp_path)
    assert len(given) == 1
    rows = [(r.user, r.item, str(r.time)) for r in given[0]]
    train = [tuple(l.split("\t")[i] for i in (0, 1, 4)) for l in read(folder, "tiny.train.inter").splitlines()[1:]]
    assert rows == train
    for split in ("valid", "test"):
        for line in read(folder, f"tiny.{split}.inter").splitlines()[1:]:
            assert tuple(line.split("\t")[i] for i in (0, 1, 4)) not in rows


def test_keyword_options_and_the_options_object_give_the_same_dataset(tmp_path):
    a, _ = run(tmp_path / "a", split="random", seed=3, k_core=None)
    b = gl.convert(
        REVIEWS,
        META,
        "tiny",
        str(tmp_path / "b"),
        gl.ConvertOptions(split="random", seed=3, show_progress=False),
        encoder=HashEncoder(),
    )
    assert a["params"] == b["params"] and a["splits"] == b["splits"]
    with pytest.raises(TypeError):
        run(tmp_path / "c", no_such_option=1)


def test_the_command_line_offers_the_converter_s_options():
    assert "--k_core" in cli_convert.build_arg_parser().format_help()


def test_leaky_meta_only_on_request_and_marked(tmp_path):
    _, folder = run(tmp_path, include_leaky_meta=True)
    item = read(folder, "tiny.item").splitlines()
    assert item[0].endswith("pic_count:float\tavg_rating:float\tnum_of_reviews:float")
    assert item[1].endswith("\t3\t4.5\t120")
    text = read(folder, "tiny.yaml")
    assert "LEAKY" in text
    settings = yaml.safe_load(text)
    assert "avg_rating" in settings["load_col"]["item"]
    _, plain = run(tmp_path / "plain")
    assert "avg_rating" not in read(plain, "tiny.item") and "LEAKY" not in read(plain, "tiny.yaml")


def test_yaml_settings(tmp_path):
    _, folder = run(tmp_path)
    settings = yaml.safe_load(read(folder, "tiny.yaml"))
    assert settings["benchmark_filename"] == ["train", "valid", "test"]
    assert "split" not in settings["eval_args"]
    assert settings["eval_args"] == {"group_by": None, "order": "TO", "mode": "labeled"}
    assert settings["load_col"]["inter"] == ["user_id", "item_id", "label"]
    assert settings["item_text_vec"] == "itemvec" and settings["user_text_vec"] == "uservec"
    assert settings["field_separator"] == "\t" and settings["threshold"] is None
    for line in read(folder, "tiny.yaml").splitlines():
        if line and not line.startswith((" ", "#")):
            assert "# (" in line, f"key without a typed comment: {line}"


def test_recbole_loads_the_converted_dataset(tmp_path):
    _, folder = run(tmp_path)
    counts = gl.check_loads_in_recbole(os.path.dirname(folder), "tiny")
    assert counts["train"] == 10 and counts["valid"] == 1 and counts["test"] == 1
    assert counts["users"] == 7 and counts["items"] == 4  # 6 users / 3 items + padding


def test_gzip_input_gives_identical_output(tmp_path):
    _, plain = run(tmp_path / "plain")
    gz_reviews, gz_meta = tmp_path / "r.json.gz", tmp_path / "m.gz"
    for src, dst in ((REVIEWS, gz_reviews), (META, gz_meta)):
        with open(src, "rb") as s, gzip.open(dst, "wb") as d:
            d.write(s.read())
    _, packed = run(tmp_path / "gz", reviews=str(gz_reviews), meta=str(gz_meta))
    names = sorted(n for n in os.listdir(plain) if not n.startswith("REPORT"))
    assert len(names) == 9
    for name in names:
        with open(os.path.join(plain, name), "rb") as a, open(os.path.join(packed, name), "rb") as b:
            assert a.read() == b.read(), name


def test_random_split_is_seeded(tmp_path):
    def rows(seed, where):
        _, folder = run(tmp_path / where, split="random", seed=seed)
        return [read(folder, f"tiny.{s}.inter") for s in gl.SPLITS]

    first, again, other = rows(1, "a"), rows(1, "b"), rows(2, "c")
    assert first == again
    assert first != other
    assert [len(r.splitlines()) - 1 for r in first] == [10, 1, 1]
    all_rows = sorted(line for part in first for line in part.splitlines()[1:])
    expected = sorted(
        line for part in (EXPECTED_TRAIN, EXPECTED_VALID, EXPECTED_TEST) for line in part.splitlines()[1:]
    )
    assert all_rows == expected


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def good_meta(tmp_path):
    return write_lines(tmp_path / "meta_ok.json", [l for i, l in enumerate(fixture_lines(META), 1) if i not in (6, 7)])


def test_strict_makes_malformed_lines_fatal_with_file_and_line(tmp_path):
    with pytest.raises(gl.ConversionError, match=r"meta_small\.json:6: malformed JSON"):
        run(tmp_path, strict=True)
    with pytest.raises(gl.ConversionError, match=r"reviews_small\.json:17: malformed JSON"):
        run(tmp_path, meta=good_meta(tmp_path), strict=True)


def test_strict_makes_missing_fields_fatal(tmp_path):
    lines = [l for i, l in enumerate(fixture_lines(REVIEWS), 1) if i != 17]
    reviews = write_lines(tmp_path / "r.json", lines)
    with pytest.raises(gl.ConversionError, match=r"r\.json:17: missing field 'user_id'"):
        run(tmp_path, reviews=reviews, meta=good_meta(tmp_path), strict=True)


def test_truncated_gzip_is_one_clear_error(tmp_path):
    packed = gzip.compress(open(REVIEWS, "rb").read())
    bad = tmp_path / "cut.json.gz"
    bad.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(gl.ConversionError, match=r"cut\.json\.gz: truncated or corrupt gzip"):
        run(tmp_path, reviews=str(bad))


@pytest.mark.parametrize(
    "content, message",
    [
        ("user_id,gmap_id,rating\nu1,0x1,5\nu2,0x2,4\n", "no line is a JSON object"),
        (json.dumps([{"user_id": "u1"}, {"user_id": "u2"}]) + "\n", "line 1 starts a JSON array"),
        ('\n[\n  {"user_id": "u1", "gmap_id": "0x11:0xa1"},\n  {"user_id": "u2"}\n]\n', "line 2 starts a JSON array"),
        ("", "the file is empty"),
    ],
    ids=["csv", "json-array-one-line", "json-array-pretty", "empty"],
)
def test_wrong_format_names_the_file(tmp_path, content, message):
    bad = tmp_path / "wrong.txt"
    bad.write_text(content, encoding="utf-8")
    with pytest.raises(gl.ConversionError, match=rf"wrong\.txt: {message}"):
        run(tmp_path, reviews=str(bad))
    with pytest.raises(gl.ConversionError, match=rf"wrong\.txt: {message}"):
        run(tmp_path, meta=str(bad))


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(gl.ConversionError, match=r"nothing_here\.json: cannot open"):
        run(tmp_path, reviews=str(tmp_path / "nothing_here.json"))
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(gl.ConversionError, match="a_folder: cannot open"):
        run(tmp_path, meta=str(folder))


def test_swapped_files_are_recognised(tmp_path):
    with pytest.raises(
        gl.ConversionError, match=r"meta_small\.json: looks like a meta file .*are --reviews and --meta swapped\?"
    ):
        run(tmp_path, reviews=META, meta=META)
    with pytest.raises(
        gl.ConversionError, match=r"reviews_small\.json: looks like a reviews file .*are --reviews and --meta swapped\?"
    ):
        run(tmp_path, reviews=META, meta=REVIEWS)


def test_empty_result_names_the_filter(tmp_path):
    with pytest.raises(gl.ConversionError, match=r"no business left .* category_filter='sushibar-only'"):
        run(tmp_path, category_filter="sushibar-only")
    lines = [json.dumps(dict(json.loads(l), gmap_id="0x99:0x99")) for l in fixture_lines(REVIEWS)[:10]]
    with pytest.raises(gl.ConversionError, match=r"no review left after filtering .*unknown_business': 10"):
        run(tmp_path, reviews=write_lines(tmp_path / "ghosts.json", lines))


def test_too_few_rows_for_three_splits(tmp_path):
    lines = fixture_lines(REVIEWS)[:2]
    with pytest.raises(gl.ConversionError, match="split would be empty: only 2 interactions"):
        run(tmp_path, reviews=write_lines(tmp_path / "two.json", lines))


def test_wrong_typed_fields_are_counted_not_silently_used(tmp_path):
    meta = [json.loads(l) for i, l in enumerate(fixture_lines(META), 1) if i in (1, 2, 3)]
    meta[0]["latitude"] = "north"
    meta[1]["price"] = "cheap"
    meta[2]["category"] = "Mexican restaurant"  # a string, not a list
    reviews = [json.loads(l) for l in fixture_lines(REVIEWS)[:12]]
    reviews[0]["pics"] = "two pictures"
    reviews[1]["text"] = 42
    report, folder = run(
        tmp_path, reviews=write_lines(tmp_path / "r.json", reviews), meta=write_lines(tmp_path / "m.json", meta)
    )
    assert report["meta"]["field_anomalies"] == {
        "category_not_a_list": 1,
        "latitude_not_a_number": 1,
        "price_unrecognised": 1,
    }
    assert report["reviews"]["field_anomalies"] == {"pics_not_a_list": 1, "text_not_a_string": 1}
    item = read(folder, "tiny.item").splitlines()
    assert item[1] == "0x11:0xa1\t$$\tItalian_restaurant Pizza_restaurant\t\t-74.2\t1"  # lat empty, 2 pics gone
    assert item[2].startswith("0x11:0xa2\tunknown\t")
    assert item[3].startswith("0x11:0xa3\tunknown\tMexican_restaurant\t")


def test_cli_prints_one_line_and_exits_nonzero(tmp_path, capsys):
    missing = str(tmp_path / "missing.json")
    rc = cli_convert.main(["--reviews", missing, "--meta", META, "--name", "x", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "missing.json" in err
    assert "Traceback" not in err


def test_cli_converts(tmp_path, capsys, monkeypatch):
    original = gl.convert
    monkeypatch.setattr(gl, "convert", lambda *a, **k: original(*a, **{**k, "encoder": HashEncoder()}))
    rc = cli_convert.main(
        ["--reviews", REVIEWS, "--meta", META, "--name", "cli", "--out", str(tmp_path), "--quiet", "--seed", "3"]
    )
    assert rc == 0
    assert "# Conversion report: cli" in capsys.readouterr().out
    assert read(str(tmp_path / "cli"), "cli.train.inter").replace("cli", "tiny") == EXPECTED_TRAIN


def test_interrupted_run_leaves_the_old_dataset_and_no_half_one(tmp_path, monkeypatch):
    _, folder = run(tmp_path)
    before = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(convert_write, "save_npz", crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, split="random")
    assert os.listdir(os.path.dirname(folder)) == ["tiny"]
    assert {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)} == before
    shutil.rmtree(folder)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert os.listdir(os.path.dirname(folder)) == []


def test_rerun_replaces_the_dataset(tmp_path):
    run(tmp_path)
    _, folder = run(tmp_path, label_threshold=5)
    assert os.listdir(os.path.dirname(folder)) == ["tiny"]
    assert "u2\t0x11:0xa1\t4\t0\t1600000002000" in read(folder, "tiny.train.inter")


def test_bad_names_and_options_are_refused(tmp_path):
    for name in ("../up", ".hidden", "with space", ""):
        with pytest.raises(InputError, match="dataset name"):
            run(tmp_path, name=name)
    with pytest.raises(gl.ConversionError, match="unknown image encoder"):
        run(tmp_path, image_encoder="clip")
    with pytest.raises(gl.ConversionError, match="ratios"):
        run(tmp_path, ratios=(0.5, 0.5, 0.5))


# ---------------------------------------------------------------------------------------------
# the image slot
# ---------------------------------------------------------------------------------------------
def test_image_slot_is_off_by_default_and_sees_train_pictures_only(tmp_path, monkeypatch):
    assert gl.IMAGE_ENCODERS == {"none": None}
    seen = {}

    def captioner(meta, urls):
        seen[meta["gmap_id"]] = urls
        return f"{len(urls)} photos"

    monkeypatch.setitem(gl.IMAGE_ENCODERS, "fake", captioner)
    enc = HashEncoder()
    run(tmp_path, image_encoder="fake", encoder=enc)
    assert seen["0x11:0xa2"] == [["https://pics.example.com/4a.jpg"]]  # not the test row's pictures
    assert len(seen["0x11:0xa1"]) == 3
    assert enc.calls[0][0].endswith("Photos: 3 photos.")


def test_image_slot_vectors_go_to_a_side_file(tmp_path, monkeypatch):
    monkeypatch.setitem(gl.IMAGE_ENCODERS, "vec", lambda meta, urls: np.full(4, len(urls), np.float32))
    _, folder = run(tmp_path, image_encoder="vec")
    with np.load(os.path.join(folder, "tiny.itemimgvec.npz")) as z:
        assert z["vectors"][:, 0].tolist() == [3.0, 1.0, 0.0]
    assert yaml.safe_load(read(folder, "tiny.yaml"))["item_image_vec"] == "itemimgvec"


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_encoder_end_to_end(tmp_path):
    report, folder = run(tmp_path, encoder=None, encoder_cache=str(tmp_path / "cache.sqlite"))
    with np.load(os.path.join(folder, "tiny.itemvec.npz")) as z:
        assert z["vectors"].shape == (3, 384)
        np.testing.assert_allclose(np.linalg.norm(z["vectors"], axis=1), 1.0, atol=1e-5)
    assert report["vectors"]["dim"] == 384 and report["vectors"]["encoded"] == 8
    again, _ = run(tmp_path, encoder=None, encoder_cache=str(tmp_path / "cache.sqlite"))
    assert again["vectors"]["cached"] == 8 and again["vectors"]["encoded"] == 0


def test_category_filter_can_be_turned_off(tmp_path):
    report, folder = run(tmp_path, category_filter=None)
    assert "category_filter" not in report["meta"]["dropped"]
    assert "business_not_matching_category" not in report["reviews"]["dropped"]
    assert report["reviews"]["kept"] == 13  # the gas station review now counts
    assert "0x11:0xb1\tunknown\tGas_station\t40.3\t-74.3\t0" in read(folder, "tiny.item")


def test_byte_order_mark_and_crlf_are_tolerated(tmp_path):
    raw = open(REVIEWS, "rb").read().replace(b"\n", b"\r\n")
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + raw)
    report, folder = run(tmp_path, reviews=str(bom))
    assert report["reviews"]["kept"] == 12
    assert read(folder, "tiny.train.inter") == EXPECTED_TRAIN


def test_user_text_keeps_whole_newest_reviews_within_the_cap():
    from recbole_dlrrec.data.text_build import user_text

    assert user_text(["newest  one\n", "", "older one", "oldest"], max_chars=20) == "newest one\nolder one"
    assert user_text(["a very long first review text"], max_chars=12) == "a very long"
    assert user_text([None, "  "], max_chars=10) == ""  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_chars"):
        user_text(["x"], max_chars=0)


def test_item_text_flattens_misc_and_skips_missing_parts():
    from recbole_dlrrec.data.text_build import item_text

    text = item_text(
        "Cafe X",
        ["Cafe restaurant", ""],
        None,
        "  Great\tcoffee ",
        {"Amenities": ["Wi-Fi", None], "Nested": {"a": 1}, "Note": "Dogs ok"},
    )
    assert text == "Cafe X. Categories: Cafe restaurant. Great coffee. Amenities: Wi-Fi. Note: Dogs ok."


# -- real data: numeric fields that would be NaN ------------------------------------------------
@pytest.mark.slow
def test_real_data_slice_leaves_out_empty_numeric_fields_and_trains(tmp_path, real_data_slice):
    """The real subset has no coordinates and no pictures: those columns would be NaN after
    RecBole's min-max scaling and stop every model at the first batch; they are left out and
    reported, and a model trains on what is left."""
    reviews, meta = real_data_slice
    report, folder = run(tmp_path, reviews=reviews, meta=meta, name="glreal", category_filter=None)
    left_out = report["numeric_fields_left_out"]
    assert left_out["latitude"] == "all missing" and left_out["longitude"] == "all missing"
    assert left_out["pic_count"] == "constant: 0"
    assert "Numeric fields left out" in read(folder, "REPORT.md")
    settings = yaml.safe_load(read(folder, "glreal.yaml"))
    assert settings["load_col"]["item"] == ["item_id", "price", "categories"]
    assert settings["numerical_features"] == ["n_train_reviews"]
    assert read(folder, "glreal.item").splitlines()[0] == "item_id:token\tprice:token\tcategories:token_seq"

    from recbole_dlrrec.runtime.quick_start import run as run_model

    results = run_model(
        "DLRM",
        "glreal",
        config_dict={
            "data_path": str(tmp_path / "out"),
            "epochs": 1,
            "use_gpu": False,
            "show_progress": False,
            "state": "WARNING",
            "checkpoint_dir": str(tmp_path / "saved"),
        },
        result_file=str(tmp_path / "result.json"),
    )
    assert np.isfinite(results["test_result"]["logloss"])


@pytest.mark.slow
def test_a_split_with_one_label_is_refused_before_training(tmp_path, capsys):
    """AUC is undefined on a split whose rows all have one label (issue 25 item 7): the run stops
    with one line naming the dataset and the split, before any model is built."""
    from conftest import write_tiny_dataset

    from recbole_dlrrec.cli.train import main as train_main
    from recbole_dlrrec.errors import InputError
    from recbole_dlrrec.runtime.quick_start import OneLabelSplitError, build_config, load_splits

    data_path = write_tiny_dataset(str(tmp_path), name="ones")
    valid = os.path.join(data_path, "ones", "ones.valid.inter")
    lines = read(os.path.join(data_path, "ones"), "ones.valid.inter").splitlines()
    with open(valid, "w", encoding="utf-8") as handle:  # label is the third column
        handle.write(
            lines[0]
            + "\n"
            + "".join("\t".join(l.split("\t")[:2] + ["1"] + l.split("\t")[3:]) + "\n" for l in lines[1:])
        )
    config = build_config("DLRM", "ones", config_dict={"data_path": data_path})
    with pytest.raises(
        OneLabelSplitError, match=r"dataset 'ones': the valid split \(300 rows\) has only label = 1"
    ) as caught:
        load_splits(config)
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)
    rc = train_main(["--model=DLRM", "--dataset=ones", f"--data_path={data_path}", "--epochs=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "the valid split" in err[-1] and "AUC is undefined" in err[-1]


@pytest.mark.slow
def test_a_nan_feature_is_refused_before_training(tmp_path):
    """A dataset written by hand (or by an older converter) with an all-missing float column:
    the run stops with one line naming the field, before any model sees it."""
    from conftest import write_tiny_dataset

    from recbole_dlrrec.errors import FeatureError, InputError
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits

    data_path = write_tiny_dataset(str(tmp_path), name="holes")
    item_file = os.path.join(data_path, "holes", "holes.item")
    lines = read(os.path.join(data_path, "holes"), "holes.item").splitlines()
    with open(item_file, "w", encoding="utf-8") as handle:
        handle.write(lines[0] + "\tlatitude:float\n" + "".join(line + "\t\n" for line in lines[1:]))
    yaml_file = os.path.join(data_path, "holes", "holes.yaml")
    text = read(os.path.join(data_path, "holes"), "holes.yaml")
    text = text.replace(
        "item: [item_id, cuisine, tags, price_level]", "item: [item_id, cuisine, tags, price_level, latitude]"
    )
    text = text.replace("numerical_features: [price_level]", "numerical_features: [price_level, latitude]")
    text = text.replace("normalize_field: [price_level]", "normalize_field: [price_level, latitude]")
    with open(yaml_file, "w", encoding="utf-8") as handle:
        handle.write(text)
    config = build_config("DLRM", "holes", config_dict={"data_path": data_path})
    with pytest.raises(FeatureError, match="'latitude'") as caught:
        load_splits(config)
    assert isinstance(caught.value, InputError) and "\n" not in str(caught.value)
