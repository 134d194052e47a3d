"""Samplers fitted after training: the prior, a Gaussian mixture on the posterior means, one Gaussian per label."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from betavae import cli, samplers
from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.runs import Run
from betavae.training import fit, folder

from .conftest import synthetic_images

NODE = shutil.which("node")
DECODER = Path(samplers.__file__).parent / "assets" / "decoder.js"
CENTRES = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, -3.0]])


def clusters(n_per: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    points = np.concatenate([c + rng.normal(scale=0.5, size=(n_per, 2)) for c in CENTRES])
    return points, np.repeat(np.arange(len(CENTRES)), n_per)


def test_the_mixture_recovers_known_means():
    points, _ = clusters()
    mixture = samplers.fit_mixture(points, 3, "full", seed=0)
    found = mixture.means.numpy()[np.argsort(mixture.means.numpy()[:, 0])]
    assert np.abs(found - CENTRES).max() < 0.15
    assert torch.allclose(mixture.weights, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.02)
    draws = mixture.draw(3000, torch.Generator().manual_seed(1)).numpy()
    nearest = np.argmin(((draws[:, None] - CENTRES[None]) ** 2).sum(-1), axis=1)
    assert np.allclose(np.bincount(nearest) / 3000, 1 / 3, atol=0.04)


def test_draws_are_shuffled_not_grouped_by_component():
    mixture = samplers.fit_mixture(clusters()[0], 3, seed=0)
    z = mixture.draw(64, torch.Generator().manual_seed(0)).numpy()
    component = np.argmin(((z[:, None] - CENTRES[None]) ** 2).sum(-1), axis=1)
    assert (np.diff(component) != 0).sum() > 25  # about 2/3 of 63 neighbours differ when drawn independently


def test_class_sampling_lands_in_the_asked_cluster():
    points, labels = clusters()
    sampler = samplers.fit_sampler("class", points, labels, components=1)
    for label, centre in enumerate(CENTRES):
        z = sampler.draw(200, torch.Generator().manual_seed(label), label).numpy()
        assert np.abs(z.mean(0) - centre).max() < 0.2
    with pytest.raises(BetaVAEError, match="--digit 7 is not one of this run's labels"):
        sampler.draw(1, torch.Generator(), 7)
    with pytest.raises(BetaVAEError, match="needs labelled training images"):
        samplers.fit_sampler("class", points, np.full(len(points), -1))


def test_the_prior_sampler_gives_torch_randn_codes():
    prior = samplers.fit_sampler("prior", np.zeros((1, 5)))
    z = prior.draw(7, torch.Generator().manual_seed(3))
    assert torch.equal(z, torch.randn(7, 5, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("components, message", [(0, "at least 1"), (5000, "more than the 1200 points")])
def test_impossible_component_counts_are_one_line(components, message):
    with pytest.raises(BetaVAEError, match=message):
        samplers.fit_mixture(clusters()[0], components)


@pytest.fixture
def run(tmp_path):
    x, y = synthetic_images(300, (12, 12))
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    config = Config.of(dataset=str(tmp_path / "d.npz"), val_size=40, hidden=(16,), latent_dim=3, batch_size=32,
                    epochs=1, beta=1.0)
    return Run.open(fit(config, tmp_path / "r", log=lambda line: None))


def test_a_saved_sampler_reloads_bit_identically_and_only_for_its_weights(run):
    fitted = samplers.for_run(run, "gmm", components=4)
    path = samplers.sampler_path(run, "gmm", 4, "full")
    again = samplers.load(path, samplers.weights_digest(run))
    for name in ("weights", "means", "scale_tril"):
        assert torch.equal(getattr(fitted.mixtures[-1], name), getattr(again.mixtures[-1], name))
    weights = run.path / folder.WEIGHTS
    save_file({k: v + 0.01 for k, v in load_file(weights).items()}, weights)  # the run's weights change
    with pytest.raises(BetaVAEError, match="fitted for other weights"):
        samplers.load(path, samplers.weights_digest(run))
    refitted = samplers.for_run(Run.open(run.path), "gmm", components=4)  # refitted by itself
    assert not torch.equal(refitted.mixtures[-1].means, fitted.mixtures[-1].means)


def test_sample_command_with_each_sampler(run, capsys):
    assert cli.main(["sample", str(run.path), "--sampler", "gmm", "--n", "16"]) == 0
    assert cli.main(["sample", str(run.path), "--sampler", "class", "--digit", "2", "--n", "8"]) == 0
    assert cli.main(["sample", str(run.path), "--sampler", "class"]) == 0
    out = capsys.readouterr().out
    assert "samples_gmm.png" in out and "samples_class_2.png" in out and "samples_class.png" in out
    assert cli.main(["sample", str(run.path), "--sampler", "class", "--digit", "9"]) == 1
    assert "--digit 9 is not one of this run's labels (0, 1, 2, 3)" in capsys.readouterr().err
    assert cli.main(["sample", str(run.path), "--digit", "1"]) == 1
    assert "--digit needs --sampler class" in capsys.readouterr().err
    assert cli.main(["sample", str(run.path), "--sampler", "gmm", "--components", "100000"]) == 1
    assert "more than the" in capsys.readouterr().err


def test_an_unlabelled_run_refuses_a_digit(tmp_path, capsys):
    x, _ = synthetic_images(200, (12, 12))
    np.savez(tmp_path / "u.npz", images=x)
    config = Config.of(dataset=str(tmp_path / "u.npz"), val_size=40, hidden=(16,), latent_dim=2, epochs=1)
    run_dir = fit(config, tmp_path / "r", log=lambda line: None)
    assert cli.main(["sample", str(run_dir), "--sampler", "class", "--digit", "1"]) == 1
    err = capsys.readouterr().err
    assert "without labels" in err and err.count("\n") == 1


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed (CI installs it)")
def test_the_report_draws_as_python_does(tmp_path):
    mixture = samplers.fit_mixture(clusters()[0], 3, seed=0)
    rng = np.random.default_rng(0)
    cases = [(rng.normal(size=2).tolist(), float(u)) for u in [0.0, 0.2, 0.5, 0.9, 0.999]]
    script = (f"const D = require({json.dumps(str(DECODER))}); const m = D.prepareMixture({json.dumps(mixture.to_json())});"
              f"process.stdout.write(JSON.stringify({json.dumps(cases)}.map(([e, u]) => Array.from(D.mixtureDraw(m, e, u)))))")
    got = json.loads(subprocess.run([NODE, "-e", script], capture_output=True, text=True, check=True).stdout)
    for (eps, u), z in zip(cases, got):
        expected = mixture.draw_with(torch.tensor(eps), u).numpy()
        assert np.abs(np.array(z) - expected).max() < 1e-4  # the page holds float32 parameters


def test_a_row_per_label_and_shares_that_round_up():
    points, labels = clusters()
    sampler = samplers.fit_sampler("class", points, labels, components=2)
    z, asked = sampler.draw_per_label(2, torch.Generator().manual_seed(0))  # fewer than the labels: one each
    assert asked.tolist() == [0, 1, 2] and z.shape == (3, 2)
    z, asked = sampler.draw_per_label(64, torch.Generator().manual_seed(0))
    assert asked.tolist() == [0] * 22 + [1] * 22 + [2] * 22
