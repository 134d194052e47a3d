"""Do the disentanglement metrics measure what they claim? Each metric on hand-made codes of dSprites' factor grid
(3 x 6 x 40 x 32 x 32 levels): the factors themselves, a rescaled and permuted copy, noise, a random rotation of the
standardized factors, a duplicated factor, and the factors plus five near-constant extra codes.

Sample sizes are a fifth of disentanglement_lib's (2000 training / 1000 evaluation points) so the script takes minutes;
`--full` uses the defaults. Prints a Markdown table.

Usage: python bench/metric_validation.py [--full]
"""

from __future__ import annotations

import argparse

import numpy as np

from betavae.data import dsprites
from betavae.evaluation.disentanglement import GroundTruth, evaluate_all

SIZES = np.array(dsprites.SIZES)
REDUCED = dict(beta_vae=dict(num_train=2000, num_eval=1000), factor_vae=dict(num_train=2000, num_eval=1000),
               mig=dict(num_train=10000), dci=dict(num_train=2000, num_test=1000),
               sap=dict(num_train=2000, num_test=1000))


def standardized(factors: np.ndarray) -> np.ndarray:
    return (factors - (SIZES - 1) / 2) / np.sqrt((SIZES ** 2 - 1) / 12)


def cases(rng: np.random.Generator) -> dict:
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    return {
        "factors": lambda f: f.astype(float),
        "rescaled, permuted": lambda f: f[:, [2, 0, 4, 1, 3]] * np.array([0.3, -2.0, 5.0, 0.1, 1.0]) + 7.0,
        "noise (10 codes)": lambda f: rng.normal(size=(len(f), 10)),
        "random rotation": lambda f: standardized(f) @ rotation,
        "shape duplicated": lambda f: np.concatenate([f, f[:, :1]], axis=1).astype(float),
        "factors + 5 constant codes": lambda f: np.concatenate([standardized(f),
                                                                 0.01 * rng.normal(size=(len(f), 5))], axis=1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="disentanglement_lib's sample sizes")
    args = parser.parse_args()
    names = ["beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap"]
    print("| codes | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, represent in cases(np.random.default_rng(1)).items():
        truth = GroundTruth(dsprites.SIZES, represent, dsprites.FACTORS)
        scores = evaluate_all(truth, seed=0, **({} if args.full else REDUCED))["scores"]
        print(f"| {label} | " + " | ".join(f"{scores[n]:.3f}" for n in names) + " |", flush=True)


if __name__ == "__main__":
    main()
