"""Choosing the disentangled model of several seeds without labels: UDR against MIG on trained dSprites runs.

For each group of runs (the same recipe, different seeds), computes every run's UDR within its group (Lasso and
Spearman variants, on one shared sample of validation images) and its MIG (the same 10,000-image sample as `betavae
disentanglement`, via bench/quick_mig.py), marks the UDR-chosen run, and prints the group's median and best MIG beside
the chosen run's. Then the Spearman rank correlation between UDR and MIG (with `--dci`, DCI disentanglement too: the
full metric of `betavae disentanglement`, about a minute a run) over every run of every group, and which runs align
every ordered factor (scale, x, y each followed by its own latent, |corr| >= ALIGNED).

Runs are read from RUNS/seedN/NAME, as bench/disentanglement.py --seeds writes them.

Usage: python bench/udr_selection.py --runs runs/udr --group adagvae=1,2,3 --group adagvae=4,5,6 --group beta4=1,2,3
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

import quick_mig  # bench/quick_mig.py, beside this script
from betavae.data import dsprites
from betavae.evaluation import udr
from betavae.evaluation.disentanglement import GroundTruth, dci_metric, mig_metric
from betavae.runs import Run

ALIGNED = 0.9  # |corr| of a latent's mean with a factor's level at which the latent is taken to follow the factor
SAMPLE = 10_000  # validation images encoded by every run of a group (UDR)


def aligned(correlation: np.ndarray) -> bool:
    """Each ordered factor (scale, x, y) followed by its own latent: a latent with |corr| >= ALIGNED, none shared."""
    best = [int(np.nanargmax(column)) for column in correlation.T]
    strong = [np.nanmax(column) >= ALIGNED for column in correlation.T]
    return all(strong) and len(set(best)) == len(best)


def score(run: Run, with_dci: bool) -> dict:
    """MIG (and DCI disentanglement), the alignment view and the training figures of one run."""
    truth = GroundTruth(dsprites.SIZES, quick_mig.encoder_of(run), dsprites.FACTORS)
    correlation = quick_mig.correlations(truth)
    last = run.last_record
    dci = dci_metric(truth, seed=0)["disentanglement"] if with_dci else float("nan")
    return {"mig": mig_metric(truth, seed=0)["mig"], "dci": dci, "aligned": aligned(correlation),
            "step": last["step"], "max_corr": np.nanmax(correlation, axis=0).round(3).tolist()}


def group_udr(runs: list[Run]) -> dict[str, np.ndarray]:
    """UDR of each run within its group, both variants, on one shared validation sample."""
    sample = runs[0].split("val").sample(SAMPLE, seed=0)
    codes = [run.model.posterior_means(sample.images) for run in runs]
    kls = [run.kl_per_dim for run in runs]
    return {variant: udr.udr(codes, kls, variant).scores for variant in udr.VARIANTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs/udr")
    parser.add_argument("--group", action="append", required=True, metavar="NAME=SEEDS",
                        help="a recipe's runs: NAME=1,2,3 reads RUNS/seed1/NAME, RUNS/seed2/NAME, ...")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dci", action="store_true", help="score DCI disentanglement too (about a minute a run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    everything = []
    print("| group | seed | steps | MIG | DCI | UDR lasso | UDR spearman | max abs corr scale, x, y | aligned | chosen |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summaries = []
    for text in args.group:
        name, _, seeds = text.partition("=")
        seeds = [int(s) for s in seeds.split(",")]
        runs = [Run.open(Path(args.runs) / f"seed{seed}" / name, finished=True) for seed in seeds]
        scores = group_udr(runs)
        rows = [score(run, args.dci) for run in runs]
        chosen = int(np.argmax(scores[udr.DEFAULT_VARIANT]))
        for i, (seed, row) in enumerate(zip(seeds, rows)):
            print(f"| {text} | {seed} | {row['step']} | {row['mig']:.3f} | {row['dci']:.3f} | {scores['lasso'][i]:.3f} | "
                  f"{scores['spearman'][i]:.3f} | {', '.join(f'{v:.2f}' for v in row['max_corr'])} | "
                  f"{'yes' if row['aligned'] else 'no'} | {'**chosen**' if i == chosen else ''} |", flush=True)
            everything.append((scores["lasso"][i], scores["spearman"][i], row["mig"], row["dci"], row["aligned"]))
        migs = [row["mig"] for row in rows]
        summaries.append((text, migs[chosen], statistics.median(migs), max(migs)))
    print("\n| group | chosen MIG | median MIG | best MIG | chosen >= median |\n|---|---|---|---|---|")
    for text, chosen, median, best in summaries:
        print(f"| {text} | {chosen:.3f} | {median:.3f} | {best:.3f} | {'yes' if chosen >= median else 'no'} |")
    lasso, spearman, mig, dci, is_aligned = (np.array(column) for column in zip(*everything))
    for name, supervised in (("MIG", mig), ("DCI disentanglement", dci)) if args.dci else (("MIG", mig),):
        print(f"\nSpearman correlation with {name} over {len(mig)} runs: UDR lasso "
              f"{spearmanr(lasso, supervised).statistic:.3f}, UDR spearman {spearmanr(spearman, supervised).statistic:.3f}")
    print(f"runs that align every ordered factor: {int(is_aligned.sum())} of {len(is_aligned)}")


if __name__ == "__main__":
    main()
