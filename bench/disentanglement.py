"""Disentanglement on dSprites by objective: beta 1, beta 4, the controlled-capacity objective, beta-TCVAE,
FactorVAE, DIP-VAE and Ada-GVAE, each trained for the same wall-clock budget, then scored by `betavae
disentanglement` (beta-VAE, FactorVAE, MIG, DCI, SAP), or with `--score quick` by MIG and the x, y alignment alone.

CPU (default): 30 minutes of training each with `--preset dsprites` (Burgess et al.'s conv model, batch 64, Adam 1e-3
with cosine decay over the budget), in bf16 autocast (`--precision`; 1.8x fp32's speed on CPUs with AMX). The
capacity run raises C from 0 to 25 nats over 20k steps (Burgess et al.: over 100k of their 300k+ steps).
GPU (`--gpu`): about 300k steps (27 epochs of 717,280 images at batch 64) each, C over 100k steps; `--minutes` then
caps each run's training time, and `--jobs 3` trains the three runs side by side on the one GPU. With CUDA graphs one
run makes about 880 steps/s on an H100 in bf16 (5.7 minutes for 300k steps); three side by side share that rate.
`bench/gpu_lease.sh` wraps all of it for one call of the `device` tool.

Runs are folders under --runs (under --runs/seedN when --seeds names several); a finished run is not trained again
and an interrupted one resumes, so rerunning the script continues where it stopped. Prints the commands it runs and a
Markdown table, with each variant's median over the seeds when there are several.

Usage: python bench/disentanglement.py [--minutes 30] [--runs runs/dsprites-bench] [--gpu] [--jobs 1] [--seeds 1]
                                       [--variants beta1,beta4,capacity] [--precision bf16] [--train-only]
                                       [--train-args="--cuda-graphs false"] [--threads 1] [--score quick]
(--variants may also name capacity-gamma100, the capacity objective with gamma 100; beta1-anneal, beta4-anneal:
beta starting at 16 and annealing down to 1 or 4 over the first 10k steps; btcvae, factorvae, dipvae and adagvae:
the presets of those names; adagvae-beta4, adagvae-beta8: Ada-GVAE with that beta; dipvae-lodN for N in 1, 2, 5, 10,
20, 50: DIP-VAE-I with lambda_od N; colour-beta4, colour-adagvae, colour-adagvae-beta4: beta 4, Ada-GVAE and
the disentangle recipe (Ada-GVAE, beta 4) on colour-dSprites)
Two runs side by side on two cores: `--jobs 2 --threads 1` (each run then has one core, the same for every variant).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

import quick_mig  # bench/quick_mig.py, beside this script
from betavae.data import dsprites
from betavae.errors import BetaVAEError
from betavae.runs import Run

BETAVAE = [sys.executable, "-m", "betavae"]  # the command line, installed or not (PYTHONPATH=src)
VARIANTS = {  # name -> options on top of --preset dsprites
    "beta1": ["--beta", "1"],
    "beta4": ["--beta", "4"],
    "beta16": ["--beta", "16"],  # beyond the issue's {1, 4}: whether a strong KL weight aligns the axes here
    "capacity": ["--objective", "capacity", "--gamma", "1000", "--capacity-max", "25"],
    # gamma 1000 (Burgess et al.) collapsed here twice (see docs/dsprites.md); a tenth of it, as some re-implementations use
    "capacity-gamma100": ["--objective", "capacity", "--gamma", "100", "--capacity-max", "25"],
    # beta starts at 16 and anneals down over the first 10k steps: a noisy start, as the capacity ramp gives
    "beta1-anneal": ["--beta", "1", "--beta-start", "16", "--beta-warmup-steps", "10000"],
    "beta4-anneal": ["--beta", "4", "--beta-start", "16", "--beta-warmup-steps", "10000"],
    # the objectives on the aggregate posterior and weak supervision, each with its preset's (its paper's) setting
    "btcvae": ["--preset", "btcvae"],
    "factorvae": ["--preset", "factorvae"],
    "dipvae": ["--preset", "dipvae"],
    "adagvae": ["--preset", "adagvae"],
    # Ada-GVAE's beta (issue: settle the disentangle preset on seeds 1-3 with the seed-0 winners)
    "adagvae-beta4": ["--preset", "adagvae", "--beta", "4"],
    "adagvae-beta8": ["--preset", "adagvae", "--beta", "8"],
    # DIP-VAE-I's lambda_od over disentanglement_lib's study grid, chosen on seed 0
    # colour-dSprites (grey-level targets: a colour image is not binary) with beta 4 and the disentangle recipe
    "colour-beta4": ["--dataset", "colour-dsprites", "--pixels", "grey", "--beta", "4"],
    "colour-adagvae": ["--preset", "adagvae", "--dataset", "colour-dsprites", "--pixels", "grey"],
    "colour-adagvae-beta4": ["--preset", "adagvae", "--beta", "4", "--dataset", "colour-dsprites", "--pixels", "grey"],
    **{f"dipvae-lod{od}": ["--preset", "dipvae", "--lambda-od", str(od)] for od in (1, 2, 5, 10, 20, 50)},
}


SCORES = ("mig", "beta_vae", "factor_vae", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap")


def train_command(run: Path, seed: int, args: argparse.Namespace) -> list[str]:
    name = run.name
    options = ["--preset", "dsprites", *VARIANTS[name], "--runs", str(run.parent), "--name", name, "--seed", str(seed),
               "--precision", args.precision, "--threads", str(args.threads), *shlex.split(args.train_args)]
    if args.gpu:
        options += ["--device", "cuda", "--epochs", "27"]
        options += ["--time-budget", str(args.minutes * 60)] if args.minutes else []
        options += ["--capacity-steps", "100000"] if name.startswith("capacity") else []
    else:
        options += ["--time-budget", str((args.minutes or 30.0) * 60), "--epochs", "1000"]
        options += ["--capacity-steps", "20000"] if name.startswith("capacity") else []
    return [*BETAVAE, "train", *options]


def status(run: Path) -> str:
    try:
        return Run.open(run).status["state"]
    except BetaVAEError:
        return "missing"


def run_all(commands: list[list[str]], jobs: int) -> None:
    """Run the commands, `jobs` at a time (side by side on one GPU, say), stopping at the first failure."""
    pending = list(commands)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < jobs:
            command = pending.pop(0)
            print("$", shlex.join(command), flush=True)
            running.append(subprocess.Popen(command))
        finished = running.pop(0)
        if finished.wait() != 0:
            for other in running:
                other.wait()
            raise SystemExit(f"failed ({finished.returncode}): {shlex.join(finished.args)}")


def run_folders(runs: Path, seeds: list[int], names: list[str]) -> list[tuple[int, Path]]:
    """(seed, folder) of every run: runs/NAME for one seed, runs/seedN/NAME for several."""
    if len(seeds) == 1:
        return [(seeds[0], runs / name) for name in names]
    return [(seed, runs / f"seed{seed}" / name) for seed in seeds for name in names]


def training(run: Run) -> list[float]:
    """Steps, training minutes, and the last validation recon and KL of a run."""
    metrics, last = run.metrics, run.last_record
    minutes = sum(r["train_seconds"] for r in metrics) / 60
    return [last["step"], minutes, last["val"]["recon"], last["val"]["kl"]]


def summary(run: Path) -> list[float]:
    """What `training` gives, then the five metrics of a finished, scored run."""
    scores = json.loads((run / "disentanglement.json").read_text())["scores"]
    return [*training(Run.open(run)), *(scores[key] for key in SCORES)]


def quick_summary(run: Path) -> list[float]:
    """What `training` gives, then MIG on its 10,000-image sample (the full command's MIG), and the largest
    |correlation| of any latent's mean with x and with y (about 1 each when the position plane is aligned with two
    latents, about 0.6-0.7 when it is rotated)."""
    opened = Run.open(run)
    truth = quick_mig.GroundTruth(dsprites.SIZES, quick_mig.encoder_of(opened), dsprites.FACTORS)
    correlation = np.nan_to_num(quick_mig.correlations(truth))
    x, y = (correlation[:, quick_mig.ORDERED.index(name)].max() for name in ("pos_x", "pos_y"))
    return [*training(opened), quick_mig.mig_metric(truth, seed=0)["mig"], x, y]


FULL_COLUMNS = ("MIG", "beta-VAE", "FactorVAE", "DCI dis.", "DCI comp.", "DCI info.", "SAP")
QUICK_COLUMNS = ("MIG", "max abs corr x", "max abs corr y")


def row(label: str, values: list[float]) -> str:
    steps, minutes, recon, kl, *scores = values
    return (f"| {label} | {steps:.0f} | {minutes:.1f} | {recon:.1f} | {kl:.1f} | "
            + " | ".join(f"{score:.3f}" for score in scores) + " |")


def table(folders: list[tuple[int, Path]], several_seeds: bool, quick: bool = False) -> str:
    """A Markdown row per run (the five metrics, or quick: MIG and the x, y alignment) and, with several seeds, each
    variant's median over them."""
    columns, summarise = (QUICK_COLUMNS, quick_summary) if quick else (FULL_COLUMNS, summary)
    header = ("run", "steps", "train min", "recon", "KL", *columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_variant: dict[str, list[list[float]]] = {}
    for seed, run in folders:
        values = summarise(run)
        by_variant.setdefault(run.name, []).append(values)
        lines.append(row(f"{run.name}, seed {seed}" if several_seeds else run.name, values))
    if several_seeds:
        for name, rows in by_variant.items():
            lines.append(row(f"{name}, median of {len(rows)}", [statistics.median(column) for column in zip(*rows)]))
            lines.append(spread_row(f"{name}, spread (min-max)", rows))
    return "\n".join(lines)


def spread_row(label: str, rows: list[list[float]]) -> str:
    """The lowest and highest value of every column over the seeds: how sure each median is."""
    columns = list(zip(*rows))
    steps, minutes, recon, kl, *scores = [(min(column), max(column)) for column in columns]
    cells = [f"{steps[0]:.0f}-{steps[1]:.0f}", f"{minutes[0]:.1f}-{minutes[1]:.1f}", f"{recon[0]:.1f}-{recon[1]:.1f}",
             f"{kl[0]:.1f}-{kl[1]:.1f}", *(f"{low:.3f}-{high:.3f}" for low, high in scores)]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None,
                        help="training minutes per run (CPU: 30 by default; GPU: the full schedule by default)")
    parser.add_argument("--runs", default="runs/dsprites-bench")
    parser.add_argument("--seeds", "--seed", default="1", help="one seed, or several: 1,2,3 (runs/seedN/VARIANT)")
    parser.add_argument("--gpu", action="store_true", help="the long schedule (about 300k steps) on CUDA")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained (and scored) at the same time")
    parser.add_argument("--variants", default="beta1,beta4,capacity")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per run (0: torch's default); 1 with --jobs 2 shares two cores fairly")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--score", default="full", choices=["full", "quick"],
                        help="full: `betavae disentanglement` (five metrics, about 6 minutes a run on 2 cores); "
                             "quick: MIG and the x, y alignment of bench/quick_mig.py (seconds a run)")
    parser.add_argument("--train-args", default="", help="more options for betavae train, given with '=' because "
                        "they start with a dash: --train-args='--cuda-graphs false'")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds takes whole numbers separated by commas, got {args.seeds!r}")
    folders = run_folders(Path(args.runs), seeds, names)
    commands = []
    for seed, run in folders:
        state = status(run)
        if state == "finished":
            print(f"{run}: finished, not trained again", flush=True)
        elif state == "missing":
            commands.append(train_command(run, seed, args))
        else:
            commands.append([*BETAVAE, "train", "--resume", str(run)])
    run_all(commands, args.jobs)
    if args.train_only:
        return
    if args.score == "quick":
        print(table(folders, len(seeds) > 1, quick=True))
        return
    run_all([[*BETAVAE, "disentanglement", str(run)] for _, run in folders
             if not (run / "disentanglement.json").exists()], args.jobs)
    print(table(folders, len(seeds) > 1))


if __name__ == "__main__":
    sys.exit(main())
