"""Tests of the Yelp Open Dataset converter (recbole_dlrrec.data.yelp): the converter suite's
guarantees on Yelp's JSON lines, written here (realistic business.json / review.json lines)."""

from __future__ import annotations

import calendar
import gzip
import json
import os
import shutil
from collections import Counter

import numpy as np
import pytest
import yaml

from recbole_dlrrec.cli import convert as cli_convert
from recbole_dlrrec.data import yelp
from recbole_dlrrec.data.convert import features as convert_features
from recbole_dlrrec.data.convert import write as convert_write
from recbole_dlrrec.data.convert.records import Business, ConversionError, Review, Skip
from recbole_dlrrec.data.encoder import HashEncoder

B1, B2, B3 = "vUrTGX_7HxqeoQ_6QCVz6g", "0bPLkL0QhhPO5kt1_EXmNQ", "qkRM_2X51Yqxk3btlwAQIg"
SUPPLIES, DENTIST = "Pns2l4eNsfO8kk83dixA6A", "mpf3x-BjTdTEA3yCZrAYPw"
U1, U2, U3, U4, U5, U6 = (
    "mh_-eMZ6K5RLWhZyISBhwA",
    "OyoGAe7OKpv6SyGZT5g77Q",
    "8g_iMtfSiwikVnbP2etR0A",
    "_7bHUi9Uuf5__HHc_Q8guQ",
    "bcjbaE6dDog4jkNY91ncLQ",
    "TZQSUDDcA4ek5gBd6BzcjA",
)


def business(business_id, name, categories, city, state, lat, lon, stars, count, attributes):
    return {
        "business_id": business_id,
        "name": name,
        "address": "1 Main St",
        "city": city,
        "state": state,
        "postal_code": "19107",
        "latitude": lat,
        "longitude": lon,
        "stars": stars,
        "review_count": count,
        "is_open": 1,
        "attributes": attributes,
        "categories": categories,
        "hours": {"Monday": "11:0-22:0", "Tuesday": "11:0-22:0"},
    }


BUSINESSES = [
    business(
        B1,
        "Pizzeria Uno",
        "Pizza, Restaurants, Italian",
        "Philadelphia",
        "PA",
        39.95,
        -75.16,
        4.0,
        120,
        {
            "RestaurantsPriceRange2": "2",
            "WiFi": "u'free'",
            "RestaurantsTakeOut": "True",
            "Ambience": "{'romantic': False, 'casual': True}",
            "GoodForKids": "False",
        },
    ),
    business(
        B2,
        "Sushi Zen",
        "Japanese, Sushi Bars, Restaurants",
        "Tampa",
        "FL",
        27.95,
        -82.46,
        4.5,
        310,
        {"RestaurantsPriceRange2": "3"},
    ),
    business(B3, "Taco Shack", "Restaurants, Mexican", "Tucson", "AZ", 32.22, -110.97, 3.5, 45, None),
    business(SUPPLIES, "Kitchen Depot", "Restaurant Supplies, Shopping", "Reno", "NV", 39.5, -119.8, 4.0, 12, {}),
    business(DENTIST, "Bright Smile Dental", "Dentists, Health & Medical", "Boise", "ID", 43.6, -116.2, 5.0, 8, {}),
]


def review(n, user, business_id, stars, text, date):
    return {
        "review_id": f"KU_O5udG6zpxOg-VcAEod{n:x}",
        "user_id": user,
        "business_id": business_id,
        "stars": stars,
        "useful": 0,
        "funny": 0,
        "cool": 0,
        "text": text,
        "date": date,
    }


# 12 kept reviews, 10 lines dropped for one reason each (in the comment), interleaved.
REVIEW_LINES = [
    review(1, U1, B1, 5.0, "Great slice, thin crust.", "2019-01-01 10:00:00"),
    review(2, U2, B1, 4.0, "Solid pizza.", "2019-01-02 10:00:00"),
    '{"review_id": "broken", "user_id": ',  # malformed_json (line 3)
    review(3, U3, B2, 2.0, "Fish was not fresh.", "2019-01-03 10:00:00"),
    review(4, U1, B2, 5.0, "Best sushi in town.", "2019-01-04 10:00:00"),
    {k: v for k, v in review(90, U2, B2, 3.0, "no user", "2019-01-04 11:00:00").items() if k != "user_id"},
    review(5, U4, B3, 3.0, "", "2019-01-05 10:00:00"),
    review(91, U4, B2, 7.0, "seven stars", "2019-01-05 11:00:00"),  # invalid_value:stars
    review(6, U2, B3, 5.0, "Muy buenos tacos!", "2019-01-06 10:00:00"),
    review(92, U5, B3, None, "null stars", "2019-01-06 11:00:00"),  # null_rating
    review(7, U5, B1, 1.0, "Cold food,\nrude   staff.", "2019-01-07 10:00:00"),
    review(93, U6, B1, 4.0, "US date", "01/07/2019 10:00"),  # invalid_value:date
    review(8, U3, B3, 4.0, "Nice salsa bar.", "2019-01-08 10:00:00"),
    review(94, U3, SUPPLIES, 5.0, "good pans", "2019-01-08 11:00:00"),  # business_not_matching_category
    review(9, U4, B1, 5.0, "Lovely.", "2019-01-09 10:00:00"),
    review(95, U4, "zzzzzzzzzzzzzzzzzzzzzz", 5.0, "gone", "2019-01-09 11:00:00"),  # unknown_business
    review(10, U1, B3, 4.0, "Good tacos.", "2019-01-10 10:00:00"),
    review(1, U1, B1, 5.0, "Great slice, thin crust.", "2019-01-01 10:00:00"),  # duplicate
    review(96, U1, B1, 2.0, "Went back, worse.", "2019-01-20 10:00:00"),  # repeat_user_business
    "",  # blank_line
    review(11, U5, B2, 5.0, "VALID secret text", "2019-02-01 10:00:00"),
    review(12, U6, B2, 1.0, "TEST secret text", "2019-03-01 10:00:00"),
]
BUSINESS_LINES = [
    BUSINESSES[0],
    BUSINESSES[3],
    BUSINESSES[1],
    '{"business_id": "x", "name": "Half',  # malformed_json (line 4)
    BUSINESSES[0],  # duplicate
    {k: v for k, v in BUSINESSES[2].items() if k != "business_id"},  # missing_field:business_id
    BUSINESSES[2],
    BUSINESSES[4],
]
GOOD_BUSINESS_LINES = [b for i, b in enumerate(BUSINESS_LINES, 1) if i not in (4, 6)]  # no bad line

T0 = 1546336800000  # 2019-01-01 10:00:00 UTC in ms
HEADER = "user_id:token\titem_id:token\trating:float\tlabel:float\ttimestamp:float\n"
DAY = 86_400_000
EXPECTED_TRAIN = HEADER + "".join(
    f"{u}\t{b}\t{s}\t{int(s >= 4)}\t{T0 + d * DAY}\n"
    for u, b, s, d in [
        (U1, B1, 5, 0),
        (U2, B1, 4, 1),
        (U3, B2, 2, 2),
        (U1, B2, 5, 3),
        (U4, B3, 3, 4),
        (U2, B3, 5, 5),
        (U5, B1, 1, 6),
        (U3, B3, 4, 7),
        (U4, B1, 5, 8),
        (U1, B3, 4, 9),
    ]
)
EXPECTED_VALID = HEADER + f"{U5}\t{B2}\t5\t1\t{T0 + 31 * DAY}\n"
EXPECTED_TEST = HEADER + f"{U6}\t{B2}\t1\t0\t{T0 + 59 * DAY}\n"
# pic_count is 0 everywhere (Yelp reviews carry no pictures): a constant column, left out.
EXPECTED_ITEM = (
    "item_id:token\tprice:token\tcategories:token_seq\tlatitude:float\tlongitude:float\n"
    f"{B2}\t$$$\tJapanese Sushi_Bars Restaurants\t27.95\t-82.46\n"
    f"{B3}\tunknown\tRestaurants Mexican\t32.22\t-110.97\n"
    f"{B1}\t$$\tPizza Restaurants Italian\t39.95\t-75.16\n"
)
EXPECTED_USER = "user_id:token\tn_train_reviews:float\n" + "".join(
    f"{u}\t{n}\n" for u, n in sorted([(U1, 3), (U2, 2), (U3, 2), (U4, 2), (U5, 1), (U6, 0)])
)
ITEM_TEXTS = {
    B1: "Pizzeria Uno. Categories: Pizza, Restaurants, Italian. Price: $$. Location: Philadelphia, PA. "
    "Offers: Restaurants Take Out. Wi Fi: free. Ambience: casual.",
    B2: "Sushi Zen. Categories: Japanese, Sushi Bars, Restaurants. Price: $$$. Location: Tampa, FL.",
    B3: "Taco Shack. Categories: Restaurants, Mexican. Location: Tucson, AZ.",
}
USER_TEXTS = {
    U1: "Good tacos.\nBest sushi in town.\nGreat slice, thin crust.",
    U2: "Muy buenos tacos!\nSolid pizza.",
    U3: "Nice salsa bar.\nFish was not fresh.",
    U4: "Lovely.",
    U5: "Cold food, rude staff.",
}
# Per train row in order: its user's strictly earlier train texts (U4's earlier review has none).
HISTORY_TEXTS = [
    "Great slice, thin crust.",
    "Solid pizza.",
    "Fish was not fresh.",
    "Best sushi in town.\nGreat slice, thin crust.",
]


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return str(path)


def yelp_files(tmp_path, reviews=REVIEW_LINES, businesses=BUSINESS_LINES):
    return (
        write_lines(tmp_path / "yelp_academic_dataset_review.json", reviews),
        write_lines(tmp_path / "yelp_academic_dataset_business.json", businesses),
    )


def run(tmp_path, files=None, name="yelp", **kwargs):
    kwargs.setdefault("encoder", HashEncoder())
    kwargs.setdefault("show_progress", False)
    reviews, businesses = files or yelp_files(tmp_path)
    out = str(tmp_path / "out")
    return yelp.convert(reviews, businesses, name, out, **kwargs), os.path.join(out, name)


def read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        return handle.read()


def outputs(folder):
    """Every file's bytes but the report's (it holds the time taken and the input paths)."""
    return {
        n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder)) if not n.startswith("REPORT")
    }


# ---------------------------------------------------------------------------------------------
def test_hand_made_yelp_files_give_exactly_the_expected_rows(tmp_path):
    enc = HashEncoder()
    _, folder = run(tmp_path, encoder=enc)
    assert T0 == calendar.timegm((2019, 1, 1, 10, 0, 0)) * 1000  # the date is read as UTC
    assert read(folder, "yelp.train.inter") == EXPECTED_TRAIN
    assert read(folder, "yelp.valid.inter") == EXPECTED_VALID
    assert read(folder, "yelp.test.inter") == EXPECTED_TEST
    assert read(folder, "yelp.item") == EXPECTED_ITEM
    assert read(folder, "yelp.user") == EXPECTED_USER
    items, users = sorted(ITEM_TEXTS), sorted(USER_TEXTS)
    assert enc.calls == [[ITEM_TEXTS[b] for b in items], [USER_TEXTS[u] for u in users], HISTORY_TEXTS]
    with np.load(os.path.join(folder, "yelp.itemvec.npz"), allow_pickle=False) as z:
        assert z["ids"].tolist() == items
        np.testing.assert_array_equal(z["vectors"], HashEncoder().encode([ITEM_TEXTS[b] for b in items]))
    with np.load(os.path.join(folder, "yelp.uservec.npz"), allow_pickle=False) as z:
        assert z["ids"].tolist() == users  # U6 has no train review
    with np.load(os.path.join(folder, "yelp.userhist.npz"), allow_pickle=False) as z:
        train = [line.split("\t") for line in EXPECTED_TRAIN.splitlines()[1:]]
        assert z["users"].tolist() == [r[0] for r in train] and z["items"].tolist() == [r[1] for r in train]
        assert z["row"].tolist() == [-1, -1, -1, 0, -1, 1, -1, 2, -1, 3]
    assert sorted(os.listdir(os.path.dirname(folder))) == ["yelp"]  # no temp folder left behind


def test_report_counts_every_line_and_names_the_bad_ones(tmp_path):
    report, folder = run(tmp_path)
    meta, reviews = report["meta"], report["reviews"]
    assert (meta["lines_read"], meta["kept"]) == (8, 3)
    assert meta["dropped"] == {
        "category_filter": 2,
        "duplicate": 1,
        "malformed_json": 1,
        "missing_field:business_id": 1,
    }
    assert meta["malformed_lines"] == [4]
    assert (reviews["lines_read"], reviews["kept"]) == (22, 12)
    assert reviews["dropped"] == {
        "blank_line": 1,
        "business_not_matching_category": 1,
        "duplicate": 1,
        "invalid_value:date": 1,
        "invalid_value:stars": 1,
        "malformed_json": 1,
        "missing_field:user_id": 1,
        "null_rating": 1,
        "repeat_user_business": 1,
        "unknown_business": 1,
    }
    assert reviews["malformed_lines"] == [3]
    for part in (meta, reviews):
        assert part["lines_read"] == part["kept"] + part["dropped_total"]
    assert report["params"]["category_filter"] == "Restaurants"  # Yelp's default
    assert [report["splits"][s]["interactions"] for s in ("train", "valid", "test")] == [10, 1, 1]
    assert report["numeric_fields_left_out"] == {"pic_count": "constant: 0"}
    md = read(folder, "REPORT.md")
    assert "| invalid_value:date | 1 |" in md and "Malformed lines: 3" in md


def test_strict_makes_bad_lines_fatal_with_file_and_line(tmp_path):
    with pytest.raises(ConversionError, match=r"yelp_academic_dataset_business.json:4: malformed JSON"):
        run(tmp_path, strict=True)
    files = yelp_files(tmp_path, businesses=GOOD_BUSINESS_LINES)
    with pytest.raises(ConversionError, match=r"yelp_academic_dataset_review.json:3: malformed JSON"):
        run(tmp_path, files, strict=True)
    no_malformed = [line for i, line in enumerate(REVIEW_LINES, 1) if i not in (3, 6)]
    with pytest.raises(ConversionError, match=r"review.json:6: invalid stars 7.0"):
        run(tmp_path, yelp_files(tmp_path, no_malformed, GOOD_BUSINESS_LINES), strict=True)


def test_text_of_valid_and_test_reviews_cannot_influence_any_output(tmp_path):
    """Leak-free: the texts of evaluation reviews feed nothing, byte for byte."""
    _, clean = run(tmp_path / "a")
    changed = [
        dict(r, text="completely different words " * 20) if isinstance(r, dict) and "secret" in r["text"] else r
        for r in REVIEW_LINES
    ]
    _, other = run(tmp_path / "b", yelp_files(tmp_path, changed))
    assert outputs(clean) == outputs(other)
    # ... while a train review's text does reach the user vectors.
    changed = [
        dict(r, text="other words") if isinstance(r, dict) and r["text"] == "Lovely." else r for r in REVIEW_LINES
    ]
    _, third = run(tmp_path / "c", yelp_files(tmp_path, changed))
    assert outputs(clean)["yelp.uservec.npz"] != outputs(third)["yelp.uservec.npz"]


def test_features_are_given_the_train_rows_and_nothing_else(tmp_path, monkeypatch):
    given = []
    original = convert_features.train_features

    def spy(train, *args, **kwargs):
        given.append([(r.user, r.item, str(r.time)) for r in train])
        return original(train, *args, **kwargs)

    monkeypatch.setattr(convert_features, "train_features", spy)
    _, folder = run(tmp_path)
    assert given == [[tuple(line.split("\t")[i] for i in (0, 1, 4)) for line in EXPECTED_TRAIN.splitlines()[1:]]]


def test_outputs_are_byte_reproducible_and_gzip_gives_the_same_bytes(tmp_path):
    _, first = run(tmp_path / "a")
    _, second = run(tmp_path / "b")
    assert outputs(first) == outputs(second)
    reviews, businesses = yelp_files(tmp_path)
    for path in (reviews, businesses):
        with open(path, "rb") as src, gzip.open(path + ".gz", "wb") as dst:
            dst.write(src.read())
    _, zipped = run(tmp_path / "c", (reviews + ".gz", businesses + ".gz"))
    assert outputs(first) == outputs(zipped)


def generated_yelp(tmp_path, n_users=60, seed=0):
    """Yelp-shaped files of some size: 8 businesses (6 restaurants), users with 2-7 reviews each
    on random dates of 2018-2021, texts from a few phrases."""
    rng = np.random.default_rng(seed)
    cuisines = ["Pizza", "Sushi Bars", "Mexican", "Thai", "Burgers", "Vegan", "Hardware Stores", "Dentists"]
    businesses = [
        business(
            f"gen{k:02d}biz{'x' * 14}",
            f"Place {k}",
            f"{c}, Restaurants" if k < 6 else f"{c}, Home Services",
            "Austin",
            "TX",
            30.2 + k / 100,
            -97.7 - k / 100,
            3.5,
            10 + k,
            {"RestaurantsPriceRange2": str(1 + k % 4)},
        )
        for k, c in enumerate(cuisines)
    ]
    phrases = ["Great food.", "Slow service.", "Would come back!", "Too salty.", "Friendly staff."]
    reviews, n = [], 0
    for u in range(n_users):
        for b in rng.choice(8, size=int(rng.integers(2, 8)), replace=False):
            n += 1
            day = int(rng.integers(0, 1400))
            date = f"{2018 + day // 365}-{1 + (day % 365) // 31:02d}-{1 + day % 28:02d} {day % 24:02d}:00:00"
            text = " ".join(rng.choice(phrases, size=int(rng.integers(0, 4))))
            reviews.append(
                review(
                    n, f"genuser{u:03d}{'y' * 8}", businesses[b]["business_id"], float(rng.integers(1, 6)), text, date
                )
            )
    return yelp_files(tmp_path, reviews, businesses)


@pytest.mark.parametrize("split", ["time", "random"])
def test_generated_data_keep_the_guarantees_under_both_splits_and_k_core(tmp_path, split):
    files = generated_yelp(tmp_path)
    report, folder = run(tmp_path / "a", files, split=split, seed=5, k_core=2)
    _, again = run(tmp_path / "b", files, split=split, seed=5, k_core=2)
    assert outputs(folder) == outputs(again)
    assert report["k_core"]["k"] == 2 and report["meta"]["dropped"] == {"category_filter": 2}
    assert report["reviews"]["dropped"]["business_not_matching_category"] > 0
    rows = {
        s: [line.split("\t") for line in read(folder, f"yelp.{s}.inter").splitlines()[1:]]
        for s in ("train", "valid", "test")
    }
    per_user, per_item = Counter(r[0] for r in rows["train"]), Counter(r[1] for r in rows["train"])
    assert min(per_user.values()) >= 2 and min(per_item.values()) >= 2
    pairs = [tuple(r[:2]) for part in rows.values() for r in part]
    assert len(pairs) == len(set(pairs))  # a user-business pair is in one split only
    if split == "time":
        assert max(int(r[4]) for r in rows["train"]) <= min(int(r[4]) for r in rows["valid"])
    with np.load(os.path.join(folder, "yelp.userhist.npz"), allow_pickle=False) as z:
        assert z["users"].tolist() == [r[0] for r in rows["train"]]
        assert (z["row"] >= 0).sum() == report["user_history"]["train_rows_with_history"] > 0


def test_interrupted_run_leaves_the_old_dataset_and_no_half_one(tmp_path, monkeypatch):
    _, folder = run(tmp_path)
    before = {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(convert_write, "save_npz", crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, split="random")
    assert os.listdir(os.path.dirname(folder)) == ["yelp"]
    assert {n: open(os.path.join(folder, n), "rb").read() for n in os.listdir(folder)} == before
    shutil.rmtree(folder)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert os.listdir(os.path.dirname(folder)) == []


def test_category_filter_is_an_option(tmp_path):
    report, folder = run(tmp_path / "a", category_filter=None)
    assert "category_filter" not in report["meta"]["dropped"]
    assert report["params"]["category_filter"] is None
    assert SUPPLIES in read(folder, "yelp.item")  # the review of the supplies shop is kept now
    report, folder = run(tmp_path / "b", category_filter="sushi", ratios=(0.5, 0.25, 0.25))
    assert read(folder, "yelp.item").count("\n") == 2 and B2 in read(folder, "yelp.item")
    assert report["meta"]["dropped"]["category_filter"] == 4
    with pytest.raises(ConversionError, match=r"no business left .* category_filter='Vegan'"):
        run(tmp_path / "c", category_filter="Vegan")


def test_leaky_meta_only_on_request_and_named_as_yelps(tmp_path):
    _, folder = run(tmp_path / "a")
    assert "avg_rating" not in read(folder, "yelp.item") and "LEAKY" not in read(folder, "yelp.yaml")
    report, folder = run(tmp_path / "b", include_leaky_meta=True)
    item = read(folder, "yelp.item").splitlines()
    assert item[0].endswith("avg_rating:float\tnum_of_reviews:float")
    assert item[3].endswith("\t4\t120")  # B1: stars 4.0, review_count 120
    assert "Yelp's all-time figures" in read(folder, "yelp.yaml")
    assert any("INCLUDED (LEAKY" in g for g in report["leakage_guards"])


@pytest.mark.slow  # imports and runs RecBole's loading
def test_yaml_names_yelps_fields_and_recbole_loads_the_dataset(tmp_path):
    _, folder = run(tmp_path)
    text = read(folder, "yelp.yaml")
    assert "written by recbole_dlrrec.data.yelp" in text and "Item token = Yelp business_id" in text
    settings = yaml.safe_load(text)
    assert settings["load_col"]["item"] == ["item_id", "price", "categories", "latitude", "longitude"]
    from recbole_dlrrec.data.convert.verify import check_loads_in_recbole

    counts = check_loads_in_recbole(str(tmp_path / "out"), "yelp")
    assert (counts["train"], counts["valid"], counts["test"]) == (10, 1, 1)


def test_swapped_and_wrong_files_are_named(tmp_path):
    reviews, businesses = yelp_files(tmp_path)
    with pytest.raises(ConversionError, match="are --reviews and --meta swapped"):
        run(tmp_path, (businesses, reviews))
    google_like = write_lines(tmp_path / "google.json", [{"user_id": "u", "gmap_id": "g", "time": 1, "rating": 5}])
    with pytest.raises(ConversionError, match="user_id, business_id, date, stars; is this the reviews file"):
        run(tmp_path, (google_like, businesses))


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{",
        b'{"stars": 1e999}',
        b'{"date": ["2019"]}',
        b"[" * 100_000,
        json.dumps(review(1, U1, B1, 5, 3, {"d": 1})).encode(),
    ],
)
def test_any_line_gives_a_skip_or_a_clean_record(raw):
    from recbole_dlrrec.data.convert.jsonl import parse_line

    obj = parse_line(raw)
    for parsed in (
        [obj]
        if isinstance(obj, Skip)
        else [yelp.read.parse_review(obj, 1, Counter(), Counter()), yelp.parse_meta(obj, Counter())]
    ):
        assert isinstance(parsed, (Skip, Review, Business))


def test_business_attributes_are_read_as_yelp_writes_them():
    anomalies = Counter()
    b = yelp.parse_meta(
        dict(
            BUSINESSES[0],
            categories=["not", "a string"],
            latitude="39.9",
            attributes={
                "RestaurantsPriceRange2": 2,
                "NoiseLevel": "u'very_loud'",
                "Music": "{'dj': True, 'live': None}",
                "Odd": "[" * 5000,
            },
        ),
        anomalies,
    )
    assert b.price == "$$" and b.categories == [] and b.latitude is None
    assert b.misc == {"Location": "Philadelphia, PA", "Noise Level": "very loud", "Music": ["dj"], "Odd": "[" * 5000}
    assert anomalies == {"categories_not_a_string": 1, "latitude_not_a_number": 1}
    anomalies = Counter()
    assert (
        yelp.parse_meta(dict(BUSINESSES[1], attributes={"RestaurantsPriceRange2": "9"}), anomalies).price == "unknown"
    )
    assert anomalies == {"price_unrecognised": 1}


def test_cli_converts_yelp_and_refuses_bad_input_in_one_line(tmp_path, capsys, monkeypatch):
    reviews, businesses = yelp_files(tmp_path)
    original = yelp.convert
    monkeypatch.setattr(yelp, "convert", lambda *a, **k: original(*a, **{**k, "encoder": HashEncoder()}))
    rc = cli_convert.main(
        [
            "--source",
            "yelp",
            "--reviews",
            reviews,
            "--meta",
            businesses,
            "--name",
            "cli",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "# Conversion report: cli" in out and "| invalid_value:date | 1 |" in out
    assert read(str(tmp_path / "out" / "cli"), "cli.train.inter") == EXPECTED_TRAIN
    rc = cli_convert.main(
        [
            "--source",
            "yelp",
            "--reviews",
            str(tmp_path / "missing.json"),
            "--meta",
            businesses,
            "--name",
            "x",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ") and "missing.json" in err


@pytest.mark.slow  # loads the sentence encoder
def test_offline_encoder_end_to_end(tmp_path):
    """The default encoder (the bundled offline MiniLM with its sqlite cache), as for Google Local."""
    cache = str(tmp_path / "cache.sqlite")
    report, folder = run(tmp_path, encoder=None, encoder_cache=cache)
    with np.load(os.path.join(folder, "yelp.itemvec.npz"), allow_pickle=False) as z:
        assert z["vectors"].shape == (3, 384)
        np.testing.assert_allclose(np.linalg.norm(z["vectors"], axis=1), 1.0, atol=1e-5)
    assert report["vectors"]["encoded"] == 8 and report["user_history"]["encoded"] == 4
    again, _ = run(tmp_path, encoder=None, encoder_cache=cache)
    assert again["vectors"]["cached"] == 8 and again["vectors"]["encoded"] == 0


def test_a_huge_line_is_a_counted_skip_naming_it(tmp_path):
    lines = list(REVIEW_LINES)
    lines.insert(1, review(97, U2, B2, 4.0, "x" * 5000, "2019-01-01 11:00:00"))  # line 2
    report, folder = run(tmp_path, yelp_files(tmp_path, lines), max_line_bytes=1000)
    tally = report["reviews"]
    assert tally["dropped"]["line_too_long"] == 1 and tally["long_lines"] == [2]
    assert tally["lines_read"] == tally["kept"] + tally["dropped_total"]
    assert read(folder, "yelp.train.inter") == EXPECTED_TRAIN
    with pytest.raises(ConversionError, match=r"review\.json:2: line of \d+ bytes is longer than max_line_bytes=1000"):
        run(tmp_path, yelp_files(tmp_path, lines, GOOD_BUSINESS_LINES), max_line_bytes=1000, strict=True)


def test_input_with_one_label_is_refused_and_a_one_label_split_is_warned(tmp_path):
    fives = [
        dict(r, stars=5.0) if isinstance(r, dict) and isinstance(r.get("stars"), float) and r["stars"] <= 5 else r
        for r in REVIEW_LINES
    ]
    with pytest.raises(ConversionError, match=r"review\.json: every kept review \(12\) has label 1"):
        run(tmp_path / "a", yelp_files(tmp_path, fives))
    report, _ = run(tmp_path / "b")  # the valid split is one positive row: written, with a warning
    assert any(w.startswith("the valid split has 1 row(s), all with label 1") for w in report["warnings"])
