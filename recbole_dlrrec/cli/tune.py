"""Tune a model's hyperparameters with Ray Tune (ASHA on the validation metric of every epoch).

    python run_tune.py --model=DLRREC --dataset=restaurants --num_samples=20 --max_epochs=10
    python run_tune.py --model=DeepFM --dataset=ml-100k --num_samples=12 --learning_rate=0.001
    python run_tune.py --dataset=restaurants --name=RUN --resume      # continue after Ctrl-C or a kill

The space comes from properties/tune/<MODEL>.yaml unless --space names another file (format in
that file's header). Any other --key=value is a fixed override for every trial, as in
run_recbole.py. Trials select on validation only; the best config is then re-trained once and
evaluated on test (not with --no_test). Outputs: results/tune/<dataset>/<run>/ (trials.csv,
best_config.yaml, best_test_result.json, PNGs); see recbole_dlrrec/experiments/tune.py.
--resume continues a run with every option it was started with (its run_spec.json); an option
given again with another value is refused (one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys

from recbole_dlrrec.cli.main import prog
from recbole_dlrrec.cli.train import EXIT_INTERRUPTED, exit_on_interrupt, parse_overrides


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=prog("tune"), description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", "-m", default=None, help="model name (default DLRREC; on --resume, the run's)")
    parser.add_argument("--dataset", "-d", default="restaurants", help="dataset name (default restaurants)")
    parser.add_argument("--num_samples", type=int, default=None, help="number of trials (required unless --resume)")
    parser.add_argument(
        "--max_epochs", type=int, default=None, help="epochs per trial at most (default: the config's epochs)"
    )
    parser.add_argument("--space", default=None, help="search space YAML (default properties/tune/<MODEL>.yaml)")
    parser.add_argument("--config_files", default=None, help="space- or comma-separated YAML files, as run_recbole.py")
    parser.add_argument(
        "--address", default=None, help="join this Ray cluster (e.g. auto or HOST:6379); default: start Ray here"
    )
    parser.add_argument(
        "--num_cpus", type=int, default=None, help="CPUs of the local Ray (default: all of this machine)"
    )
    parser.add_argument("--cpus_per_trial", type=float, default=None, help="CPUs per trial (default 1)")
    parser.add_argument("--gpus_per_trial", type=float, default=None, help="GPUs per trial (default 0)")
    parser.add_argument(
        "--search_scheduler",
        choices=("none", "asha"),
        default=None,
        help="asha (default): prune on every epoch's validation score, fast but timing-dependent; none: "
        "every trial to --max_epochs (RecBole's early stopping), configurations drawn from --seed up front",
    )
    parser.add_argument(
        "--grace_period", type=int, default=None, help="ASHA: epochs before a trial can be stopped (default 1)"
    )
    parser.add_argument(
        "--reduction_factor", type=float, default=None, help="ASHA: keep 1/this at each rung (default 3)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted run --name with the options it was started with"
    )
    parser.add_argument(
        "--trial_time_budget_s",
        type=float,
        default=None,
        help="stop a trial after the epoch that takes it past this many seconds (default: no limit)",
    )
    parser.add_argument("--name", default=None, help="run name (default <MODEL>-<time>)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of every trial and of the sampler (default: the config's seed)"
    )
    parser.add_argument(
        "--no_test", action="store_true", help="skip re-training the best config and its test evaluation"
    )
    parser.add_argument("--out_root", default=None, help="output root (default results/tune)")
    args, rest = parser.parse_known_args(argv)
    fixed = parse_overrides(parser, rest)
    if args.num_samples is None and not args.resume:
        parser.error("--num_samples is required (unless --resume)")
    files = args.config_files.replace(",", " ").split() if args.config_files else []
    return args, files, fixed


@exit_on_interrupt("interrupted before the search started; rerun the same command")
def main(argv=None) -> int:
    args, files, fixed = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_dlrrec import patches

    patches.apply()  # before torch is imported (patches.py, fix 4)
    from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError
    from recbole_dlrrec.experiments import tune

    # Options not given stay None: a new run takes the defaults, a resumed one its own values.
    request = tune.TuneRequest(
        model=args.model,
        dataset=args.dataset,
        num_samples=args.num_samples,
        max_epochs=args.max_epochs,
        space_file=args.space,
        fixed=fixed,
        config_files=files,
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        resume=args.resume,
        name=args.name,
        seed=args.seed,
        num_cpus=args.num_cpus,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        scheduler=args.search_scheduler,
        evaluate_best=False if args.no_test else None,
        trial_time_budget_s=args.trial_time_budget_s,
        out_root=args.out_root or tune.TUNE_ROOT,
    )
    try:
        request = tune.with_run_name(request)  # named here: a Ctrl-C line names the run to resume
        outcome = tune.run_search(request)
    except KeyboardInterrupt:  # before or after Ray's own Ctrl-C handling of the search
        print(tune.interrupted_line(request), file=sys.stderr)
        return EXIT_INTERRUPTED
    except InputError as exc:  # space file, unknown key or bad value, run name, dataset
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    if outcome.interrupted:
        print(tune.interrupted_line(request), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0
