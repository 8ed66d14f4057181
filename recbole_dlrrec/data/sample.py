"""Generated restaurant reviews in the Google Local 2021 format (the bundled ``restaurants`` data).

THE DATA IS GENERATED, NOT REAL. Every business, person, review and picture link is made up by
the model below from one seed; picture and map links point at ``example.com`` hosts. It exists so
that the DLRREC pipeline can be run and tested end to end offline, on data where we know which
signals are there.

Command line::

    python -m recbole_dlrrec.data.sample [--seed S] [--out dataset] [--name restaurants] [--force]
        [--n_restaurants 1200] [--n_users 3500] [--n_reviews 70000]

``generate(out_dir, seed)`` writes ``reviews.json.gz`` and ``meta.json.gz``;
``ensure_restaurants(data_path)`` builds ``<data_path>/restaurants/`` with the converter
(time split) on first use and reuses it afterwards.

Generative model (defaults: 1,200 restaurants, 3,500 users, about 70,000 reviews)
-----------------------------------------------------------------------------------
All randomness comes from numpy Generators: ``default_rng(seed)`` draws the world below and
``default_rng([seed, 1])`` renders it as JSON lines; the same seed gives byte-identical files
(gzip headers carry no name or time).

World.
  5 fictional towns with centres about 0.3 degrees apart; 20 cuisines (``CUISINES``: category such
  as "Sushi restaurant", dishes, and a global appeal ``a_c``); 8 ambience words (``AMBIENCE``:
  Cozy, Casual, Romantic, ... each with a global effect ``e_k``); price levels 1-4 ("$".."$$$$").
Restaurants (i).
  Town drawn with weights (.35, .25, .2, .12, .08); latitude/longitude = town centre + N(0, 0.02)
  degrees; cuisine uniform; price level = cuisine's typical level + a step of -1/0/+1, clipped to
  1-4 (8% have no price); 1-2 ambience words; a name from the cuisine's name patterns; a
  description naming the cuisine, two dishes and the ambience (20% have none); MISC with
  "Service options", "Atmosphere" (the ambience words), "Offerings", "Payments" (10% without
  MISC); hidden quality ``q_i ~ N(0, 0.35)``; hidden taste loadings ``v_i ~ N(0, 1)^K``, K = 6;
  popularity ``pop_i = rank_i^-0.8 * exp(0.5 q_i)`` with ranks a random permutation (Zipf-like).
  Also 5% extra non-restaurant businesses (gas station, hair salon, cafe, ...), which the
  converter's default "restaurant" filter drops.
Users (u).
  Home town (same weights); one hidden taste community ``z_u`` in 0..K-1 (uniform); cuisine
  preferences ``c_u ~ N(0, 0.6)`` per cuisine; ambience preferences ``m_u ~ N(0, 0.4)`` per word;
  preferred price level ``p_u`` in 1-4 (weights .3, .4, .2, .1); generosity ``b_u ~ N(0, 0.3)``.
  Activity ``n_u = clip(round(k * (1 + Pareto(1.6))), 3, min(400, businesses / 2))`` with k set
  by bisection so that the total is ``n_reviews`` (heavy-tailed).
Who reviews what.
  User u reviews ``n_u`` distinct businesses drawn without replacement with probability
  proportional to ``pop_i * exp(1.5 [town_i = home_u] + 0.6 c_u[cuisine_i] + 0.8 v_i[z_u])``:
  popular places, home town, liked cuisines, and places loved by the user's community.
Rating.
  ``s = a_c + mean_k e_k + 0.05 price_i``                       (text-visible item main effects)
  ``  + 0.5 c_u[c] + mean_k m_u[k] - 0.25 |price_i - p_u|``     (user x text-visible attributes)
  ``  + 0.7 v_i[z_u] + q_i + b_u``                              (hidden: community taste, quality, user bias)
  ``  + N(0, 0.45)``                                            (noise)
  Ratings 1-5 by cutting ``s`` at its own quantiles .035, .065, .125, .40: 60% fives, 27.5% fours,
  6% threes, 3% twos, 3.5% ones. The cut between 3 and 4 plays the part of the intercept: 87.5%
  of ratings are >= 4, i.e. 7:1 positive:negative at the converter's default threshold.
  The hidden terms are visible in no text: only the interaction graph carries them.
  Non-restaurants have no cuisine terms (appeal and preference 0) and no ambience.
  After the converter drops the non-restaurant reviews, the default sample has 67,224
  interactions at about 7.3:1 (seed 2026).
Time.
  Between 2016-01-01 and 2021-09-01 (ms since epoch): user u is active from a Beta(1.2, 1.2)
  point of the first 95% of the range for Uniform(0.2, 1.0) of the whole range (cut at the end),
  and each of their reviews is uniform in that window. Users who join late appear only in the
  valid/test part of a time split (cold-start users, with no text vector).
Review text (never used for labels, only for the user's profile).
  18% null. Otherwise 1-3 sentences from templates chosen by rating (5: enthusiastic, 4: good,
  3: mixed, 1-2: complaints) naming a dish of the cuisine, often the ambience, sometimes the
  price; 3% are "(Translated by Google) ... (Original) ..." Spanish/French/Japanese/Korean
  lines; 6% end with an emoji. 1-4 pictures (links on pics.example.com) on 10% of reviews rated
  4-5 and 4% of the others; an owner response on 7%.
Meta extras.
  ``avg_rating`` and ``num_of_reviews`` are computed from ALL generated reviews (so they leak,
  like Google's own); address, hours, state, relative_results (same-town places), url.
Dirt, so that every cleaning rule of the converter fires (counts scale with the data):
  0.4% review lines repeated verbatim; 0.3% ratings set to null; 0.3% reviews of businesses
  missing from meta; 0.2% extra later re-reviews of the same place by the same user; 3 reviews
  without user_id; 2 with rating 0; 2 truncated (malformed) lines; 1 blank line; 1 line that is
  a JSON array. Meta: 1% of lines repeated, 1 line without name, 1 truncated line.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from recbole_dlrrec.atomic import atomic_path
from recbole_dlrrec.data.dataset_folder import DatasetFolderError, read_report
from recbole_dlrrec.data.side_files import ITEM_VEC_SUFFIX, USER_VEC_SUFFIX, side_file_name
from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError

logger = logging.getLogger(__name__)

#: Bumped whenever the generated bytes for a given seed change; built datasets record it.
GENERATOR_VERSION = 1
DEFAULT_SEED = 2026
DEFAULT_SIZES = {"n_restaurants": 1200, "n_users": 3500, "n_reviews": 70000}

T_START_MS = 1451606400000  # 2016-01-01 UTC
T_END_MS = 1630454400000  # 2021-09-01 UTC
N_COMMUNITIES = 6

# (category, cuisine word used in texts, dishes, global appeal a_c, typical price level, name nouns)
CUISINES: list[tuple[str, str, tuple[str, ...], float, int, tuple[str, ...]]] = [
    (
        "Italian restaurant",
        "Italian",
        ("handmade pasta", "lasagna", "tiramisu", "risotto"),
        0.30,
        2,
        ("Trattoria", "Osteria", "Cucina"),
    ),
    (
        "Pizza restaurant",
        "pizza",
        ("margherita pizza", "calzone", "garlic knots"),
        0.10,
        1,
        ("Pizzeria", "Pizza Co.", "Slice House"),
    ),
    (
        "Sushi restaurant",
        "sushi",
        ("salmon nigiri", "sashimi", "dragon roll"),
        0.35,
        3,
        ("Sushi Bar", "Sushi", "Omakase"),
    ),
    (
        "Japanese restaurant",
        "Japanese",
        ("tonkotsu ramen", "tempura", "udon"),
        0.30,
        2,
        ("Ramen House", "Izakaya", "Noodle Bar"),
    ),
    (
        "Chinese restaurant",
        "Chinese",
        ("soup dumplings", "fried rice", "kung pao chicken"),
        0.00,
        1,
        ("Palace", "Garden", "Wok"),
    ),
    (
        "Mexican restaurant",
        "Mexican",
        ("al pastor tacos", "burritos", "enchiladas"),
        0.20,
        1,
        ("Taqueria", "Cantina", "Cocina"),
    ),
    (
        "Thai restaurant",
        "Thai",
        ("pad thai", "green curry", "tom yum soup"),
        0.25,
        2,
        ("Thai Kitchen", "Thai Bistro", "Siam"),
    ),
    (
        "Indian restaurant",
        "Indian",
        ("butter chicken", "lamb biryani", "garlic naan"),
        0.30,
        2,
        ("Curry House", "Tandoor", "Masala"),
    ),
    (
        "American restaurant",
        "American",
        ("cheeseburger", "mac and cheese", "chicken wings"),
        -0.10,
        2,
        ("Grill", "Tavern", "Kitchen"),
    ),
    (
        "Seafood restaurant",
        "seafood",
        ("oysters", "lobster roll", "fish and chips"),
        0.15,
        3,
        ("Oyster Bar", "Fish House", "Crab Shack"),
    ),
    (
        "Steak restaurant",
        "steak",
        ("ribeye", "filet mignon", "creamed spinach"),
        0.20,
        4,
        ("Steakhouse", "Chophouse", "Prime"),
    ),
    (
        "Vietnamese restaurant",
        "Vietnamese",
        ("beef pho", "banh mi", "spring rolls"),
        0.20,
        1,
        ("Pho", "Saigon Kitchen", "Banh Mi Shop"),
    ),
    ("Greek restaurant", "Greek", ("gyro", "souvlaki", "moussaka"), 0.15, 2, ("Taverna", "Gyro House", "Estiatorio")),
    (
        "Korean restaurant",
        "Korean",
        ("bibimbap", "bulgogi", "kimchi stew"),
        0.25,
        2,
        ("Korean BBQ", "Kitchen", "Pocha"),
    ),
    (
        "French restaurant",
        "French",
        ("coq au vin", "steak frites", "creme brulee"),
        0.20,
        4,
        ("Bistro", "Brasserie", "Maison"),
    ),
    (
        "Vegetarian restaurant",
        "vegetarian",
        ("falafel bowl", "lentil soup", "veggie burger"),
        0.05,
        2,
        ("Green Table", "Garden Kitchen", "Sprout"),
    ),
    (
        "Fast food restaurant",
        "fast food",
        ("chicken sandwich", "nuggets", "milkshake"),
        -0.45,
        1,
        ("Burger Express", "Drive-In", "Quick Bites"),
    ),
    (
        "Breakfast restaurant",
        "breakfast",
        ("pancakes", "omelette", "waffles"),
        0.10,
        1,
        ("Pancake House", "Diner", "Morning Cafe"),
    ),
    (
        "Barbecue restaurant",
        "barbecue",
        ("brisket", "pulled pork", "smoked ribs"),
        0.25,
        2,
        ("BBQ", "Smokehouse", "Pit"),
    ),
    (
        "Middle Eastern restaurant",
        "Middle Eastern",
        ("shawarma", "hummus", "kebab plate"),
        0.20,
        1,
        ("Grill", "Kabob House", "Bakery & Grill"),
    ),
]
# (word, global effect e_k, description phrase)
AMBIENCE: list[tuple[str, float, str]] = [
    ("Cozy", 0.15, "a cozy, warm dining room"),
    ("Casual", 0.00, "a casual, no-fuss room"),
    ("Romantic", 0.10, "a romantic candle-lit setting"),
    ("Trendy", 0.05, "a trendy, stylish space"),
    ("Family-friendly", 0.05, "a family-friendly room with booths"),
    ("Quiet", 0.05, "a quiet, relaxed atmosphere"),
    ("Lively", -0.05, "a lively, loud bar area"),
    ("Upscale", 0.10, "an upscale dining room with white tablecloths"),
]
SECONDARY_CATEGORIES = (
    "Bar",
    "Takeout Restaurant",
    "Family restaurant",
    "Brunch restaurant",
    "Cocktail bar",
    "Delivery Restaurant",
)
OTHER_BUSINESSES = (
    ("Gas station", "Fuel & Go"),
    ("Hair salon", "Style Studio"),
    ("Hardware store", "Handy Hardware"),
    ("Coffee shop", "Bean There Coffee"),
    ("Bakery", "Daily Bread Bakery"),
    ("Car wash", "Sparkle Car Wash"),
    ("Pharmacy", "Corner Pharmacy"),
    ("Dentist", "Bright Smile Dental"),
)
TOWNS = (
    ("Northbridge", 42.10, -76.10),
    ("Riverton", 42.38, -75.78),
    ("Maple Falls", 41.85, -75.70),
    ("Eastport", 42.22, -75.40),
    ("Cedar Hill", 41.95, -76.45),
)
TOWN_WEIGHTS = np.array([0.35, 0.25, 0.20, 0.12, 0.08])
STATE = "NY"
OWNERS = (
    "Luigi's",
    "Mama Rosa's",
    "Golden",
    "Lucky",
    "Blue",
    "Old Town",
    "Little",
    "Red Door",
    "Sunny",
    "Harbor",
    "Uncle Joe's",
    "Tony's",
    "Jade",
    "Olive",
    "Maple",
    "Silver",
    "Corner",
    "Happy",
    "Royal",
    "Urban",
)
FIRST_NAMES = (
    "Ann",
    "Ben",
    "Carla",
    "David",
    "Elena",
    "Frank",
    "Grace",
    "Hiro",
    "Isabel",
    "Jamal",
    "Kim",
    "Luis",
    "Maria",
    "Nina",
    "Omar",
    "Priya",
    "Quinn",
    "Raj",
    "Sofia",
    "Tom",
    "Uma",
    "Victor",
    "Wei",
    "Yara",
    "Zoe",
)
STREETS = (
    "Main St",
    "Oak Ave",
    "Elm St",
    "Broadway",
    "River Rd",
    "Park Ave",
    "Church St",
    "Lake St",
    "Hill Rd",
    "Mill St",
)
SERVICE_OPTIONS = ("Dine-in", "Takeout", "Delivery", "Curbside pickup", "Outdoor seating")
OFFERINGS = ("Alcohol", "Beer", "Wine", "Vegetarian options", "Happy hour food", "Late-night food", "Comfort food")
PAYMENTS = ("Credit cards", "Debit cards", "NFC mobile payments")

TEMPLATES = {
    5: (
        "Absolutely loved the {dish}!",
        "Best {cw} food in {town}, hands down.",
        "Fantastic {dish}, we will be back.",
        "Outstanding meal from start to finish.",
        "Wow. The {dish} was incredible.",
        "Five stars, the staff were wonderful.",
    ),
    4: (
        "Really good {dish}.",
        "Solid {cw} place, friendly staff.",
        "Tasty {dish} and quick service.",
        "Good food, fair portions.",
        "Nice spot for {cw}, would return.",
    ),
    3: (
        "The {dish} was okay, nothing special.",
        "Average {cw} food.",
        "Decent, but the wait was long.",
        "Some dishes good, the {dish} was bland.",
    ),
    2: (
        "The {dish} was cold and bland.",
        "Disappointing {cw} food.",
        "Slow service and a long wait.",
        "Overcooked {dish}, not worth it.",
    ),
    1: (
        "Terrible. The {dish} was inedible.",
        "Rude staff, would not come back.",
        "Worst {cw} food I have had.",
        "Found a hair in my {dish}. Never again.",
    ),
}
AMBIENCE_SENTENCES = {
    True: ("Love the {amb} vibe.", "{Amb} atmosphere, perfect for us.", "The room is {amb} and comfortable."),
    False: ("Too {amb} for my taste.", "Not a fan of the {amb} atmosphere.", "The {amb} setting was not for me."),
}
PRICE_SENTENCES = {"high": ("Too pricey for what you get.", "Expensive."), "fair": ("Great value.", "Prices are fair.")}
FOREIGN = {
    True: (
        "(Translated by Google) Very good food (Original) Muy buena comida",
        "(Translated by Google) Excellent, we will come back (Original) Excellent, nous reviendrons",
        "(Translated by Google) Delicious (Original) とても美味しかった",
        "(Translated by Google) It was delicious (Original) 정말 맛있었어요",
    ),
    False: (
        "(Translated by Google) Bad service (Original) Mal servicio",
        "(Translated by Google) Disappointing (Original) Décevant",
        "(Translated by Google) Not good (Original) 美味しくなかった",
        "(Translated by Google) It was not good (Original) 별로였어요",
    ),
}
EMOJI = {True: ("😋", "👍", "🔥", "❤️", "🍽️"), False: ("😡", "👎", "😞")}
RESPONSES = (
    "Thank you for your review!",
    "Thanks for visiting, hope to see you again.",
    "We are sorry to hear that, please contact us.",
)

RATING_CUTS = (0.035, 0.065, 0.125, 0.40)  # quantiles of s separating ratings 1|2|3|4|5


@dataclass
class World:
    """Everything the generator drew, including the hidden truth (used by tests and docs)."""

    n_restaurants: int
    item_is_restaurant: np.ndarray  # [I] bool
    item_town: np.ndarray  # [I]
    item_cuisine: np.ndarray  # [I] index into CUISINES (-1 for non-restaurants)
    item_price: np.ndarray  # [I] 1..4, 0 = unknown
    item_price_level: np.ndarray  # [I] 1..4 used by the rating model (even when not shown)
    item_ambience: list  # [I] list of ambience indices
    item_quality: np.ndarray  # [I]
    item_loadings: np.ndarray  # [I, K]
    item_pop: np.ndarray  # [I]
    user_town: np.ndarray  # [U]
    user_community: np.ndarray  # [U]
    user_cuisine_pref: np.ndarray  # [U, C]
    user_ambience_pref: np.ndarray  # [U, A]
    user_price_pref: np.ndarray  # [U]
    user_bias: np.ndarray  # [U]
    rev_user: np.ndarray  # [R]
    rev_item: np.ndarray  # [R]
    rev_time: np.ndarray  # [R] ms
    rev_score_visible: np.ndarray  # [R] text-visible part of s
    rev_score_hidden: np.ndarray  # [R] hidden part of s (community, quality, user bias)
    rev_score: np.ndarray  # [R] s including noise
    rev_rating: np.ndarray  # [R] 1..5


def _activity(rng: np.random.Generator, n_users: int, n_reviews: int, cap: int) -> np.ndarray:
    """Heavy-tailed reviews per user, summing to about n_reviews (see module docstring)."""
    raw = 1.0 + rng.pareto(1.6, n_users)
    lo, hi = 0.01, float(n_reviews)
    for _ in range(60):  # bisection on the scale k
        k = (lo + hi) / 2
        total = np.clip(np.round(k * raw), 3, cap).sum()
        lo, hi = (k, hi) if total < n_reviews else (lo, k)
    return np.clip(np.round(hi * raw), 3, cap).astype(np.int64)


def simulate(
    seed: int = DEFAULT_SEED,
    n_restaurants: int = DEFAULT_SIZES["n_restaurants"],
    n_users: int = DEFAULT_SIZES["n_users"],
    n_reviews: int = DEFAULT_SIZES["n_reviews"],
) -> World:
    """Draw the world and the clean reviews (no dirt, no text) from ``seed``."""
    if n_restaurants < 10 or n_users < 10 or n_reviews < 3 * n_users:
        raise ValueError("need n_restaurants >= 10, n_users >= 10 and n_reviews >= 3 * n_users")
    rng = np.random.default_rng(seed)
    n_cuisines, n_amb, k_comm = len(CUISINES), len(AMBIENCE), N_COMMUNITIES
    n_other = max(2, n_restaurants // 20)
    n_items = n_restaurants + n_other

    is_rest = np.arange(n_items) < n_restaurants
    town = rng.choice(len(TOWNS), size=n_items, p=TOWN_WEIGHTS)
    cuisine = np.where(is_rest, rng.integers(0, n_cuisines, n_items), -1)
    typical = np.array([c[4] for c in CUISINES])
    level = np.clip(typical[np.maximum(cuisine, 0)] + rng.integers(-1, 2, n_items), 1, 4)
    level = np.where(is_rest, level, 1)
    shown_price = np.where(is_rest & (rng.random(n_items) >= 0.08), level, 0)
    n_amb_words = rng.integers(1, 3, n_items)
    ambience = [
        sorted(rng.choice(n_amb, size=int(n_amb_words[i]), replace=False).tolist()) if is_rest[i] else []
        for i in range(n_items)
    ]
    quality = rng.normal(0.0, 0.35, n_items)
    loadings = rng.normal(0.0, 1.0, (n_items, k_comm))
    ranks = rng.permutation(n_items) + 1
    pop = ranks**-0.8 * np.exp(0.5 * quality)

    u_town = rng.choice(len(TOWNS), size=n_users, p=TOWN_WEIGHTS)
    community = rng.integers(0, k_comm, n_users)
    c_pref = rng.normal(0.0, 0.6, (n_users, n_cuisines))
    m_pref = rng.normal(0.0, 0.4, (n_users, n_amb))
    p_pref = rng.choice(4, size=n_users, p=[0.3, 0.4, 0.2, 0.1]) + 1
    bias = rng.normal(0.0, 0.3, n_users)
    n_per_user = _activity(rng, n_users, n_reviews, cap=min(400, n_items // 2))

    appeal = np.array([c[3] for c in CUISINES])
    amb_effect = np.array([a[1] for a in AMBIENCE])
    item_amb_effect = np.array([amb_effect[a].mean() if a else 0.0 for a in ambience])
    item_main = np.where(is_rest, appeal[np.maximum(cuisine, 0)], 0.0) + item_amb_effect + 0.05 * level
    amb_matrix = np.zeros((n_items, n_amb))
    for i, words in enumerate(ambience):
        if words:
            amb_matrix[i, words] = 1.0 / len(words)

    users, items = [], []
    log_pop = np.log(pop)
    for u in range(n_users):
        logits = (
            log_pop
            + 1.5 * (town == u_town[u])
            + 0.6 * np.where(is_rest, c_pref[u, np.maximum(cuisine, 0)], 0.0)
            + 0.8 * loadings[:, community[u]]
        )
        p = np.exp(logits - logits.max())
        p /= p.sum()
        chosen = rng.choice(n_items, size=int(n_per_user[u]), replace=False, p=p)
        users.append(np.full(chosen.size, u))
        items.append(chosen)
    rev_user = np.concatenate(users)
    rev_item = np.concatenate(items)

    visible = (
        item_main[rev_item]
        + 0.5 * np.where(is_rest[rev_item], c_pref[rev_user, np.maximum(cuisine[rev_item], 0)], 0.0)
        + (amb_matrix[rev_item] * m_pref[rev_user]).sum(axis=1)
        - 0.25 * np.abs(level[rev_item] - p_pref[rev_user])
    )
    hidden = 0.7 * loadings[rev_item, community[rev_user]] + quality[rev_item] + bias[rev_user]
    score = visible + hidden + rng.normal(0.0, 0.45, rev_user.size)
    cuts = np.quantile(score, RATING_CUTS)
    rating = 1 + np.searchsorted(cuts, score, side="right")

    span = T_END_MS - T_START_MS
    start = T_START_MS + rng.beta(1.2, 1.2, n_users) * 0.95 * span
    end = np.minimum(T_END_MS, start + rng.uniform(0.2, 1.0, n_users) * span)
    rev_time = (start[rev_user] + rng.random(rev_user.size) * (end - start)[rev_user]).astype(np.int64)

    return World(
        n_restaurants=n_restaurants,
        item_is_restaurant=is_rest,
        item_town=town,
        item_cuisine=cuisine,
        item_price=shown_price,
        item_price_level=level,
        item_ambience=ambience,
        item_quality=quality,
        item_loadings=loadings,
        item_pop=pop,
        user_town=u_town,
        user_community=community,
        user_cuisine_pref=c_pref,
        user_ambience_pref=m_pref,
        user_price_pref=p_pref,
        user_bias=bias,
        rev_user=rev_user,
        rev_item=rev_item,
        rev_time=rev_time,
        rev_score_visible=visible,
        rev_score_hidden=hidden,
        rev_score=score,
        rev_rating=rating.astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------
# rendering the world as Google Local JSON lines
# ---------------------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, options: tuple) -> Any:
    return options[int(rng.integers(0, len(options)))]


def _ids(rng: np.random.Generator, world: World) -> tuple[list[str], list[str]]:
    n_items = world.item_town.size
    n_users = world.user_town.size
    town_prefix = rng.integers(0x89C0_0000_0000, 0x89FF_FFFF_FFFF, len(TOWNS))
    base = int(rng.integers(0, 2**62))
    mult = 0x9E37_79B9_7F4A_7C15 | 1  # odd: i -> i * mult mod 2^63 is a bijection
    gmap = [f"0x{int(town_prefix[world.item_town[i]]):x}:0x{(base + (i + 1) * mult) % 2**63:x}" for i in range(n_items)]
    ubase = int(rng.integers(10**18, 9 * 10**18))
    umult = 1_000_000_007 * 998_244_353  # coprime with 9 * 10**19: distinct users, distinct ids
    users = [str(10**20 + (ubase + u * umult) % (9 * 10**19)) for u in range(n_users)]
    return gmap, users


def _business_names(rng: np.random.Generator, world: World) -> list[str]:
    names = []
    for i in range(world.item_town.size):
        if world.item_is_restaurant[i]:
            c = CUISINES[world.item_cuisine[i]]
            names.append(f"{_pick(rng, OWNERS)} {_pick(rng, c[5])}")
        else:
            kind = OTHER_BUSINESSES[i % len(OTHER_BUSINESSES)]
            names.append(f"{TOWNS[world.item_town[i]][0]} {kind[1]}")
    return names


def _meta_records(rng: np.random.Generator, world: World, gmap: list[str], names: list[str]) -> list[dict]:
    n_items = world.item_town.size
    ratings_by_item: list[list[int]] = [[] for _ in range(n_items)]
    for item, rating in zip(world.rev_item.tolist(), world.rev_rating.tolist()):
        ratings_by_item[item].append(rating)
    by_town: list[list[int]] = [[] for _ in TOWNS]
    for i in range(n_items):
        by_town[world.item_town[i]].append(i)
    records = []
    for i in range(n_items):
        town_name, lat0, lon0 = TOWNS[world.item_town[i]]
        lat = round(lat0 + rng.normal(0, 0.02), 6)
        lon = round(lon0 + rng.normal(0, 0.02), 6)
        if world.item_is_restaurant[i]:
            c = CUISINES[world.item_cuisine[i]]
            category = [c[0]]
            if rng.random() < 0.3:
                category.append(_pick(rng, SECONDARY_CATEGORIES))
            amb = [AMBIENCE[a] for a in world.item_ambience[i]]
            dishes = rng.choice(len(c[2]), size=2, replace=False)
            if rng.random() < 0.2:
                description = None
            else:
                description = (
                    f"{c[1][0].upper() + c[1][1:]} spot serving {c[2][dishes[0]]} and {c[2][dishes[1]]}, "
                    f"with {' and '.join(a[2] for a in amb)}."
                )
            if rng.random() < 0.1:
                misc = None
            else:
                misc = {
                    "Service options": sorted(
                        rng.choice(len(SERVICE_OPTIONS), size=int(rng.integers(1, 4)), replace=False).tolist()
                    ),
                    "Atmosphere": [a[0] for a in amb],
                    "Offerings": sorted(
                        rng.choice(len(OFFERINGS), size=int(rng.integers(1, 4)), replace=False).tolist()
                    ),
                    "Payments": [PAYMENTS[0]] + ([PAYMENTS[2]] if rng.random() < 0.5 else []),
                }
                misc["Service options"] = [SERVICE_OPTIONS[j] for j in misc["Service options"]]
                misc["Offerings"] = [OFFERINGS[j] for j in misc["Offerings"]]
            price = "$" * int(world.item_price[i]) if world.item_price[i] else None
        else:
            category = [OTHER_BUSINESSES[i % len(OTHER_BUSINESSES)][0]]
            description = None
            misc = {"Service options": ["In-store shopping"]} if rng.random() < 0.5 else None
            price = None
        ratings = ratings_by_item[i]
        same_town = [j for j in by_town[world.item_town[i]] if j != i]
        related = (
            [gmap[j] for j in rng.choice(same_town, size=min(4, len(same_town)), replace=False).tolist()]
            if same_town
            else None
        )
        opens, closes = int(rng.integers(7, 12)), int(rng.integers(8, 12))
        hours_text = f"{opens}AM–{closes}PM"
        records.append(
            {
                "name": names[i],
                "address": f"{names[i]}, {int(rng.integers(1, 999))} {_pick(rng, STREETS)}, {town_name}, {STATE} "
                f"{13000 + int(world.item_town[i]) * 17}",
                "gmap_id": gmap[i],
                "description": description,
                "latitude": lat,
                "longitude": lon,
                "category": category,
                "avg_rating": round(float(np.mean(ratings)), 1) if ratings else None,
                "num_of_reviews": len(ratings) + int(rng.integers(0, 40)),
                "price": price,
                "hours": [
                    [day, hours_text]
                    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
                ],
                "MISC": misc,
                "state": f"Open ⋅ Closes {closes}PM" if rng.random() < 0.7 else f"Closed ⋅ Opens {opens}AM",
                "relative_results": related,
                "url": f"https://maps.example.com/place?gmap_id={gmap[i]}",
            }
        )
    return records


def _review_text(rng: np.random.Generator, world: World, r: int, towns: list[str]) -> str | None:
    if rng.random() < 0.18:
        return None
    item, user, rating = int(world.rev_item[r]), int(world.rev_user[r]), int(world.rev_rating[r])
    positive = rating >= 4
    if rng.random() < 0.03:
        return _pick(rng, FOREIGN[positive])
    if world.item_is_restaurant[item]:
        c = CUISINES[world.item_cuisine[item]]
        dish, cw = _pick(rng, c[2]), c[1]
    else:
        dish, cw = "service", "local"
    parts = [_pick(rng, TEMPLATES[rating]).format(dish=dish, cw=cw, town=towns[int(world.item_town[item])])]
    amb = world.item_ambience[item]
    if amb and rng.random() < 0.5:
        a = amb[int(rng.integers(0, len(amb)))]
        liked = world.user_ambience_pref[user, a] >= 0
        word = AMBIENCE[a][0].lower()
        parts.append(_pick(rng, AMBIENCE_SENTENCES[liked]).format(amb=word, Amb=AMBIENCE[a][0]))
    if world.item_price[item] and rng.random() < 0.25:
        too_high = world.item_price_level[item] > world.user_price_pref[user]
        parts.append(_pick(rng, PRICE_SENTENCES["high" if too_high else "fair"]))
    text = " ".join(parts)
    if rng.random() < 0.06:
        text += " " + _pick(rng, EMOJI[positive])
    return text


def _review_records(rng: np.random.Generator, world: World, gmap: list[str], users: list[str]) -> list[dict]:
    towns = [t[0] for t in TOWNS]
    order = np.lexsort((world.rev_time, world.rev_item))  # grouped by business, then time
    person = [f"{_pick(rng, FIRST_NAMES)} {chr(65 + int(rng.integers(0, 26)))}." for _ in users]
    records = []
    for r in order.tolist():
        rating = int(world.rev_rating[r])
        t = int(world.rev_time[r])
        pics = None
        if rng.random() < (0.10 if rating >= 4 else 0.04):
            pics = [
                {"url": [f"https://pics.example.com/p/{int(rng.integers(0, 2**48)):012x}=w150-h150-k-no-p"]}
                for _ in range(int(rng.integers(1, 5)))
            ]
        resp = None
        if rng.random() < 0.07:
            resp = {"time": t + int(rng.integers(3_600_000, 30 * 86_400_000)), "text": _pick(rng, RESPONSES)}
        records.append(
            {
                "user_id": users[int(world.rev_user[r])],
                "name": person[int(world.rev_user[r])],
                "time": t,
                "rating": rating,
                "text": _review_text(rng, world, r, towns),
                "pics": pics,
                "resp": resp,
                "gmap_id": gmap[int(world.rev_item[r])],
            }
        )
    return records


def _dump(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False)


def _dirty_review_lines(rng: np.random.Generator, records: list[dict], gmap: list[str]) -> list[str]:
    """JSON lines with the dirt described in the module docstring mixed in, deterministically."""
    n = len(records)
    lines = [_dump(r) for r in records]
    extra: list[tuple[int, str]] = []  # (insert before original position >= 1, line)

    def count(share: float, floor: int) -> int:
        return max(floor, int(round(share * n)))

    for idx in rng.choice(n, size=count(0.003, 2), replace=False).tolist():  # null ratings
        rec = dict(records[idx], rating=None)
        lines[idx] = _dump(rec)
    for idx in rng.choice(n, size=count(0.004, 2), replace=False).tolist():  # verbatim duplicates
        extra.append((int(rng.integers(idx, n + 1)), lines[idx]))
    for k, idx in enumerate(rng.choice(n, size=count(0.003, 2), replace=False).tolist()):  # unknown business
        ghost = f"0x{0x8A00_0000_0000 + k:x}:0x{int(rng.integers(0, 2**60)):x}"
        extra.append((int(rng.integers(1, n + 1)), _dump(dict(records[idx], gmap_id=ghost))))
    for idx in rng.choice(n, size=count(0.002, 2), replace=False).tolist():  # later re-review
        rec = dict(records[idx])
        rec["time"] = int(rec["time"]) + int(rng.integers(86_400_000, 200 * 86_400_000))
        rec["rating"] = int(rng.integers(1, 6))
        extra.append((int(rng.integers(1, n + 1)), _dump(rec)))
    for idx in rng.choice(n, size=3, replace=False).tolist():  # missing user_id
        rec = {k: v for k, v in records[idx].items() if k != "user_id"}
        extra.append((int(rng.integers(1, n + 1)), _dump(rec)))
    for idx in rng.choice(n, size=2, replace=False).tolist():  # rating out of range
        extra.append((int(rng.integers(1, n + 1)), _dump(dict(records[idx], rating=0))))
    for idx in rng.choice(n, size=2, replace=False).tolist():  # truncated line
        line = lines[idx]
        extra.append((int(rng.integers(1, n + 1)), line[: max(5, len(line) // 2)]))
    extra.append((int(rng.integers(1, n + 1)), ""))  # blank line
    extra.append((int(rng.integers(1, n + 1)), _dump([records[0]["user_id"], records[0]["gmap_id"]])))
    # Stable insertion: by position, then by the order the dirt was made.
    extra_sorted = sorted(enumerate(extra), key=lambda e: (e[1][0], e[0]))
    out: list[str] = []
    j = 0
    for pos in range(n + 1):
        while j < len(extra_sorted) and extra_sorted[j][1][0] == pos:
            out.append(extra_sorted[j][1][1])
            j += 1
        if pos < n:
            out.append(lines[pos])
    return out


def _dirty_meta_lines(rng: np.random.Generator, records: list[dict]) -> list[str]:
    n = len(records)
    lines = [_dump(r) for r in records]
    extra: list[tuple[int, str]] = []
    for idx in rng.choice(n, size=max(1, n // 100), replace=False).tolist():
        extra.append((int(rng.integers(idx, n + 1)), lines[idx]))
    nameless = {k: v for k, v in records[int(rng.integers(0, n))].items() if k != "name"}
    nameless["gmap_id"] = "0x8b00000000:0x1"
    extra.append((int(rng.integers(1, n + 1)), _dump(nameless)))
    extra.append((int(rng.integers(1, n + 1)), lines[int(rng.integers(0, n))][:40]))
    extra_sorted = sorted(enumerate(extra), key=lambda e: (e[1][0], e[0]))
    out: list[str] = []
    j = 0
    for pos in range(n + 1):
        while j < len(extra_sorted) and extra_sorted[j][1][0] == pos:
            out.append(extra_sorted[j][1][1])
            j += 1
        if pos < n:
            out.append(lines[pos])
    return out


def _write_gz_lines(path: str, lines: list[str]) -> None:
    """gzip with no file name and mtime 0 in the header (same lines -> same bytes), atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
            for line in lines:
                gz.write(line.encode("utf-8") + b"\n")


def generate(
    out_dir: str,
    seed: int = DEFAULT_SEED,
    n_restaurants: int = DEFAULT_SIZES["n_restaurants"],
    n_users: int = DEFAULT_SIZES["n_users"],
    n_reviews: int = DEFAULT_SIZES["n_reviews"],
) -> tuple[str, str]:
    """Write ``reviews.json.gz`` and ``meta.json.gz`` into ``out_dir``; returns their paths."""
    world = simulate(seed, n_restaurants, n_users, n_reviews)
    rng = np.random.default_rng([seed, 1])  # rendering stream, independent of the world's
    gmap, users = _ids(rng, world)
    names = _business_names(rng, world)
    meta = _meta_records(rng, world, gmap, names)
    reviews = _review_records(rng, world, gmap, users)
    review_lines = _dirty_review_lines(rng, reviews, gmap)
    meta_lines = _dirty_meta_lines(rng, meta)
    os.makedirs(out_dir, exist_ok=True)
    reviews_path = os.path.join(out_dir, "reviews.json.gz")
    meta_path = os.path.join(out_dir, "meta.json.gz")
    _write_gz_lines(reviews_path, review_lines)
    _write_gz_lines(meta_path, meta_lines)
    return reviews_path, meta_path


# ---------------------------------------------------------------------------------------------
# the bundled dataset
# ---------------------------------------------------------------------------------------------
def _provenance(seed: int, sizes: dict) -> dict:
    # A fixed name, not __name__ (which is "__main__" under python -m).
    return {"generator": "recbole_dlrrec.data.sample", "version": GENERATOR_VERSION, "seed": seed, **sizes}


def _is_built(ds_dir: str, name: str, provenance: dict) -> bool:
    needed = [f"{name}.{s}" for s in ("train.inter", "valid.inter", "test.inter", "item", "user", "yaml")]
    needed += [side_file_name(name, suffix) for suffix in (ITEM_VEC_SUFFIX, USER_VEC_SUFFIX)]
    report = read_report(ds_dir, name)
    return (
        report is not None
        and report.get("source") == provenance
        and all(os.path.isfile(os.path.join(ds_dir, f)) for f in needed)
    )


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    """Exclusive advisory lock (POSIX); elsewhere a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_restaurants(
    data_path: str = "dataset",
    name: str = "restaurants",
    seed: int = DEFAULT_SEED,
    force: bool = False,
    encoder: Any = None,
    show_progress: bool = True,
    **sizes: int,
) -> str:
    """Build ``<data_path>/<name>/`` from generated data unless it is already there; return it.

    The raw sample goes to ``<data_path>/raw/<name>/``; conversion uses the time split and the
    converter's defaults. A dataset built from another seed, size or generator version is rebuilt.
    ``encoder`` is passed to the converter (default: the bundled MiniLM with its cache in
    ``<data_path>/.encoder_cache``). Concurrent callers wait on a lock file instead of both building.
    """
    unknown = set(sizes) - set(DEFAULT_SIZES)
    if unknown:
        raise TypeError(f"unknown size argument(s): {sorted(unknown)}")
    full_sizes = {**DEFAULT_SIZES, **sizes}
    provenance = _provenance(seed, full_sizes)
    ds_dir = os.path.join(data_path, name)
    if not force and _is_built(ds_dir, name, provenance):
        return ds_dir
    with _lock(os.path.join(data_path, "raw", f".{name}.lock")):
        if not force and _is_built(ds_dir, name, provenance):
            return ds_dir
        from recbole_dlrrec.data.google_local import convert

        started = time.perf_counter()
        logger.info("building dataset %s in %s from generated data (seed %d)", name, ds_dir, seed)
        raw_dir = os.path.join(data_path, "raw", name)
        try:
            reviews, meta = generate(raw_dir, seed=seed, **full_sizes)
        except OSError as exc:
            raise DatasetFolderError(f"{raw_dir}: cannot write the generated data: {exc.strerror or exc}") from None
        convert(
            reviews,
            meta,
            name,
            data_path,
            split="time",
            # No history file: its ~54k per-row texts would make the first use of the bundled
            # dataset take tens of minutes; DLRREC here reads the full user vector (user_text auto).
            user_history=False,
            encoder=encoder,
            show_progress=show_progress,
            provenance=provenance,
        )
        logger.info("dataset %s built in %.1f s", name, time.perf_counter() - started)
    return ds_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_dlrrec.data.sample",
        description="Generate the (made-up) restaurant reviews and build the RecBole dataset from them.",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", default="dataset", help="data_path root (default: dataset)")
    parser.add_argument("--name", default="restaurants")
    parser.add_argument("--force", action="store_true", help="rebuild even if the dataset exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    for key, value in DEFAULT_SIZES.items():
        parser.add_argument(f"--{key}", type=int, default=value, help=f"default {value}")
    args = parser.parse_args(argv)
    sizes = {key: getattr(args, key) for key in DEFAULT_SIZES}
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    started = time.perf_counter()
    try:
        ds_dir = ensure_restaurants(args.out, args.name, args.seed, args.force, show_progress=not args.quiet, **sizes)
    except InputError as exc:  # the converter's errors (files, paths) and EncoderInputError
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(f"{ds_dir} ready ({time.perf_counter() - started:.1f} s); see {os.path.join(ds_dir, 'REPORT.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
