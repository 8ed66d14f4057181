"""Build (or load) the contrastive neighbour cache of a dataset's TRAIN split and audit it.

    recbole-dlrrec swing --dataset=NAME [--topk K] [--similarity S] [--compare]
                         [--model M] [--config_files a.yaml b.yaml]

The neighbours are those DLRREC's contrastive heads draw positives from: the model config's
``cl_similarity`` (swing, itemcf_cosine or jaccard; the model's YAML sets the default), and
the output names it. Prints where the cache is and whether it was loaded or computed, per side how many
users / items have neighbours and the score quantiles, and saves the score histograms as a PNG
beside the cache file. ``--similarity`` audits another ``cl_similarity``; ``--compare`` also prints, for
every similarity, how often the neighbour pairs share the item's main category and their mean
text cosine, each beside its chance level (swing/audit.py ``neighbour_agreement``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from recbole_dlrrec.cli.main import prog


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=prog("swing"),
        description="Build (or load) a dataset's contrastive neighbours (the model's cl_similarity: "
        "swing, itemcf_cosine or jaccard) on its TRAIN split and audit them.",
    )
    parser.add_argument("--dataset", required=True, help="RecBole dataset name")
    parser.add_argument("--model", default="DLRREC", help="model whose config is used")
    parser.add_argument("--topk", type=int, default=None, help="overrides swing_topk")
    parser.add_argument("--similarity", default=None, help="overrides the model's cl_similarity")
    parser.add_argument(
        "--compare", action="store_true", help="category / text agreement of the neighbour pairs of every cl_similarity"
    )
    parser.add_argument(
        "--config_files", nargs="+", default=None, help="YAML config files (space separated, as in run_recbole.py)"
    )
    return parser.parse_args(argv)


def audit(args: argparse.Namespace) -> dict:
    """Build the config and the TRAIN split, load or compute the neighbours, print the summary.
    Returns summary, cache (path), histogram (path), seconds and loaded."""
    from recbole_dlrrec.runtime.quick_start import build_config, load_splits
    from recbole_dlrrec.swing.audit import plot_score_histogram, summarize
    from recbole_dlrrec.swing.cache import similarity_from_config, swing_neighbours_and_cache

    config_files = None
    if args.config_files:
        config_files = [name for chunk in args.config_files for name in chunk.split()]
    config_dict = {} if args.topk is None else {"swing_topk": args.topk}
    if args.similarity is not None:
        config_dict["cl_similarity"] = args.similarity
    config = build_config(args.model, args.dataset, config_file_list=config_files, config_dict=config_dict)
    dataset, train_data, _, _ = load_splits(config)
    start = time.perf_counter()
    neighbours, result = swing_neighbours_and_cache(config, train_data.dataset, logger=None, progress=True)
    elapsed = time.perf_counter() - start
    summary = summarize(neighbours)
    similarity = similarity_from_config(config)
    png = plot_score_histogram(neighbours, os.path.splitext(result.path)[0] + "_hist.png", similarity=similarity)
    print(
        f"{similarity} neighbours for dataset {args.dataset}: {'loaded' if result.loaded else 'computed'} "
        f"in {elapsed:.2f} s; cache {result.path}"
    )
    for side, info in summary.items():
        quantiles = " ".join(f"{name}={value:.4g}" for name, value in info["score_quantiles"].items())
        print(
            f"  {side}: {info['with_neighbours']}/{info['nodes']} with neighbours, "
            f"mean {info['mean_neighbours']:.1f} neighbours; scores {quantiles or '(none)'}"
        )
    print(f"  histogram: {png}")
    agreement = compare_similarities(config, dataset, train_data.dataset) if args.compare else None
    return {
        "similarity": similarity,
        "summary": summary,
        "cache": result.path,
        "histogram": png,
        "seconds": elapsed,
        "loaded": result.loaded,
        "agreement": agreement,
    }


def compare_similarities(config, dataset, train_dataset) -> list:
    """Per cl_similarity and side: neighbour_agreement of the kept pairs (categories: the items'
    main category when the dataset has one; text: the side's vectors when configured). Prints a
    table and returns its rows."""
    from recbole_dlrrec.data.text_vectors import SIDES, load_text_table
    from recbole_dlrrec.swing.audit import neighbour_agreement
    from recbole_dlrrec.swing.cache import swing_for_dataset
    from recbole_dlrrec.swing.similarity import SIMILARITIES

    categories = None
    if getattr(dataset, "item_feat", None) is not None:
        from recbole_dlrrec.experiments.paper_swing_audit import main_categories

        field, labels = main_categories(dataset)
        categories = labels if field is not None else None
    texts = {
        side: load_text_table(config, train_dataset, side) if SIDES[side][1] in config else None
        for side in ("user", "item")
    }
    rows = []
    original = config["cl_similarity"]  # build_config's configs always hold it (swing.yaml)
    try:
        for similarity in SIMILARITIES:
            config["cl_similarity"] = similarity
            neighbours = swing_for_dataset(config, train_dataset, progress=False)
            for side, table in (("user", neighbours.users), ("item", neighbours.items)):
                text = texts[side]
                rows.append(
                    {
                        "similarity": similarity,
                        "side": side,
                        **neighbour_agreement(
                            table,
                            categories if side == "item" else None,
                            None if text is None else text.vectors.numpy(),
                            None if text is None else text.has_vector.numpy(),
                        ),
                    }
                )
    finally:
        config["cl_similarity"] = original
    print("  neighbour pairs: same main category (chance) | mean text cosine (random pairs)")
    for row in rows:
        category = f"{row['same_category']:.3f} ({row['same_category_chance']:.3f})" if "same_category" in row else "-"
        cosine = f"{row['text_cosine']:.3f} ({row['text_cosine_random']:.3f})" if "text_cosine" in row else "-"
        print(f"  {row['similarity']:>13} {row['side']:>4}: {row['pairs']} pairs | {category} | {cosine}")
    return rows


def main(argv=None) -> int:
    from recbole_dlrrec import patches

    patches.apply()  # before torch is imported (patches.py, fix 4)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError

    try:
        audit(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    return 0
