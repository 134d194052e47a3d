"""Decoder likelihoods on 8-bit colour images: the discretized logistic's bits/dim against a Gaussian decoder's ELBO
on the same model, and the sample quality of each, scored by a classifier trained on the data's own labels.

The data is colour-MNIST, written here as a user's .npz: each MNIST digit (60,000 training and 10,000 test images,
28x28) drawn in its own random 8-bit colour (each channel uniform in 64..255) on black, so every pixel is an 8-bit
value and the labels are the digits. Every likelihood trains the same conv model (`--arch conv`, 20 latents, β = 1)
for the same wall-clock budget on one thread, then `betavae evaluate` scores it on the test split with a digit
classifier trained on the colour images (`betavae classifier train --dataset colour-mnist.npz`), and `betavae
sample` draws 64 samples from N(0, I).

A Gaussian decoder's ELBO is a density of pixel values in [0, 1], not a probability: it is shown in nats per image as
evaluated, and as "bits/dim if dequantized", (nats + D ln 256) / (D ln 2), which is a bound on a discrete likelihood
only for a model trained on uniformly dequantized data (Theis et al. 2016), which these are not.

Usage: python bench/colour_likelihoods.py --minutes 8 --runs runs/colour-likelihood [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

LIKELIHOODS = ("logistic", "gaussian", "gaussian-learned")
BETAVAE = [sys.executable, "-m", "betavae"]


def colour_mnist(out: Path) -> Path:
    """Write colour-MNIST (uint8 (N, 28, 28, 3) and digit labels, MNIST's own test split) once; return its path."""
    if out.is_file():
        return out
    import betavae.data as datalib

    mnist = datalib.load("mnist")
    rng = np.random.default_rng(0)

    def paint(split) -> tuple[np.ndarray, np.ndarray]:
        grey = np.rint(datalib.as_float(split.images).numpy()[:, 0] * 255)  # (N, 28, 28) in 0..255
        colour = rng.integers(64, 256, size=(len(grey), 1, 1, 3))
        return np.rint(grey[..., None] * colour / 255).astype(np.uint8), split.labels.numpy()

    train_parts = [paint(mnist.train), paint(mnist.val)]
    images, labels = (np.concatenate(parts) for parts in zip(*train_parts))
    test_images, test_labels = paint(mnist.test)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".tmp.npz")
    np.savez(temporary, images=images, labels=labels, test_images=test_images, test_labels=test_labels)
    temporary.replace(out)
    return out


def betavae(*args: str) -> None:
    """One betavae command, echoed, that must succeed."""
    print("$ betavae " + " ".join(args), flush=True)
    subprocess.run([*BETAVAE, *args], check=True)


def train(data: Path, runs: Path, likelihood: str, minutes: float, seed: int, threads: int) -> None:
    """One likelihood's run, unless it has finished already (an unfinished one is trained again)."""
    status = runs / likelihood / "status.json"
    if status.is_file() and json.loads(status.read_text()).get("state") == "finished":
        return
    betavae("train", "--dataset", str(data), "--arch", "conv", "--likelihood", likelihood, "--beta", "1",
            "--time-budget", str(int(minutes * 60)), "--epochs", "1000", "--seed", str(seed), "--threads",
            str(threads), "--runs", str(runs), "--name", likelihood, "--no-figures",
            *(["--overwrite"] if status.parent.exists() else []))


def score(runs: Path, likelihood: str, classifier: Path, k: int) -> dict:
    run = runs / likelihood
    betavae("evaluate", str(run), "--classifier", str(classifier), "--importance-samples", str(k), "--no-probes")
    betavae("sample", str(run), "--n", "64")
    return json.loads((run / "evaluation.json").read_text())


def row(likelihood: str, result: dict) -> str:
    elbo = result["elbo"]
    dims = 3 * 28 * 28
    bits = (f"{elbo['bits_per_dim']:.3f}" if "bits_per_dim" in elbo
            else f"({(elbo['neg_elbo'] + dims * math.log(256)) / (dims * math.log(2)):.3f} if dequantized)")
    iwae = result.get("iwae", {})
    iwae_text = f"{iwae['nll']:.1f}" if iwae else "-"
    prior = result["sample_quality"]["samplers"]["prior"]
    return (f"| {likelihood} | {elbo['neg_elbo']:.1f} | {elbo['distortion']:.1f} / {elbo['rate']:.1f} | {bits} | "
            f"{iwae_text} | {prior['frechet_distance']:.1f} | {prior['classifier_score']:.2f} | "
            f"{prior['precision']:.3f} / {prior['recall']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training minutes per likelihood")
    parser.add_argument("--runs", default="runs/colour-likelihood")
    parser.add_argument("--likelihoods", default=",".join(LIKELIHOODS))
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (one thread each with 2)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--classifier-epochs", type=int, default=4)
    parser.add_argument("--importance-samples", type=int, default=0,
                        help="K of the IWAE bound on the 10,000 test images (0: the ELBO alone; K costs K decodes each)")
    args = parser.parse_args()
    runs, likelihoods = Path(args.runs), args.likelihoods.split(",")
    data = colour_mnist(runs / "colour-mnist.npz")
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda name: train(data, runs, name, args.minutes, args.seed, args.threads), likelihoods))
    classifier = runs / "classifier.safetensors"
    if not classifier.is_file():
        betavae("classifier", "train", "--dataset", str(data), "--epochs", str(args.classifier_epochs), "--out",
                str(classifier))
    results = {name: score(runs, name, classifier, args.importance_samples) for name in likelihoods}
    print("\n| likelihood | neg. ELBO (nats/image) | distortion / rate | bits/dim | IWAE NLL | FD (prior) | "
          "classifier score | precision / recall |\n|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        print(row(name, result))
    floor = next(iter(results.values()))["sample_quality"]["floor"]
    print(f"\nfloor (train vs test images): FD {floor['frechet_distance']:.2f}, classifier score "
          f"{floor['classifier_score']:.2f}; classifier test accuracy "
          f"{next(iter(results.values()))['sample_quality']['classifier_test_accuracy']:.4f}")
    for name in likelihoods:
        pictures = sorted((runs / name / "figures").glob("samples*.png"))
        if pictures:
            shutil.copyfile(pictures[-1], runs / f"samples-{name}.png")
    print(f"samples: {', '.join(str(runs / f'samples-{name}.png') for name in likelihoods)}")


if __name__ == "__main__":
    main()
