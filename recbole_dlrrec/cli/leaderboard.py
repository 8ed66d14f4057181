"""Train many models x seeds on one dataset and write a leaderboard (md, csv, png).

    python run_leaderboard.py --dataset=ml-100k --seeds 3 --epochs 15
    python run_leaderboard.py --dataset=restaurants --models DLRREC,DLRM,DeepFM --seeds 1 --epochs 2
    python run_leaderboard.py --dataset=ml-100k --experiments          # + the paper's experiments
    python run_leaderboard.py --dataset=ml-100k --scenario cold_items  # valid and test on unseen items
    python run_leaderboard.py --dataset=ml-100k --scenario cold_items --cold_draws 3 --tune 20 --epochs 20

    python run_leaderboard.py --dataset=ml-100k --tune 20 --epochs 20   # the tuned board (headline)
    python run_leaderboard.py --dataset=ml-100k --tune 20 --epochs 20 --seeds 5 --search_seeds 3 --ablations

Tuned board (--tune N): every model gets the same search budget before its seeds run: N Ray Tune
trials on properties/tune/<MODEL>.yaml (over the shared ranges of properties/tune/shared.yaml),
drawn up front from the sampler seed, each trained to at most --epochs epochs with the same early
stopping on validation (--search_scheduler none, the default; `asha` prunes on the validation
metric of every epoch instead, --grace_period epochs before the first cut, default 3: faster,
but which trials it stops depends on their timing); the configuration with the best VALIDATION
score then runs over the seeds. --search_seeds K gives the headline models K searches and shows
the spread of their winners; --ablations runs DLRREC's selected config one switch at a time
(ablations.md). It goes to results/<NAME>-tuned/ beside the defaults
board results/<NAME>/; each model's search (space.yaml, trials.csv, best_config.yaml) is kept in
results/<NAME>-tuned/tuning/<MODEL>/ and reused by a rerun unless --retune or unless the space,
N, the epoch cap, the scheduler (and ASHA's grace period), the dataset or the model's code changed.

Cold items (--scenario cold_items): each of --cold_draws draws (draw seeds 2020, 2021, ...) holds
out its own --cold_fraction of the items for valid and as many others for test, builds
<NAME>-cold-d<SEED> and runs the board on it (results/<NAME>-cold-d<SEED>[-tuned]/, resumable);
results/<NAME>-cold[-tuned]/ pools the draws (bootstrap over items within each draw).

Outputs go to results/<NAME>/: leaderboard.md
and .csv, leaderboard_auc.png, significance.md/.csv, cells/ (one JSON + per-row test scores per
model and seed; a rerun skips finished cells unless --force). Any other --key=value is a RecBole
/ plugin config setting given to every model (e.g. --embedding_size=16 --stopping_step=5).
"""

from __future__ import annotations

import argparse
import os
import sys

from recbole_dlrrec.cli.main import prog
from recbole_dlrrec.cli.train import exit_on_interrupt, parse_overrides

SCENARIOS = ("cold_items",)


def parse_args(argv):
    from recbole_dlrrec.experiments.board_cells import DEFAULT_MODELS, DEFAULT_RESULTS_DIR, DEFAULT_SEED_COUNT

    parser = argparse.ArgumentParser(prog=prog("leaderboard"), description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", "-d", default="restaurants", help="dataset name (default restaurants)")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated model names (default: every DLRREC variant, DLRM and 10 RecBole baselines; "
        "optional: DCNV2Text, DeepFMText, WideDeepText, baselines with the text vectors as inputs)",
    )
    parser.add_argument(
        "--seeds", type=int, default=DEFAULT_SEED_COUNT, help="how many seeds (2020, 2021, ...); default 3"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="epoch budget for every model (default: config epochs)"
    )
    parser.add_argument("--force", action="store_true", help="rerun cells that are already finished")
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also run the paper's experiments (ablation, reduction size, V0, SWING audit)",
    )
    parser.add_argument(
        "--experiment_seeds",
        type=int,
        default=None,
        help="seeds for the experiments that train their own cells (reduction size, V0 matched); default --seeds",
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=None,
        help="cold_items: per draw, build NAME-cold-d<SEED> (10%% of items only in valid, 10%% only in test) "
        "and run the board on it",
    )
    parser.add_argument(
        "--cold_fraction", type=float, default=0.1, help="share of items held out for test, and for valid (cold_items)"
    )
    parser.add_argument(
        "--cold_draws",
        type=int,
        default=None,
        help="cold_items: how many draws of the held-out items (draw seeds 2020, 2021, ...), pooled; default 1",
    )
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="a line for the leaderboard header, e.g. what was cut to fit the time budget (repeatable)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared machine more threads spin and run slower)",
    )
    parser.add_argument(
        "--tune",
        type=int,
        default=None,
        metavar="N",
        help="the tuned board: N search trials per model before its seeds run (needs --epochs)",
    )
    parser.add_argument(
        "--retune", action="store_true", help="--tune: search again even where a saved search is up to date"
    )
    parser.add_argument(
        "--search_scheduler",
        choices=("none", "asha"),
        default=None,
        help="--tune: none (default): every trial to --epochs, no pruning, winner independent of trial timing; "
        "asha: prune on every epoch's validation score (faster, timing-dependent)",
    )
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="--tune: then DLRREC at its selected config with one switch changed at a time (heads, positives, "
        "reduction, V0 without heads, user text) over the seeds; tested against DLRREC in ablations.md",
    )
    parser.add_argument(
        "--search_seeds",
        type=int,
        default=1,
        metavar="K",
        help="--tune: K independent searches (sampler seeds 2020, 2021, ...) for the headline models; each "
        "winner runs over the seeds and the board shows the spread across searches (default 1)",
    )
    parser.add_argument(
        "--search_seed_models",
        default=None,
        help="--search_seeds: comma-separated models that get K searches (default DLRREC, DLRREC-V0, DLRM and "
        "the three other baselines best on validation)",
    )
    parser.add_argument(
        "--trial_time_budget_s",
        type=float,
        default=None,
        metavar="S",
        help="--tune: each search trial stops after the epoch that takes it past S seconds (large datasets; "
        "default: no limit)",
    )
    parser.add_argument(
        "--grace_period",
        type=int,
        default=None,
        help="--tune --search_scheduler asha: epochs every trial gets before it can be stopped (default and minimum 3)",
    )
    parser.add_argument("--allow_short_grace", action="store_true", help=argparse.SUPPRESS)  # tests only: grace < 3
    parser.add_argument(
        "--tune_cpus",
        type=int,
        default=None,
        help="--tune: CPUs of the local Ray (trials in parallel = tune_cpus / threads); default all",
    )
    parser.add_argument(
        "--results_dir", default=DEFAULT_RESULTS_DIR, help="where results/<NAME>/ goes (default results)"
    )
    args, rest = parser.parse_known_args(argv)
    overrides = parse_overrides(parser, rest)
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be >= 1, got {args.epochs}")
        overrides["epochs"] = args.epochs
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.experiment_seeds is not None and args.experiment_seeds < 1:
        parser.error(f"--experiment_seeds must be >= 1, got {args.experiment_seeds}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.cold_draws is not None and args.scenario != "cold_items":
        parser.error("--cold_draws needs --scenario cold_items")
    args.cold_draws = 1 if args.cold_draws is None else args.cold_draws
    if args.cold_draws < 1:
        parser.error(f"--cold_draws must be >= 1, got {args.cold_draws}")
    if args.cold_draws > 1 and args.experiments:
        parser.error("--experiments runs on one board; run it with one cold draw")
    if args.tune is None:
        for flag in ("retune", "allow_short_grace"):
            if getattr(args, flag):
                parser.error(f"--{flag} needs --tune N")
        if (
            args.grace_period is not None
            or args.tune_cpus is not None
            or args.search_scheduler is not None
            or args.trial_time_budget_s is not None
        ):
            parser.error("--grace_period, --search_scheduler, --trial_time_budget_s and --tune_cpus need --tune N")
        if args.search_seeds != 1 or args.search_seed_models is not None or args.ablations:
            parser.error("--search_seeds, --search_seed_models and --ablations need --tune N")
    else:
        if args.grace_period is not None and args.search_scheduler != "asha":
            parser.error("--grace_period is ASHA's: it needs --search_scheduler asha")
        if args.epochs is None:
            parser.error("--tune needs --epochs (the epoch cap of every trial and every cell)")
        if args.experiments:
            parser.error("--experiments runs on the defaults board; run it without --tune")
        if args.tune_cpus is not None and args.tune_cpus < 1:
            parser.error(f"--tune_cpus must be >= 1, got {args.tune_cpus}")
        if args.search_seeds < 1:
            parser.error(f"--search_seeds must be >= 1, got {args.search_seeds}")
        if args.ablations and "DLRREC" not in _names(args.models):
            parser.error("--ablations needs DLRREC among --models (its selected config is what they change)")
    models = _names(args.models)
    if not models:
        parser.error("--models is empty")
    if len(set(m.lower() for m in models)) != len(models):
        parser.error(f"--models names a model twice: {args.models}")
    return args, models, overrides


def _names(text: str):
    return [m.strip() for m in text.split(",") if m.strip()]


def check_inputs(models, dataset, overrides) -> None:
    """Fail before any training on an unknown model, a bad --key=value or a bad value in a
    model's layered config (config/stack.py; one-line ConfigKeyError / UnknownModelError)."""
    from recbole_dlrrec.config.stack import ConfigStack

    for model in models:
        ConfigStack(model, dataset, (), overrides).check()


def _run_board(args, dataset: str, models, overrides: dict, budget, notes: list, cold: bool = False):
    """The tuned board (with a budget; then its ablations) or the defaults board of `dataset`: (board, paths)."""
    from recbole_dlrrec.experiments import board_cells, board_report, tuned_board

    if budget is not None:
        board, paths, _ = tuned_board.run_tuned_leaderboard(
            dataset,
            models,
            args.seeds,
            budget,
            overrides=overrides,
            force=args.force,
            retune=args.retune,
            results_dir=args.results_dir,
            notes=notes,
            threads=args.threads,
            plan=tuned_board.SearchPlan(
                args.search_seeds, None if args.search_seed_models is None else tuple(_names(args.search_seed_models))
            ),
        )
        if args.ablations:
            from recbole_dlrrec.experiments.ablations import run_ablations

            run_ablations(board, board_cells.seeds_for(args.seeds))
        return board, paths
    notes.insert(
        0,
        f"Defaults board: every model at its config defaults, no tuning. The tuned board (the same "
        f"search budget for every model: run_leaderboard.py --tune N) goes to "
        f"`{tuned_board.tuned_out_name(dataset)}/`.",
    )
    return board_report.run_leaderboard(
        dataset,
        models,
        args.seeds,
        overrides=overrides,
        force=args.force,
        results_dir=args.results_dir,
        notes=notes,
        title="Cold-item leaderboard (defaults)" if cold else "Leaderboard (defaults)",
        threads=args.threads,
    )


def _run_cold_scenario(args, models, overrides: dict, budget):
    """Each cold draw's board, then the report pooling them (cold_draws.py): (last board, pooled paths)."""
    from recbole_dlrrec.experiments import board_cells, cold_draws, tuned_board
    from recbole_dlrrec.experiments.cold_start import cold_name

    boards = []
    scheme = (
        f"{args.cold_fraction:.0%} of the items have all their rows in test and another {args.cold_fraction:.0%} "
        "all theirs in valid (the validation split), none in train; user text vectors dropped (see the dataset's "
        "cold_split.json)."
    )

    def run_draw(name: str, seed: int):
        note = f"Scenario cold_items, draw seed {seed} of `{args.dataset}`: {scheme}"
        board, _ = _run_board(args, name, models, overrides, budget, [note, *args.note], cold=True)
        boards.append(board)
        return board

    out = cold_name(args.dataset)
    paths = cold_draws.run_cold_draws(
        args.dataset,
        args.cold_draws,
        run_draw,
        models,
        board_cells.seeds_for(args.seeds),
        os.path.join(args.results_dir, tuned_board.tuned_out_name(out) if budget is not None else out),
        data_path=overrides.get("data_path"),
        fraction=args.cold_fraction,
        title=f"Cold-item {'tuned ' if budget is not None else ''}leaderboard over {args.cold_draws} draw(s)",
        notes=[f"Scenario cold_items of `{args.dataset}`: {scheme}", *args.note],
        log=board_cells.default_log,
    )
    return boards[-1], paths


@exit_on_interrupt("interrupted; rerun the same command to continue (finished cells are kept)")
def main(argv=None) -> int:
    from recbole_dlrrec import patches

    patches.apply()  # before torch is imported, here by parse_args (patches.py, fix 4)
    args, models, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    import warnings

    from recbole_dlrrec.runtime.threads import use_threads

    # Before numba / torch start their thread pools: SWING's numba kernels run through the same
    # OpenMP runtime as torch, and a 2-thread numba launch leaves torch's later parallel regions
    # on 2 spinning threads too (10x slower epochs on a busy 2-core machine).
    use_threads(args.threads)

    from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError
    from recbole_dlrrec.experiments import board_cells, tuned_board

    if args.experiments:
        from recbole_dlrrec.experiments import (
            paper as experiments,  # imported now: the run may outlast edits to the source
        )
    for module in ("recbole", "torch", "pandas"):  # RecBole 1.2.1's own deprecation noise, once per cell
        warnings.filterwarnings("ignore", category=FutureWarning, module=module)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)

    budget = (
        None
        if args.tune is None
        else tuned_board.TuneBudget(
            trials=args.tune,
            max_epochs=args.epochs,
            scheduler=args.search_scheduler or "none",
            grace_period=tuned_board.MIN_GRACE_PERIOD if args.grace_period is None else args.grace_period,
            cpus_per_trial=float(args.threads),
            num_cpus=args.tune_cpus,
            allow_short_grace=args.allow_short_grace,
            trial_time_budget_s=args.trial_time_budget_s,
        )
    )
    try:
        check_inputs(models, args.dataset, overrides)
        if budget is not None:  # the budget, the dataset, every model's space file: before any work
            tuned_board.check_tuned_inputs(args.dataset, models, overrides, budget)
        if args.scenario == "cold_items":
            board, paths = _run_cold_scenario(args, models, overrides, budget)
        else:
            board, paths = _run_board(args, args.dataset, models, overrides, budget, list(args.note))
        if args.experiments:
            notes = list(args.note)
            seeds = board_cells.seeds_for(args.seeds)
            extra = board_cells.seeds_for(args.experiment_seeds) if args.experiment_seeds else None
            if extra:
                notes = [
                    *notes,
                    f"Reduction-size and matched-V0 cells use {len(extra)} seed(s) ({', '.join(map(str, extra))}) "
                    "to fit the time budget; the other tables use every leaderboard seed.",
                ]
            experiments.run_all(board, seeds, notes=notes, new_cell_seeds=extra)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(paths["md"])
    return 0
