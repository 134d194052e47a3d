"""DDP on this machine: 2 processes x 1 thread (torchrun, gloo) against 1 process x 2 threads, same global batch.

On 2 cores DDP is not expected to win (the same arithmetic, plus gradient all-reduces); this prints what it costs.
Usage: python bench/distributed.py [--epochs 3] [--global-batch 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from betavae.runs import Run


def run(runs: Path, name: str, processes: int, threads: int, batch: int, epochs: int) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                "-m", "betavae"] if processes > 1 else [sys.executable, "-m", "betavae"]
    subprocess.run([*launcher, "train", "--preset", "vae", "--epochs", str(epochs), "--batch-size", str(batch),
                    "--threads", str(threads), "--no-figures", "--runs", str(runs), "--name", name],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, env=env)
    return [r["images_per_second"] for r in Run.open(runs / name).metrics[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--global-batch", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        single = run(Path(tmp), "single", 1, 2, args.global_batch, args.epochs)
        ddp = run(Path(tmp), "ddp", 2, 1, args.global_batch // 2, args.epochs)
    print(f"MNIST, preset vae, global batch {args.global_batch}, {args.epochs} epochs, images/s per epoch (median):")
    print(f"  1 process  x 2 threads: {statistics.median(single):8.0f}  ({', '.join(f'{r:.0f}' for r in single)})")
    print(f"  2 processes x 1 thread: {statistics.median(ddp):8.0f}  ({', '.join(f'{r:.0f}' for r in ddp)})")
    print(f"  DDP / single: {statistics.median(ddp) / statistics.median(single):.2f}x")


if __name__ == "__main__":
    main()
