"""The command line: a thin layer over the Python API. Every user error ends as one line and a non-zero exit."""

from __future__ import annotations

import argparse
import errno
import sys
import time
from pathlib import Path

from . import samplers
from .arguments import (MAX_SAMPLES, SEED, OneLineParser, add_config_options, bounded, config_from_args, data_dir,
                        image_size, overrides_from_args, parse_indices, parse_pairs, parse_seeds)
from .config import PRESETS
from .data.registry import ground_truth_names, names_help as dataset_names
from .errors import BetaVAEError, first_line, is_out_of_memory
from .version import __version__

def cmd_train(args: argparse.Namespace) -> None:
    """A new run (betavae.train), or with --resume the continued one (betavae.resume); the options given must be
    those of the mode."""
    from .api import resume, train

    if args.seeds is not None:
        cmd_train_seeds(args)
        return
    if args.jobs is not None:
        raise BetaVAEError("--jobs applies to --seeds LIST only (runs of several seeds trained side by side)")
    if args.resume:
        from .training.resuming import resumable_options

        elsewhere = Path(args.runs).resolve() != Path(args.resume).resolve().parent  # the original command's --runs
        ignored = [option for option, given in (("--name", args.name), ("--runs", args.runs != "runs" and elsewhere),
                                                ("--preset", args.preset), ("--config", args.config),
                                                ("--overwrite", args.overwrite)) if given]
        if ignored:
            raise BetaVAEError(f"{', '.join(ignored)} cannot be used with --resume, which continues {args.resume} "
                               "as it is; leave them out")
        changes = resumable_options(args.resume, overrides_from_args(args))
        figures = False if args.no_figures else (True if args.figures else None)  # None: as the run did before
        run_dir = resume(args.resume, **changes, figures=figures, from_best=args.from_best,
                         data_changed_ok=args.data_changed_ok)
    else:
        if args.from_best or args.data_changed_ok or args.figures:
            raise BetaVAEError("--from-best, --data-changed-ok and --figures apply to --resume RUN only")
        run_dir = train(config_from_args(args), preset=args.preset, name=args.name, runs=args.runs,
                        figures=not args.no_figures, overwrite=args.overwrite)
    print(f"run finished: {run_dir}")


def cmd_train_seeds(args: argparse.Namespace) -> None:
    """train --seeds: one run per seed in runs/NAME/seed-N, ranked by UDR, the best marked (betavae.train_seeds);
    run again with the same --name, it continues the seeds not finished."""
    from .api import check_run_name, run_name
    from .evaluation.udr import format_table
    from .sweep import check_seeds, share_cores, train_seeds

    given = [option for option, on in (("--resume", args.resume), ("--overwrite", args.overwrite),
                                       ("--seed", args.cfg_seed), ("--figures", args.figures),
                                       ("--from-best", args.from_best), ("--data-changed-ok", args.data_changed_ok))
             if on]
    if given:
        raise BetaVAEError(f"{', '.join(given)} cannot be used with --seeds, which trains one run per seed (run the "
                           "same command again to continue it); leave them out")
    config = share_cores(config_from_args(args), args.jobs or 1)  # refusals first, then the line below
    check_seeds(args.seeds)
    name = check_run_name(args.name, args.runs) if args.name is not None else run_name(args.preset, config)
    parent = Path(args.runs) / name
    print(f"betavae: seeds {','.join(map(str, args.seeds))} into {parent}/seed-N; to continue after an interruption, "
          f"run the same command with --name {name} (finished seeds are kept)", file=sys.stderr)
    result = train_seeds(config, parent, args.seeds, args.jobs or 1, figures=not args.no_figures,
                         log=lambda line: print(line, file=sys.stderr))
    print(format_table(result))
    print(f"ranking in {parent / 'udr.json'}; every seed's numbers, the best marked, in {parent / 'summary.md'}")


def cmd_presets(args: argparse.Namespace) -> None:
    for name, values in PRESETS.items():
        print(f"{name:12s} " + ", ".join(f"{k}={v}" for k, v in values.items()))


def cmd_fetch(args: argparse.Namespace) -> None:
    from .data import fetch

    print(fetch(args.dataset, args.data_dir, args.image_size))


def finished_run(args: argparse.Namespace):
    """The finished run a figure command draws from (and writes its figure beside)."""
    from .runs import Run

    run = Run.open(args.run, finished=True)
    run.require_writable()
    return run


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from .pictures import run_figures

    print(run_figures.reconstruct(finished_run(args), args.indices, args.split))


def cmd_sample(args: argparse.Namespace) -> None:
    from .pictures import run_figures

    print(run_figures.sample(finished_run(args), args.n, args.seed, args.draw, args.sampler, args.components,
                             args.digit))


def cmd_interpolate(args: argparse.Namespace) -> None:
    from .pictures import run_figures

    print(run_figures.interpolate(finished_run(args), args.pairs, args.images, args.steps, args.method))


def cmd_traverse(args: argparse.Namespace) -> None:
    from .pictures import run_figures

    print(run_figures.traverse(finished_run(args), args.index, args.span))


def cmd_latent_map(args: argparse.Namespace) -> None:
    from .pictures import run_figures

    print(run_figures.latent_map(finished_run(args), args.method))


def cmd_report(args: argparse.Namespace) -> None:
    from .pictures.report import missing_figures, write_report

    run = finished_run(args)
    print(write_report(run))
    if missing_figures(run):
        print(f"betavae: note: the report lacks {', '.join(missing_figures(run))}, which training draws at its end; a "
              "run trained with --no-figures has none", file=sys.stderr)


def cmd_curves(args: argparse.Namespace) -> None:
    from .pictures.run_figures import save_curves
    from .runs import Run

    run = Run.open(args.run)
    run.require_writable()
    print(save_curves(run))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.evaluate import EVALUATION, evaluate, format_table

    result = evaluate(args.run, args.split, args.importance_samples, args.repeats, args.samples, args.seed,
                      args.classifier, probes=not args.no_probes, log=lambda line: print(line, file=sys.stderr))
    print(format_table(result))
    print(f"written: {Path(result['run']) / EVALUATION}")


def cmd_disentanglement(args: argparse.Namespace) -> None:
    from .api import disentangle
    from .evaluation.factors import format_table

    print(format_table(disentangle(args.run, args.seed, args.data_dir)))


def cmd_select(args: argparse.Namespace) -> None:
    from .api import select
    from .evaluation.udr import format_table

    print(format_table(select(args.run, args.n, args.variant, args.seed)))


def cmd_classifier(args: argparse.Namespace) -> None:
    from .data import load
    from .evaluation.classifier import default_classifier, load_classifier, save_classifier, train_classifier

    path = Path(args.out) if args.out else default_classifier(args.dataset)
    if path is None:
        raise BetaVAEError(f"no default place for a classifier of {args.dataset}; give one with --out FILE "
                           "(and pass it to evaluate with --classifier FILE)")
    if path.is_dir() or not path.parent.is_dir():  # said before training, not after
        raise BetaVAEError(f"--out {path} must name a file in an existing folder (it is a folder, or its folder is "
                           "missing); give a file path such as classifier.safetensors")
    if path.exists():  # replaced only when it is a classifier betavae wrote
        try:
            load_classifier(path)
        except BetaVAEError:
            raise BetaVAEError(f"--out {path} is a file betavae did not write (not a classifier), which is never "
                               "overwritten; give another path") from None
    data = load(args.dataset, args.data_dir, args.val_size, image_size=args.image_size)
    model, test_accuracy = train_classifier(data, args.epochs, args.seed)
    save_classifier(model, path, test_accuracy)
    print(f"classifier test accuracy {test_accuracy:.4f}; saved {path}")


def cmd_sweep(args: argparse.Namespace) -> None:
    from .api import check_run_name
    from .sweep import parse_vary, sweep

    vary = parse_vary([*(["beta=" + args.beta] if args.beta else []), *args.vary])
    if not vary:
        raise BetaVAEError("say what the sweep varies: --vary NAME=V1,V2 (e.g. --vary gamma=10,35,100) or --beta LIST")
    fixed = sorted(set(overrides_from_args(args)) & set(vary))
    if fixed:
        raise BetaVAEError(f"{fixed[0]} is both given (--{fixed[0].replace('_', '-')}) and varied; give its values "
                           "once, with --vary")
    base = config_from_args(args)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise BetaVAEError(f"--seeds takes integers like 0,1,2, got {args.seeds!r}") from None
    name = check_run_name(args.name, args.runs) if args.name is not None else f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = sweep(base, Path(args.runs) / name, vary, seeds, args.backend, args.figures,
                 log=lambda line: print(line, file=sys.stderr), jobs=args.jobs)
    print((Path(args.runs) / name / "summary.md").read_text(), end="")
    print(f"summary and rate-distortion figure in {Path(args.runs) / name} ({len(rows)} points)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="betavae", description=__doc__)
    parser.add_argument("--version", action="version", version=f"betavae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model into runs/<name>", description=
                                "Train a beta-VAE. Configuration: preset, then --config file, then options.")
    train.add_argument("--preset", choices=list(PRESETS), default=None, help="named configuration (default betavae)")
    train.add_argument("--config", help="TOML file of configuration keys")
    train.add_argument("--name", help="run name (default <preset>-<dataset>-<time>)")
    train.add_argument("--runs", default="runs", help="folder that holds the runs (default runs)")
    train.add_argument("--resume", metavar="RUN", help="continue a run exactly where it stopped (or finish it)")
    train.add_argument("--from-best", action="store_true",
                       help="with --resume: continue from the trained epoch (1 on) of lowest held-out negative ELBO "
                            "(with --lr, say)")
    train.add_argument("--data-changed-ok", action="store_true",
                       help="with --resume: continue although the data changed since the run started")
    train.add_argument("--overwrite", action="store_true", help="replace the run already under --name")
    train.add_argument("--seeds", type=parse_seeds, metavar="LIST",
                       help="one run per seed (e.g. 1,2,3,4,5) in --runs/NAME/seed-N, then ranked by UDR (as betavae "
                            "select) and the best marked; run again to continue")
    train.add_argument("--jobs", type=bounded(int, 1, 1024), metavar="N",
                       help="with --seeds: runs trained side by side (default 1), each with --threads (default: the "
                            "cores shared out)")
    drawing = train.add_mutually_exclusive_group()
    drawing.add_argument("--no-figures", action="store_true", help="skip the per-epoch figures (a resume remembers)")
    drawing.add_argument("--figures", action="store_true", help="with --resume: draw figures for a run that had none")
    add_config_options(train)
    train.set_defaults(func=cmd_train)

    presets = commands.add_parser("presets", help="list the named configurations")
    presets.set_defaults(func=cmd_presets)

    def figure_parser(name: str, help: str, handler) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("run", metavar="RUN", help="a finished run folder, e.g. runs/betavae-mnist-...")
        sub.set_defaults(func=handler)
        return sub

    sub = figure_parser("reconstruct", "ground truth over reconstruction", cmd_reconstruct)
    sub.add_argument("--indices", type=parse_indices, help="image indices, e.g. 0,1,2 (default the first 10)")
    sub.add_argument("--split", default="val", choices=["train", "val", "test"])
    sub = figure_parser("sample", "decode z drawn from a sampler: the prior N(0, I), a mixture fitted to the training "
                                  "codes, or a chosen digit's mixture", cmd_sample)
    sub.add_argument("--n", type=bounded(int, 1, MAX_SAMPLES), default=64, help=f"images, 1 to {MAX_SAMPLES}")
    sub.add_argument("--seed", type=SEED, help="default: the run's seed + 2, the seed of the samples training draws")
    sub.add_argument("--draw", action="store_true", help="show draws of the likelihood (Bernoulli: 0/1 pixels) instead of means")
    sub.add_argument("--sampler", choices=samplers.NAMES, default=samplers.DEFAULT,
                     help=f"{samplers.HELP} (default {samplers.DEFAULT})")
    sub.add_argument("--components", type=bounded(int, 1, 1000), help=samplers.COMPONENTS_HELP)
    sub.add_argument("--digit", type=int,
                     help=f"with --sampler {' or '.join(samplers.registry.by_label())}: the label to draw")
    sub = figure_parser("interpolate", "walk between the posterior means of two images", cmd_interpolate)
    sub.add_argument("--pairs", type=parse_pairs, help="index pairs into the validation split (the training split when the run has "
                     "none), e.g. 0:1,2:3 (default 4 pairs)")
    sub.add_argument("--images", nargs=2, metavar="PNG", help="two image files instead of pairs")
    sub.add_argument("--steps", type=bounded(int, 2, 1000), default=16, help="images along the walk, ends included")
    sub.add_argument("--method", choices=["linear", "spherical"], default="linear")
    sub = figure_parser("traverse", "sweep each latent dimension around an image's mean", cmd_traverse)
    sub.add_argument("--index", type=int, default=0, help="index of an image of the validation split (the training split when "
                     "the run has none)")
    sub.add_argument("--span", type=bounded(float, 1e-6, 1e3), default=3.0,
                     help="how far from the mean, in prior sds (at most 1000)")
    sub = figure_parser("latent-map", "posterior means in 2-D, coloured by class, at the captured epochs",
                        cmd_latent_map)
    sub.add_argument("--method", choices=["pca", "tsne", "umap"], default="pca")
    figure_parser("report", "write runs/<name>/report.html", cmd_report)
    curves = commands.add_parser("curves", help="training curves from metrics.jsonl")
    curves.add_argument("run", metavar="RUN")
    curves.set_defaults(func=cmd_curves)

    evaluate = commands.add_parser("evaluate", help="likelihoods, sample and representation quality of a run")
    evaluate.add_argument("run", metavar="RUN")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--importance-samples", type=bounded(int, 0, 100_000), default=1000, metavar="K",
                          help="K of the importance-weighted bound (5000 for published numbers; 0 to skip)")
    evaluate.add_argument("--repeats", type=bounded(int, 1, 1000), default=5, help="noise draws of the ELBO estimate")
    evaluate.add_argument("--samples", type=bounded(int, 1, 10**6), default=10000, help="generated images for sample quality")
    evaluate.add_argument("--seed", type=SEED, default=0)
    evaluate.add_argument("--classifier", help="classifier weights (default: the cached one for the data set)")
    evaluate.add_argument("--no-probes", action="store_true", help="skip the linear and k-NN probes")
    evaluate.set_defaults(func=cmd_evaluate)

    disentanglement = commands.add_parser(
        "disentanglement", help="beta-VAE, FactorVAE, MIG, DCI and SAP scores of a run on ground-truth factors",
        description="The five disentanglement metrics (disentanglement_lib's definitions and sample sizes) on a run "
                    f"trained on a data set with ground-truth factors ({', '.join(ground_truth_names())}); writes "
                    "RUN/disentanglement.json and two figures.")
    disentanglement.add_argument("run", metavar="RUN")
    disentanglement.add_argument("--seed", type=SEED, default=0, help="seed of every metric's sampling")
    disentanglement.add_argument("--data-dir", metavar="DIR", type=data_dir,
                                 help="folder holding the data set's original files (dSprites' npz), else the run's")
    disentanglement.set_defaults(func=cmd_disentanglement)

    select = commands.add_parser(
        "select", help="rank runs trained alike (seeds, say) by UDR, without labels; keep the best",
        description="Unsupervised Disentanglement Ranking (Duan et al. 2020, as disentanglement_lib computes it): each "
                    "run encodes one shared sample of the data; a run scores high when its informative latents match "
                    "the other runs' one to one. Writes RUN/udr.json to each run.")
    select.add_argument("run", metavar="RUN", nargs="+", help="two or more finished runs trained on the same data set")
    select.add_argument("--variant", choices=["lasso", "spearman"], default="lasso",
                        help="similarity of two runs' latents: Lasso weights or Spearman correlations (default lasso, "
                             "disentanglement_lib's)")
    select.add_argument("--n", type=bounded(int, 2, 10**6), default=10000,
                        help="images of the shared sample, drawn from the first run's validation split (default 10000)")
    select.add_argument("--seed", type=SEED, default=0, help="seed of the sample")
    select.set_defaults(func=cmd_select)

    classifier = commands.add_parser("classifier", help="the digit classifier used to score samples")
    classifier_commands = classifier.add_subparsers(dest="action", required=True, metavar="ACTION")
    classifier_train = classifier_commands.add_parser("train", help="train and cache it")
    classifier_train.add_argument("--dataset", default="mnist")
    classifier_train.add_argument("--data-dir", type=data_dir)
    classifier_train.add_argument("--image-size", type=image_size, default=0, metavar="S",
                                  help="center-crop and resize your own images to SxS, as the runs it scores")
    classifier_train.add_argument("--val-size", type=bounded(int, 1, 10**9), default=5000)
    classifier_train.add_argument("--epochs", type=bounded(int, 1, 10**4), default=8)
    classifier_train.add_argument("--seed", type=SEED, default=0)
    classifier_train.add_argument("--out", help="where to save (default: the cache)")
    classifier_train.set_defaults(func=cmd_classifier)

    sweep = commands.add_parser("sweep", help="one run per (varied values, seed), summary table and rate-distortion "
                                              "figure")
    sweep.add_argument("--vary", action="append", default=[], metavar="NAME=V1,V2",
                       help="a configuration field or setting of the objective and its values, e.g. gamma=10,35,100 "
                            "(repeat for a grid)")
    sweep.add_argument("--beta", help="shorthand for --vary beta=LIST, e.g. 0.25,0.5,1,2,4,8")
    sweep.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    sweep.add_argument("--name", help="sweep folder name under --runs (default sweep-<time>)")
    sweep.add_argument("--runs", default="runs")
    sweep.add_argument("--backend", choices=["local", "ray"], default="local",
                       help="local: one point after another; ray: points as Ray tasks (extra betavae[ray])")
    sweep.add_argument("--figures", action="store_true", help="draw each point's figures too")
    sweep.add_argument("--jobs", type=bounded(int, 1, 1024), default=1, metavar="N",
                       help="local backend: points trained side by side (default 1), each with --threads (default: "
                            "the cores shared out)")
    sweep.add_argument("--preset", choices=list(PRESETS), default=None)
    sweep.add_argument("--config", help="TOML file of configuration keys")
    add_config_options(sweep, exclude=("beta", "seed"))
    sweep.set_defaults(func=cmd_sweep)

    fetch = commands.add_parser("fetch", help="obtain a data set and cache it (a data set read from your copy of its "
                                "official files: say where to get them, check them)")
    fetch.add_argument("dataset", nargs="?", default="mnist",
                       help=f"{dataset_names()} (default mnist)")
    fetch.add_argument("--data-dir", type=data_dir,
                       help="folder holding the data set's files (else $BETAVAE_DATA, else the cache)")
    fetch.add_argument("--image-size", type=image_size, default=0, metavar="S",
                       help="your own images: center-crop and resize to SxS into the cache (as train --image-size)")
    fetch.set_defaults(func=cmd_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except BetaVAEError as error:
        print(f"betavae: error: {error}", file=sys.stderr)
        from .training import TrainingInterrupted

        return 130 if isinstance(error, TrainingInterrupted) else 1
    except KeyboardInterrupt:
        print("betavae: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        print(f"betavae: error: out of memory ({first_line(error, 100)}); lower --batch-size or --image-size, the "
              "model's widths (--hidden, --channels), or the images a command reads (--samples, --n)", file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno != errno.ENAMETOOLONG:
            raise
        print(f"betavae: error: a path given is longer than the file system allows (a name over 255 bytes): "
              f"{str(error.filename)[:60]}...; shorten it", file=sys.stderr)
        return 1
    return 0
