"""Likelihood bounds, sample-quality and representation metrics, and the evaluate/sweep commands."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from betavae import cli
from betavae.config import Config
from betavae.evaluation import quality
from betavae.evaluation.classifier import DigitClassifier, random_shift, save_classifier
from betavae.model import networks
from betavae.model.likelihood import elbo_terms, importance_weighted_log_likelihood, iwae_bound
from betavae.model.objectives import negative_elbo
from betavae.sweep import FIGURE, SUMMARY_CSV, SUMMARY_MD

from .conftest import synthetic_images

SHAPE = (1, 12, 12)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return networks.build(Config.of(hidden=(16,), latent_dim=3), SHAPE).eval()


def binary_images(n=40, seed=0):
    return torch.bernoulli(torch.full((n, *SHAPE), 0.3), generator=torch.Generator().manual_seed(seed))


def test_iwae_at_k1_is_the_elbo_in_expectation():
    model, x = tiny_model(), binary_images()
    g = torch.Generator().manual_seed(0)
    k1 = torch.stack([importance_weighted_log_likelihood(model, x, 1, g) for _ in range(300)]).mean()
    elbo = -torch.tensor([elbo_terms(model, _split(x), negative_elbo(), "grey", seed=s)["neg_elbo"]
                          for s in range(300)]).mean()
    assert k1.item() == pytest.approx(elbo.item(), abs=0.05 * abs(elbo.item()) / 100 + 0.2)


def _split(x):
    from betavae.data import Split
    return Split(x, torch.zeros(len(x), dtype=torch.long))


def test_iwae_does_not_decrease_with_k():
    model, x = tiny_model(), binary_images()
    bounds = [iwae_bound(model, x, k, seed=1).mean().item() for k in (1, 10, 100, 1000)]
    assert all(b2 >= b1 - 0.05 for b1, b2 in zip(bounds, bounds[1:]))
    assert bounds[-1] > bounds[0]


def test_iwae_is_exact_when_the_posterior_is_the_prior():
    """Decoder ignores z and the encoder outputs N(0, I): every importance weight equals p(x), in closed form."""
    model = tiny_model()
    with torch.no_grad():
        encoder_out = model.encoder[1][-1]
        encoder_out.weight.zero_(), encoder_out.bias.zero_()
        model.decoder[0].weight.zero_()
    x = binary_images()
    logits = model.decode(torch.zeros(1, 3))[0].flatten()
    exact = (x.flatten(1) * logits - F.softplus(logits)).sum(1)
    for k in (1, 7, 50):
        assert torch.allclose(iwae_bound(model, x, k, seed=k, batch_size=13), exact, atol=1e-4)


def test_iwae_in_small_chunks_estimates_the_same_bound():
    model, x = tiny_model(), binary_images(10)
    a = importance_weighted_log_likelihood(model, x, 3000, torch.Generator().manual_seed(0), max_decodes=10 ** 6)
    b = importance_weighted_log_likelihood(model, x, 3000, torch.Generator().manual_seed(1), max_decodes=30)
    assert (a - b).abs().max() < 0.1 and not torch.equal(a, b)


def test_frechet_distance_is_zero_on_itself_and_grows_with_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 8))
    assert abs(quality.frechet_distance(a, a)) < 1e-6
    small = quality.frechet_distance(a, a + rng.normal(scale=0.1, size=a.shape))
    large = quality.frechet_distance(a, a + rng.normal(scale=1.0, size=a.shape))
    assert 0 < small < large


def test_frechet_distance_matches_the_closed_form_and_handles_dead_features():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4000, 3)) * [1.0, 2.0, 0.5], rng.normal(size=(4000, 3)) * [3.0, 1.0, 0.5] + 1.0
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # nearly diagonal: sqrt(C_a C_b) ~ sqrt of the diagonal
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + (np.sqrt(np.diag(ca)) - np.sqrt(np.diag(cb))) ** 2 @ np.ones(3)
    assert abs(quality.frechet_distance(a, b) - expected) < 0.05 * expected
    dead = lambda x: np.concatenate([x, np.zeros((len(x), 2))], axis=1)  # features a ReLU never turns on
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isclose(quality.frechet_distance(dead(a), dead(b)), quality.frechet_distance(a, b), rel_tol=1e-9)


def test_precision_recall_of_a_set_with_itself_is_one():
    x = torch.randn(300, 5)
    assert quality.precision_recall(x, x) == (1.0, 1.0)
    far = x + 100
    assert quality.precision_recall(x, far) == (0.0, 0.0)


def test_classifier_score_bounds():
    confident = F.one_hot(torch.arange(10).repeat(5), 10).float()
    assert quality.classifier_score(confident) == pytest.approx(10, rel=1e-6)
    assert quality.classifier_score(torch.full((20, 10), 0.1)) == pytest.approx(1.0)
    assert quality.class_histogram(confident) == [5] * 10


def test_probes_beat_chance_only_on_real_labels():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 800)
    x = rng.normal(size=(800, 6)) + np.eye(4, 6)[y] * 3
    assert quality.linear_probe(x[:600], y[:600], x[600:], y[600:]) > 0.9
    assert quality.knn_probe(x[:600], y[:600], x[600:], y[600:]) > 0.9
    shuffled = rng.permutation(y)
    assert quality.linear_probe(x[:600], shuffled[:600], x[600:], shuffled[600:]) < 0.4


def test_random_shift_moves_content_by_at_most_two_pixels_each_way():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1
    generator = torch.Generator().manual_seed(3)
    places = set()
    for _ in range(200):
        moved = random_shift(x, generator)
        assert moved.sum() == 1 and moved.shape == x.shape
        row, column = (int(i) for i in moved[0, 0].nonzero()[0])
        places.add((row - 4, column - 4))
    assert places == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}  # every shift, and only those


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    x, y = synthetic_images(300, (12, 12))
    np.savez(folder / "data.npz", images=x, labels=y)
    classifier = DigitClassifier(SHAPE, classes=4)
    save_classifier(classifier, folder / "classifier.safetensors", 0.5)
    assert cli.main(["train", "--dataset", str(folder / "data.npz"), "--val-size", "60", "--hidden", "32",
                     "--latent-dim", "3", "--epochs", "1", "--batch-size", "32", "--no-figures",
                     "--runs", str(folder), "--name", "run"]) == 0
    return folder


def test_evaluate_command(finished_run, capsys):
    assert cli.main(["evaluate", str(finished_run / "run"), "--importance-samples", "20", "--repeats", "2",
                     "--samples", "25", "--classifier", str(finished_run / "classifier.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "NOT a likelihood" in out and "IWAE K=20" in out and "Fréchet" in out
    result = json.loads((finished_run / "run" / "evaluation.json").read_text())
    assert result["split"] == "test" and result["elbo_grey"]["is_likelihood"] is False
    iwae, elbo = result["iwae"], result["elbo_binarized"]
    assert iwae["nll"] <= elbo["neg_elbo"] + 3 * elbo["neg_elbo_sd"] + 1
    assert iwae["bits_per_dim"] == pytest.approx(iwae["nll"] / (144 * math.log(2)))
    quality_of = result["sample_quality"]["samplers"]
    assert set(quality_of) == {"prior", "gmm", "class"}  # each sampler scored beside the others
    assert sum(quality_of["prior"]["class_histogram"]) == 25 and sum(quality_of["gmm"]["class_histogram"]) == 25
    labels = quality_of["class"]["label_accuracy"]
    assert set(labels) == {"0", "1", "2", "3"} and all(0 <= a <= 1 for a in labels.values())
    assert "Fréchet distance, gmm" in out and "share classified as the asked label" in out
    assert 0 <= result["representation"]["linear_probe_accuracy"] <= 1


def test_evaluate_without_classifier_says_how_to_get_one(finished_run, capsys):
    assert cli.main(["evaluate", str(finished_run / "run"), "--importance-samples", "0", "--repeats", "2",
                     "--no-probes"]) == 0
    assert "betavae classifier train" in capsys.readouterr().out


@pytest.mark.parametrize("shape, classes, message", [
    (None, 4, "no classifier at {file}; train one with: betavae classifier train --dataset {data} --val-size 60 --out {file}"),
    ((1, 16, 16), 4, "classifies images of 1x16x16 (channels x height x width), but {run} has images of 1x12x12"),
    ((3, 12, 12), 4, "classifies images of 3x12x12"),
    ((1, 12, 12), 3, "tells 3 classes (0 to 2), but {run} has label 3: it was trained on other labels"),
])
def test_evaluate_refuses_a_classifier_that_cannot_score_the_run_before_any_work(finished_run, tmp_path, shape,
                                                                                  classes, message, capsys):
    """A mistyped --classifier, one for another image size or channel count, or one of fewer classes than the run's
    labels is one line, said at once (not after minutes of likelihood bounds), with advice that works."""
    file = tmp_path / "other.safetensors"
    if shape:
        save_classifier(DigitClassifier(shape, classes=classes), file, 0.5)
    run = finished_run / "run"
    (run / "evaluation.json").unlink(missing_ok=True)
    assert cli.main(["evaluate", str(run), "--importance-samples", "1000", "--repeats", "5",
                     "--classifier", str(file)]) == 1
    err = capsys.readouterr().err
    assert message.format(file=file, run=run, data=finished_run / "data.npz") in err, err
    assert len(err.strip().splitlines()) == 1 and not (run / "evaluation.json").exists()


def test_evaluating_another_split_says_it_replaces_the_earlier_evaluation(finished_run, capsys):
    argv = ["evaluate", str(finished_run / "run"), "--importance-samples", "0", "--repeats", "2", "--no-probes"]
    assert cli.main([*argv, "--split", "test"]) == 0 and cli.main([*argv, "--split", "train"]) == 0
    assert "held the test split's evaluation; it now holds the train split's" in capsys.readouterr().err


def test_sweep_runs_skips_and_summarises(finished_run, capsys):
    argv = ["sweep", "--beta", "0.5,2", "--seeds", "0", "--dataset", str(finished_run / "data.npz"),
            "--val-size", "60", "--hidden", "16", "--latent-dim", "2", "--epochs", "1", "--runs", str(finished_run),
            "--name", "sw"]
    assert cli.main(argv) == 0
    sweep_dir = finished_run / "sw"
    rows = (sweep_dir / SUMMARY_CSV).read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("beta,seed")
    assert (sweep_dir / SUMMARY_MD).is_file() and (sweep_dir / FIGURE).stat().st_size > 0
    stamp = (sweep_dir / "beta-0.5-seed-0" / "model.safetensors").stat().st_mtime_ns
    assert cli.main(argv) == 0  # finished points are skipped
    assert (sweep_dir / "beta-0.5-seed-0" / "model.safetensors").stat().st_mtime_ns == stamp
    kl = {float(r.split(",")[0]): float(r.split(",")[5]) for r in rows[1:]}
    assert kl[0.5] > kl[2.0]  # a larger beta buys a lower rate


def test_sweep_rejects_negative_beta(capsys):
    assert cli.main(["sweep", "--beta", "-1"]) == 1
    assert "beta must be a number from 0 to 1e+06, got -1.0" in capsys.readouterr().err


def test_probes_on_labels_of_one_class_are_skipped_with_the_reason(tmp_path, capsys):
    x, _ = synthetic_images(120)
    np.savez(tmp_path / "one.npz", images=x, labels=np.zeros(len(x), dtype=np.int64))
    assert cli.main(["train", "--dataset", str(tmp_path / "one.npz"), "--epochs", "1", "--hidden", "16",
                     "--latent-dim", "2", "--val-size", "20", "--runs", str(tmp_path), "--name", "r",
                     "--no-figures"]) == 0
    assert cli.main(["evaluate", str(tmp_path / "r"), "--importance-samples", "0", "--repeats", "1"]) == 0
    assert "labels have one class; a probe needs two" in capsys.readouterr().out
    result = json.loads((tmp_path / "r" / "evaluation.json").read_text())
    assert result["representation"].startswith("skipped")
    assert cli.main(["reconstruct", str(tmp_path / "r"), "--split", "val"]) == 0  # the splits the advice names exist


@pytest.mark.parametrize("labels, everywhere, message", [(-1, False, "run from -1 to"), (-1, True, "run from -1 to -1"),
                                                        (2 ** 40, False, "below 1,000,000")])
def test_labels_that_are_not_class_numbers_are_refused_at_load(tmp_path, labels, everywhere, message, capsys):
    x, y = synthetic_images(60)
    y = y.astype(np.int64)
    y[slice(None) if everywhere else 3] = labels  # all -1 too: a user's file has labels, or leaves them out
    np.savez(tmp_path / "bad.npz", images=x, labels=y)
    assert cli.main(["train", "--dataset", str(tmp_path / "bad.npz"), "--epochs", "1", "--runs", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "renumber them" in err and len(err.strip().splitlines()) == 1
