"""`betavae evaluate`: every number a user may want to trust, on the test split by default, with what each means.

Writes runs/<name>/evaluation.json and returns the same dictionary; `format_table` prints it. Labels say plainly
when a number is not a likelihood (BCE on grey levels) and on which targets each likelihood was computed.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .. import atomic, samplers
from .. import data as datalib
from ..errors import BetaVAEError
from ..model import VAE
from ..model.likelihood import active_units, bits_per_dim, elbo_terms, iwae_bound
from ..model.objectives import negative_elbo
from ..runs import Run
from . import quality
from .classifier import DigitClassifier, default_classifier, features_and_probabilities, load_classifier

EVALUATION = "evaluation.json"
FORMAT = 1  # the layout of evaluation.json


def elbo_repeats(model: VAE, split: datalib.Split, pixels: str, repeats: int, seed: int) -> dict[str, Any]:
    """The negative ELBO (beta = 1, one sampled z per image) over `repeats` noise draws: mean, sd and its terms."""
    runs_ = [elbo_terms(model, split, negative_elbo(), pixels, seed=seed + r) for r in range(repeats)]
    values = [r["neg_elbo"] for r in runs_]
    mean = lambda key: statistics.fmean(r[key] for r in runs_)  # noqa: E731
    return {
        "neg_elbo": statistics.fmean(values), "neg_elbo_sd": statistics.stdev(values) if repeats > 1 else 0.0,
        "distortion": mean("recon"), "rate": mean("kl"), "repeats": repeats,
        "kl_per_dim": [statistics.fmean(r["kl_per_dim"][d] for r in runs_) for d in range(model.latent_dim)],
    }


def likelihood_section(model: VAE, split: datalib.Split, trained_on: str, k: int, repeats: int, seed: int,
                       log: Callable[[str], None]) -> dict[str, Any]:
    if model.likelihood.name != "bernoulli":
        return density_section(model, split, k, repeats, seed, log)
    pixels_per_image = math.prod(model.image_shape)
    section: dict[str, Any] = {}
    if trained_on == "grey":
        section["elbo_grey"] = {**elbo_repeats(model, split, "grey", repeats, seed),
                                "targets": "grey levels", "is_likelihood": False,
                                "label": "BCE on grey levels: NOT a likelihood; not comparable with binarized MNIST"}
    section["elbo_binarized"] = {**elbo_repeats(model, split, "binary", repeats, seed),
                                 "targets": "dynamically binarized images (a fresh draw per repeat)",
                                 "is_likelihood": True,
                                 "label": "negative ELBO on binarized images" +
                                          (" (the model was trained on grey levels)" if trained_on == "grey" else "")}
    if k > 0:
        start = time.perf_counter()
        log(f"importance-weighted bound with K = {k} on {len(split)} images ...")
        bounds = iwae_bound(model, split.images, k, seed=seed, binarize_seed=seed + 7)
        nll = float(-bounds.mean())
        section["iwae"] = {
            "k": k, "nll": nll, "nll_sem": float(bounds.std() / math.sqrt(len(bounds))),
            "bits_per_dim": nll / (pixels_per_image * math.log(2)), "seconds": round(time.perf_counter() - start, 1),
            "targets": f"one fixed binarization of the images (seed {seed + 7})", "is_likelihood": True,
            "label": f"-log p(x) upper bound, IWAE K={k}, nats per image"}
    return section


def density_section(model: VAE, split: datalib.Split, k: int, repeats: int, seed: int, log: Callable[[str], None]
                    ) -> dict[str, Any]:
    """The negative ELBO and IWAE bound of a likelihood other than Bernoulli, on the images as they are: in bits/dim
    where it is a probability of 8-bit pixels (logistic), else labelled as the density it is."""
    likelihood = model.likelihood
    discrete = likelihood.is_likelihood("grey")
    bits = (lambda nats: {"bits_per_dim": bits_per_dim(nats, model)}) if discrete else (lambda nats: {})  # noqa: E731
    elbo = elbo_repeats(model, split, "grey", repeats, seed)
    section: dict[str, Any] = {"elbo": {**elbo, **bits(elbo["neg_elbo"]), "targets": "the images as they are",
                                        "is_likelihood": discrete, "label": f"{likelihood.name}: {likelihood.meaning}"}}
    if k > 0:
        start = time.perf_counter()
        log(f"importance-weighted bound with K = {k} on {len(split)} images ...")
        bounds = iwae_bound(model, split.images, k, seed=seed)
        nll = float(-bounds.mean())
        section["iwae"] = {"k": k, "nll": nll, "nll_sem": float(bounds.std() / math.sqrt(len(bounds))), **bits(nll),
                           "seconds": round(time.perf_counter() - start, 1), "targets": "the images as they are",
                           "is_likelihood": discrete, "label": f"IWAE K={k}, nats per image; {likelihood.meaning}"}
    return section


def sample_quality_section(run: Run, split: datalib.Split, classifier_file: Path, n: int, seed: int,
                           scorer: tuple[DigitClassifier, float] | None = None) -> dict[str, Any]:
    """Samples of each sampler against real images in the classifier's feature space, beside the real-against-real
    floor; for the class sampler also the share of each label's samples that the classifier gives that label.
    `scorer`: the classifier and its accuracy, when already loaded from classifier_file (by `classifier_for`)."""
    classifier, accuracy = scorer or classifier_for(run, classifier_file)
    train = run.split("train")
    n = min(n, len(split), len(train))
    features = lambda images: features_and_probabilities(classifier, datalib.as_float(images))  # noqa: E731
    real_f, real_p = features(split.images[:n])
    train_f, _ = features(train.images[:n])
    floor_precision, floor_recall = quality.precision_recall(real_f, train_f)
    section: dict[str, Any] = {
        "n": n, "classifier": str(classifier_file), "classifier_test_accuracy": accuracy,
        "pixels": "mean images of the decoded samples",
        "floor": {"frechet_distance": quality.frechet_distance(train_f, real_f), "what": "train vs split images",
                  "classifier_score": quality.classifier_score(real_p), "precision": floor_precision,
                  "recall": floor_recall, "class_histogram": quality.class_histogram(real_p)},
        "samplers": {}}
    for name in samplers.available(run):
        sampler = samplers.for_run(run, name)
        codes = sampler.grid(n, torch.Generator().manual_seed(seed + 11))
        with torch.no_grad():
            fake_f, fake_p = features(run.model.decode_mean(codes.z))
        precision, recall = quality.precision_recall(real_f, fake_f)
        entry = {"frechet_distance": quality.frechet_distance(fake_f, real_f),
                 "classifier_score": quality.classifier_score(fake_p), "precision": precision, "recall": recall,
                 "class_histogram": quality.class_histogram(fake_p), "settings": sampler.settings}
        if codes.labels is not None:  # drawn by label: how often the classifier agrees
            hits = fake_p.argmax(1) == codes.labels
            entry["label_accuracy"] = {str(y): float(hits[codes.labels == y].float().mean()) for y in sampler.labels}
        section["samplers"][name] = entry
    return section


def classifier_training(run: Run) -> str:
    """The command that trains a classifier on a run's data, with the run's own validation size (the classifier's
    default, 5000, is more than a small data set holds)."""
    return f"betavae classifier train --dataset {run.config.dataset} --val-size {run.config.val_size}"


def classifier_for(run: Run, path: Path) -> tuple[DigitClassifier, float]:
    """The classifier at path, refused in one line when it cannot score this run's images: another image shape, or
    fewer classes than the run has labels (it was trained on other data)."""
    classifier, accuracy = load_classifier(path, classifier_training(run))
    fix = f"train one on this run's data: {classifier_training(run)} --out FILE"
    if tuple(classifier.image_shape) != tuple(run.image_shape):
        shape = lambda s: "x".join(map(str, s))  # noqa: E731
        raise BetaVAEError(f"{path} classifies images of {shape(classifier.image_shape)} (channels x height x width), "
                           f"but {run.path} has images of {shape(run.image_shape)}; {fix}")
    labels = [int(split.labels.max()) for split in (run.split("train"), run.split("test"))
              if split.labelled and len(split)]
    if labels and max(labels) >= classifier.classes:
        raise BetaVAEError(f"{path} tells {classifier.classes} classes (0 to {classifier.classes - 1}), but "
                           f"{run.path} has label {max(labels)}: it was trained on other labels; {fix}")
    return classifier, accuracy


def representation_section(model: VAE, train: datalib.Split, split: datalib.Split, seed: int) -> dict[str, Any]:
    """Probes trained on posterior means of the training split, tested on those of the evaluated split."""
    train_z, test_z = model.posterior_means(train.images), model.posterior_means(split.images)
    train_y, test_y = train.labels.numpy(), split.labels.numpy()
    return {"linear_probe_accuracy": quality.linear_probe(train_z, train_y, test_z, test_y, seed),
            "knn_probe_accuracy": quality.knn_probe(train_z, train_y, test_z, test_y),
            "chance": float(max(torch.bincount(split.labels)) / len(split)),
            "features": "posterior means; fitted on the training split"}


def evaluate(run: Run | str | Path, split: str = "test", importance_samples: int = 1000, repeats: int = 5,
             n_samples: int = 10000, seed: int = 0, classifier: str | Path | None = None, probes: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate a finished run and write evaluation.json (see the module docstring)."""
    run = run if isinstance(run, Run) else Run.open(run)
    run.require_finished()
    run.require_writable()  # before minutes of work whose result could not be written
    config, model = run.config, run.model
    target = run.split(split)
    if len(target) == 0:
        raise BetaVAEError(f"the {split} split of {run.path} is empty; choose another --split")
    result: dict[str, Any] = {"format": FORMAT, "run": str(run.path), "run_id": run.meta.run_id, "split": split,
                              "images": len(target),
                              "seed": seed, "trained_on": config.pixels, "objective": run.objective,
                              "loss": run.describe_objective()}
    classifier_file = Path(classifier) if classifier else default_classifier(config.dataset)
    scored = classifier_file is not None and (bool(classifier) or classifier_file.is_file())
    scorer = classifier_for(run, classifier_file) if scored else None  # missing or unfit: said before minutes of work
    result.update(likelihood_section(model, target, config.pixels, importance_samples, repeats, seed, log))
    result["active_units"] = active_units(torch.from_numpy(model.posterior_means(target.images)).double())
    if scored:
        result["sample_quality"] = sample_quality_section(run, target, classifier_file, n_samples, seed, scorer)
    elif classifier_file is None:
        result["sample_quality"] = ("skipped: no classifier is known for this data set (train one with betavae "
                                    "classifier train --dataset DATA --out FILE, then pass --classifier FILE)")
    else:
        result["sample_quality"] = (f"skipped: no classifier at {classifier_file} (train one: "
                                    f"{classifier_training(run)})")
    if probes:
        train = run.split("train")
        if not (target.labelled and train.labelled):
            result["representation"] = "skipped: the probes need every image labelled"
        elif len(torch.unique(train.labels)) < 2:
            result["representation"] = "skipped: the training images' labels have one class; a probe needs two"
        else:
            result["representation"] = representation_section(model, train, target, seed)
    previous = previous_split(run.path / EVALUATION)
    if previous and previous != split:  # one evaluation.json per run: the report shows the latest
        log(f"betavae: {run.path / EVALUATION} held the {previous} split's evaluation; it now holds the {split} split's")
    atomic.write_json(run.path / EVALUATION, result)
    return result


def previous_split(path: Path) -> str | None:
    """The split an earlier evaluation.json was of (None when there is none, or it cannot be read)."""
    try:
        split = json.loads(path.read_text()).get("split") if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return split if isinstance(split, str) else None


def format_table(result: dict[str, Any]) -> str:
    """The evaluation as an aligned text table, each number with its meaning."""
    lines = [f"evaluation of {result['run']} on the {result['split']} split ({result['images']} images, "
             f"trained on {result['trained_on']} pixels; {result.get('loss', '')})"]
    row = lambda name, value, note="": lines.append(f"  {name:38s} {value:>16s}  {note}")  # noqa: E731
    for key in ("elbo_grey", "elbo_binarized", "elbo"):
        if key in result:
            e = result[key]
            in_bits = f" ({e['bits_per_dim']:.4f} bits/dim)" if "bits_per_dim" in e else ""
            row(f"neg. ELBO, {e['targets'][:24]}", f"{e['neg_elbo']:.2f} ± {e['neg_elbo_sd']:.2f}",
                f"nats/image{in_bits}, {e['repeats']} repeats; {e['label']}")
            row("  distortion (recon) / rate (KL)", f"{e['distortion']:.2f} / {e['rate']:.2f}", "nats/image")
    if "iwae" in result:
        i = result["iwae"]
        in_bits = f" ({i['bits_per_dim']:.4f} bits/dim)" if "bits_per_dim" in i else f"; {i['label']}"
        row(f"NLL, IWAE K={i['k']}", f"{i['nll']:.2f} ± {i['nll_sem']:.2f}",
            f"nats/image{in_bits}, {i['targets']}, {i['seconds']} s")
    row("active units (Var E[z|x] > 0.01)", str(result["active_units"]))
    sq = result.get("sample_quality")
    if isinstance(sq, dict):
        floor = sq["floor"]
        row("sample quality (classifier features)", "", f"{sq['n']} samples per sampler; floor: train vs "
            f"{result['split']} images")
        row("  Fréchet distance, floor", f"{floor['frechet_distance']:.2f}",
            f"classifier score {floor['classifier_score']:.2f}, precision / recall (k = 3) "
            f"{floor['precision']:.3f} / {floor['recall']:.3f}")
        for kind, entry in sq["samplers"].items():
            row(f"  Fréchet distance, {kind}", f"{entry['frechet_distance']:.2f}",
                f"classifier score {entry['classifier_score']:.2f}, precision / recall {entry['precision']:.3f} / "
                f"{entry['recall']:.3f}; classes {' '.join(map(str, entry['class_histogram']))}")
            if "label_accuracy" in entry:
                accuracy = entry["label_accuracy"]
                row("    share classified as the asked label", f"{min(accuracy.values()):.3f} (min)",
                    " ".join(f"{y}:{a:.2f}" for y, a in accuracy.items()))
    elif sq:
        row("sample quality", "skipped", sq)
    if isinstance(result.get("representation"), str):
        row("linear probe / 5-NN probe accuracy", "skipped", result["representation"])
    elif "representation" in result:
        r = result["representation"]
        row("linear probe / 5-NN probe accuracy", f"{r['linear_probe_accuracy']:.4f} / {r['knn_probe_accuracy']:.4f}",
            f"chance {r['chance']:.3f}; posterior means, fitted on train")
    return "\n".join(lines)
