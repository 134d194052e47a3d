"""Sample quality of each sampler on finished MNIST runs: prior N(0, I) against the Gaussian mixture fitted to the
posterior means (gmm) and one Gaussian per digit (class), scored by the project's classifier on the test split.

Prints, per run: Fréchet distance, classifier score, precision and recall of 10,000 samples from each sampler beside
the real-data floor; gmm / prior Fréchet ratio (target: at most 1/3); the share of each digit's class samples that the
classifier calls that digit (target: at least 0.9 for every digit); and the time to fit the mixture on the posterior
means of 50,000 training images (target: under 30 s).

Usage (one job at a time on this machine):
    betavae classifier train
    betavae train --preset description --name description
    betavae train --name betavae                     # the default preset, beta = 4
    python bench/samplers.py runs/description runs/betavae
    python bench/samplers.py runs/description --class-components 1,3,5,10
    python bench/samplers.py runs/description runs/mlp-likelihood --compare-fits
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from betavae import data as datalib
from betavae import samplers
from betavae.evaluation import quality
from betavae.evaluation.classifier import default_classifier, features_and_probabilities, load_classifier
from betavae.evaluation.evaluate import sample_quality_section
from betavae.runs import Run


def fit_seconds(run: Run) -> tuple[float, int]:
    """Seconds to fit the default mixture on the codes of (at most) 50,000 training images."""
    codes = run.training_codes.samples
    start = time.perf_counter()
    samplers.get("gmm").fit(codes, seed=run.config.seed)
    return time.perf_counter() - start, len(codes)


def report(path: str, n: int) -> None:
    run = Run.open(path, finished=True)
    seconds, points = fit_seconds(run)
    section = sample_quality_section(run, run.split("test"), default_classifier(run.config.dataset), n, seed=0)
    floor, by_kind = section["floor"], section["samplers"]
    print(f"{path}: {run.describe_objective()}, {run.last_record['epoch']} epochs; {section['n']} samples each")
    print(f"  {'':8} {'Fréchet':>8} {'score':>6} {'precision':>9} {'recall':>6}")
    print(f"  {'floor':8} {floor['frechet_distance']:8.2f} {floor['classifier_score']:6.2f} "
          f"{floor['precision']:9.3f} {floor['recall']:6.3f}")
    for kind, entry in by_kind.items():
        print(f"  {kind:8} {entry['frechet_distance']:8.2f} {entry['classifier_score']:6.2f} "
              f"{entry['precision']:9.3f} {entry['recall']:6.3f}   classes {entry['class_histogram']}")
    prior, gmm = by_kind["prior"], by_kind["gmm"]
    print(f"  gmm / prior Fréchet distance: {gmm['frechet_distance'] / prior['frechet_distance']:.3f} "
          f"(1/{prior['frechet_distance'] / gmm['frechet_distance']:.2f}); precision "
          f"{gmm['precision'] - prior['precision']:+.3f}, recall {gmm['recall'] - prior['recall']:+.3f}")
    if "class" in by_kind:
        accuracy = by_kind["class"]["label_accuracy"]
        print("  class samples classified as the asked digit: " +
              " ".join(f"{y}:{a:.3f}" for y, a in accuracy.items()) + f"  (min {min(accuracy.values()):.3f})")
    print(f"  fitting the default mixture ({samplers.get('gmm').default_components} full-covariance components) on "
          f"{points:,} posterior draws: {seconds:.1f} s")


def compare_class_components(path: str, counts: list[int], n: int = 5000) -> None:
    """How many mixture components per label the class sampler needs: the share of each label's samples that the
    classifier calls that label, and the fitting time, for each count."""
    run = Run.open(path, finished=True)
    classifier, _ = load_classifier(default_classifier(run.config.dataset))
    means, _, labels = run.training_codes
    for count in counts:
        start = time.perf_counter()
        sampler = samplers.get("class").fit(means, labels, count, seed=run.config.seed)
        seconds = time.perf_counter() - start
        draw = sampler.grid(n, torch.Generator().manual_seed(11))  # a share of n for each label
        z, asked = draw.z, draw.labels
        with torch.no_grad():
            _, probabilities = features_and_probabilities(classifier, torch.sigmoid(run.model.decode(z)))
        hits = probabilities.argmax(1) == asked
        shares = [float(hits[asked == y].float().mean()) for y in sampler.labels]
        print(f"{path}: class sampler, {count} components per label (fitted in {seconds:.1f} s): " +
              " ".join(f"{s:.3f}" for s in shares) + f"  (min {min(shares):.3f})", flush=True)


def compare_fits(paths: list[str], n: int = 10_000) -> None:
    """The mixture fitted to posterior draws (what gmm does) against fitted to posterior means, with 10, 20 and 40
    components: Fréchet distance, precision and recall against the test images."""
    classifier, _ = load_classifier(default_classifier("mnist"))
    for path in paths:
        run = Run.open(path, finished=True)
        test = run.split("test")
        real, _ = features_and_probabilities(classifier, datalib.as_float(test.images[:n]))
        codes = run.training_codes
        for fitted_to, points in (("draws", codes.samples), ("means", codes.means)):
            for count in (10, 20, 40):
                sampler = samplers.get("gmm").fit(points, components=count, seed=run.config.seed)
                with torch.no_grad():
                    z = sampler.draw(n, torch.Generator().manual_seed(11))
                    fake, _ = features_and_probabilities(classifier, torch.sigmoid(run.model.decode(z)))
                precision, recall = quality.precision_recall(real, fake)
                print(f"{path}: gmm fitted to posterior {fitted_to}, {count} components: Fréchet distance "
                      f"{quality.frechet_distance(fake, real):.2f}, precision {precision:.3f}, recall {recall:.3f}",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--n", type=int, default=10_000, help="samples per sampler")
    parser.add_argument("--class-components", metavar="K,K", help="instead: compare the class sampler with K "
                        "components per label (on the first run), e.g. 1,3,5,10")
    parser.add_argument("--compare-fits", action="store_true", help="instead: gmm fitted to posterior draws against "
                        "fitted to posterior means, 10, 20 and 40 components")
    args = parser.parse_args()
    torch.manual_seed(0)
    np.set_printoptions(precision=3)
    if args.compare_fits:
        compare_fits(args.runs)
        return
    if args.class_components:
        compare_class_components(args.runs[0], [int(k) for k in args.class_components.split(",")])
        return
    for path in args.runs:
        report(path, args.n)


if __name__ == "__main__":
    main()
