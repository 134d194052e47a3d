"""Peak resident memory of `betavae train` on a memory-mapped data set larger than memory (issue 25: 6 GB of uint8
images must train in under 2 GB).

Writes a synthetic data set of --gigabytes of random uint8 colour images (--size, 64x64x3 by default) as a folder of
.npy arrays, the format of betavae's image cache, which `--dataset FOLDER` reads memory-mapped; then trains the conv64
model on it in a subprocess with --threads 1 for --seconds of training (betavae has no step limit: the time budget
ends the epoch; the steps trained are printed), with everything a run does besides (the data fingerprints, the mean
image, the untrained model's evaluation on 50,000 training images, validation, figures, the report), and prints the
subprocess's peak resident memory (getrusage ru_maxrss) beside the data size. Everything is written under
FOLDER/betavae-memory-bench, which must not exist and is removed afterwards (--keep keeps it).

Usage: python bench/memory.py --folder /big/scratch [--gigabytes 6] [--size 64] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BLOCK = 4096  # images written at a time


def write_images(path: Path, count: int, size: int, seed: int = 0) -> None:
    """(count, 3, size, size) random uint8 images as one .npy file, written block by block (never all in memory)."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as stream:
        np.lib.format.write_array_header_1_0(stream, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (count, 3, size, size)})
        for start in range(0, count, BLOCK):
            stream.write(rng.integers(0, 256, (min(BLOCK, count - start), 3, size, size), dtype=np.uint8).tobytes())


def train_measured(arrays: Path, runs: Path, seconds: float) -> tuple[int, int, dict[str, int]]:
    """Train on the arrays in a subprocess; its peak resident memory in bytes, its exit status, and the peaks of its
    private and file-backed resident memory sampled every 0.1 s."""
    command = [sys.executable, "-m", "betavae", "train", "--dataset", str(arrays), "--preset", "conv64",
               "--image-size", "0", "--threads", "1", "--epochs", "1", "--time-budget", str(seconds),
               "--val-size", "2000", "--runs", str(runs), "--name", "memory"]
    process = subprocess.Popen(command)  # a folder of arrays read as stored is never copied into the cache
    peaks = {"RssAnon": 0, "RssFile": 0}
    while True:  # sample the split of resident memory: private (anonymous) pages, and file pages mapped in
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        for key, value in resident_parts(process.pid).items():
            peaks[key] = max(peaks[key], value)
        time.sleep(0.1)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, process.returncode, peaks  # ru_maxrss is in KiB on Linux


def resident_parts(pid: int) -> dict[str, int]:
    """RssAnon and RssFile of a process in bytes (Linux /proc), {} once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if line.startswith(("RssAnon", "RssFile")))
    return {key: int(value.split()[0]) * 1024 for key, value in fields.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", required=True, help="where the data set is written (needs --gigabytes free)")
    parser.add_argument("--gigabytes", type=float, default=6.0, help="size of the uint8 data set (default 6)")
    parser.add_argument("--size", type=int, default=64, help="image side (default 64: 64x64x3)")
    parser.add_argument("--seconds", type=float, default=30.0, help="training time budget (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the data set and the run")
    args = parser.parse_args()
    work = Path(args.folder) / "betavae-memory-bench"
    work.mkdir(parents=True)  # refuses a folder that exists: nothing of the user's is written into or removed
    try:
        arrays = work / "arrays"
        arrays.mkdir()
        count = int(args.gigabytes * 1e9) // (3 * args.size ** 2)
        write_images(arrays / "train_images.npy", count, args.size)
        data_bytes = (arrays / "train_images.npy").stat().st_size
        peak, code, parts = train_measured(arrays, work / "runs", args.seconds)
        metrics = [json.loads(line) for line in (work / "runs" / "memory" / "metrics.jsonl").read_text().splitlines()]
        print(f"data: {count:,} images of {args.size}x{args.size}x3 uint8, {data_bytes / 1e9:.2f} GB memory-mapped")
        print(f"training: {metrics[-1]['step']} steps of batch 64 with --threads 1 (exit status {code})")
        print(f"peak resident memory of the training process: {peak / 1e9:.2f} GB "
              f"({peak / data_bytes:.2f} of the data size)")
        print(f"  of which, at their sampled peaks: private (RssAnon) {parts['RssAnon'] / 1e9:.2f} GB, pages of the "
              f"mapped file (RssFile, page cache the kernel reclaims under pressure) {parts['RssFile'] / 1e9:.2f} GB")
    finally:
        if not args.keep:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
