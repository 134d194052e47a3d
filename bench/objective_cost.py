"""Per-step cost of each objective against beta-VAE, on the same model and data (the `dsprites` preset).

Builds one trainer per objective (its preset's settings) and times its optimizer steps on dSprites batches: a
warm-up, then rounds of `--steps` steps taking the objectives in turn (so a slow spell of the machine hits them all),
and prints the median milliseconds per step and its ratio to beta-VAE's. Ada-GVAE's batch holds 64 pairs, that is 128
images; its ratio counts its steps, not its images. Run it alone on an idle machine.

Usage: python bench/objective_cost.py [--steps 100] [--rounds 5] [--threads 0] [--precision bf16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from betavae import data as datalib
from betavae.config import preset
from betavae.training import Trainer

OBJECTIVES = ("beta", "btcvae", "factorvae", "dipvae", "adagvae")  # beta: the dsprites preset's beta-VAE


def trainer_for(objective: str, data: datalib.Data, folder: Path, precision: str) -> Trainer:
    config = preset("dsprites" if objective == "beta" else objective).replace(precision=precision)
    return Trainer(config, folder / objective, data, progress=False, log=lambda line: None)


def time_steps(trainer: Trainer, steps: int, generator: torch.Generator) -> float:
    """Seconds per optimizer step over `steps` steps on random batches."""
    batches = torch.randint(len(trainer.data.train), (steps, trainer.config.batch_size), generator=generator)
    start = time.perf_counter()
    for index in batches:
        trainer._train_step(index, epoch=1, position=0)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = datalib.load("dsprites")
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        trainers = {name: trainer_for(name, data, Path(folder), args.precision) for name in OBJECTIVES}
        for trainer in trainers.values():
            time_steps(trainer, 10, generator)  # warm-up
        seconds: dict[str, list[float]] = {name: [] for name in OBJECTIVES}
        for _ in range(args.rounds):
            for name, trainer in trainers.items():
                seconds[name].append(time_steps(trainer, args.steps, generator))
    base = statistics.median(seconds["beta"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.precision}, "
          f"{args.rounds} rounds of {args.steps} steps, batch 64")
    print("| objective | ms per step (median) | ratio to beta-VAE |\n|---|---|---|")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:.1f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
