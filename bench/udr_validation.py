"""Does betavae's UDR agree with disentanglement_lib's? Both score the same sets of hand-made code tables (three models
of five latents over one sample, each with its KL per latent): identical, permuted, permuted with signs flipped,
noisy copies, a monotone nonlinear copy, randomly rotated (entangled), one rotated among two aligned, independent noise,
and tables with uninformative latents (KL 0.001) that the 0.01 threshold drops. Prints a Markdown table of each model's
score under both variants and the largest difference.

The reference is disentanglement_lib's disentanglement_lib/evaluation/udr/metrics/udr.py (not in its pip package),
saved as one file anywhere; its absl and gin imports are stubbed here, nothing else of it is touched. Without it, the
script prints betavae's numbers alone and says that the reference is missing.

Usage: python bench/udr_validation.py [--reference /tmp/dlib/udr.py] [--n 5000]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
import warnings
from pathlib import Path

import numpy as np

from betavae.evaluation.udr import VARIANTS, udr

LATENTS = 5
INFORMATIVE, UNINFORMATIVE = 1.0, 0.001  # KL per latent (nats) of the hand-made models


def rotation(rng: np.random.Generator, d: int = LATENTS) -> np.ndarray:
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


def flipped(rng: np.random.Generator, codes: np.ndarray) -> np.ndarray:
    """The codes with their columns permuted and about half their signs flipped."""
    return (codes * rng.choice([-1.0, 1.0], codes.shape[1]))[:, rng.permutation(codes.shape[1])]


def padded(rng: np.random.Generator, codes: np.ndarray, extra: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes and `extra` near-constant uninformative latents mixed in among them, with their KLs."""
    table = np.concatenate([codes, 0.01 * rng.normal(size=(len(codes), extra))], axis=1)
    kl = np.array([INFORMATIVE] * codes.shape[1] + [UNINFORMATIVE] * extra)
    order = rng.permutation(table.shape[1])
    return table[:, order], kl[order]


def cases(n: int, rng: np.random.Generator) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Each case: three models as (codes (n, D), KL per latent (D))."""
    factors = rng.uniform(-1, 1, size=(n, LATENTS))
    kl = np.full(LATENTS, INFORMATIVE)
    noisy = lambda: flipped(rng, factors + 0.3 * rng.normal(size=factors.shape))  # noqa: E731
    three = lambda make: [(make(), kl) for _ in range(3)]  # noqa: E731
    return {
        "identical": three(lambda: factors),
        "permuted": three(lambda: factors[:, rng.permutation(LATENTS)]),
        "permuted, signs flipped": three(lambda: flipped(rng, factors)),
        "noisy copies (noise sd 0.3, permuted, flipped)": three(noisy),
        "monotone nonlinear copies (x, x³, sinh 3x)": [(factors, kl), (factors ** 3, kl), (np.sinh(3 * factors), kl)],
        "randomly rotated": three(lambda: factors @ rotation(rng)),
        "two aligned, the third rotated": [(factors, kl), (flipped(rng, factors), kl),
                                           (factors @ rotation(rng), kl)],
        "independent noise": three(lambda: rng.normal(size=factors.shape)),
        "permuted, 3 uninformative latents each": [padded(rng, flipped(rng, factors), 3) for _ in range(3)],
        "aligned, 5 / 4 / 3 of 8 latents informative": [padded(rng, factors[:, :kept], 8 - kept) for kept in (5, 4, 3)],
    }


def load_reference(path: Path) -> types.ModuleType:
    """disentanglement_lib's udr.py as a module, with its logging (absl) and configuration (gin) imports stubbed."""
    absl, gin = types.ModuleType("absl"), types.ModuleType("gin")
    absl.logging = types.SimpleNamespace(info=lambda *args, **kwargs: None)
    gin.tf = types.ModuleType("gin.tf")
    gin.configurable = lambda *args, **kwargs: (lambda function: function)
    for name, module in (("absl", absl), ("gin", gin), ("gin.tf", gin.tf)):
        sys.modules.setdefault(name, module)
    spec = importlib.util.spec_from_file_location("disentanglement_lib_udr", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Rows:
    """A stand-in for disentanglement_lib's ground-truth data: hands out the row indices 0, 1, 2, ... in batches."""

    def __init__(self):
        self.next = 0

    def sample_observations(self, batch_size: int, random_state) -> np.ndarray:
        self.next += batch_size
        return np.arange(self.next - batch_size, self.next)


def reference_scores(reference: types.ModuleType, models: list, variant: str) -> np.ndarray:
    """The reference's model_scores on the same tables (the whole sample, in order, in batches of 500)."""
    functions = [lambda rows, codes=codes, kl=kl: (codes[rows], kl) for codes, kl in models]
    with warnings.catch_warnings():  # its Spearman of the zeroed uninformative latents is NaN, filtered out after
        warnings.simplefilter("ignore")
        result = reference.compute_udr_sklearn(Rows(), functions, np.random.RandomState(0), 500, len(models[0][0]),
                                               correlation_matrix=variant, include_raw_correlations=False)
    return np.array(result["model_scores"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=Path("/tmp/dlib/udr.py"),
                        help="disentanglement_lib's evaluation/udr/metrics/udr.py")
    parser.add_argument("--n", type=int, default=5000, help="images in the shared sample (a multiple of 500)")
    args = parser.parse_args()
    reference = load_reference(args.reference) if args.reference.is_file() else None
    if reference is None:
        print(f"reference {args.reference} is missing: betavae's numbers only (pass --reference PATH)\n")
    shown = lambda scores: " / ".join(f"{s:.3f}" for s in scores)  # noqa: E731
    head = [f"{v}: {who}" for v in VARIANTS for who in (("betavae", "disentanglement_lib") if reference else
                                                        ("betavae",))]
    print("| codes (3 models) | " + " | ".join(head) + (" | largest difference |" if reference else " |"))
    print("|---" * (len(head) + 1 + bool(reference)) + "|")
    for label, models in cases(args.n, np.random.default_rng(0)).items():
        cells, gap = [], 0.0
        for variant in VARIANTS:
            ours = udr([codes for codes, _ in models], [kl for _, kl in models], variant).scores
            cells.append(shown(ours))
            if reference:
                theirs = reference_scores(reference, models, variant)
                cells.append(shown(theirs))
                gap = max(gap, float(np.max(np.abs(ours - theirs))))
        print(f"| {label} | " + " | ".join(cells) + (f" | {gap:.1e} |" if reference else " |"), flush=True)


if __name__ == "__main__":
    main()
