"""Samplers: the prior, a Gaussian mixture on posterior draws, a mixture per label; one class each behind one registry,
drawn from Python (Run.sample) as the command line draws them, kept in files that are checked when read."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from betavae import checksums, cli, samplers
from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.pictures import draw, report, run_figures
from betavae.runs import Run
from betavae.samplers import registry, store
from betavae.training import fit, folder

from .conftest import synthetic_images, within

NODE = shutil.which("node")
JS = Path(__file__).parent / "js"
DECODER = Path(samplers.__file__).parent.parent / "assets" / "decoder.js"
CENTRES = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, -3.0]])
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (CI installs it)")


def clusters(n_per: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    points = np.concatenate([c + rng.normal(scale=0.5, size=(n_per, 2)) for c in CENTRES])
    return points, np.repeat(np.arange(len(CENTRES)), n_per)


# --- the samplers themselves ------------------------------------------------------------------------------------------
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
    sampler = samplers.get("class").fit(points, labels, components=1)
    for label, centre in enumerate(CENTRES):
        z = sampler.draw(200, torch.Generator().manual_seed(label), label).numpy()
        assert np.abs(z.mean(0) - centre).max() < 0.2
    with pytest.raises(BetaVAEError, match="--digit 7 is not one of this run's labels"):
        sampler.draw(1, torch.Generator(), 7)
    with pytest.raises(BetaVAEError, match="draws one label at a time"):
        sampler.draw(1, torch.Generator())
    with pytest.raises(BetaVAEError, match="needs labelled training images"):
        samplers.get("class").fit(points, np.full(len(points), -1))


def test_the_prior_sampler_gives_torch_randn_codes_and_takes_no_label_or_components():
    prior = samplers.get("prior").fit(np.zeros((0, 5)))
    z = prior.draw(7, torch.Generator().manual_seed(3))
    assert torch.equal(z, torch.randn(7, 5, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(BetaVAEError, match="draws without a label"):
        prior.draw(1, torch.Generator(), 2)
    with pytest.raises(BetaVAEError, match="the prior has none"):
        samplers.get("prior").fit(np.zeros((0, 5)), components=3)


@pytest.mark.parametrize("components, message", [(0, "at least 1"), (5000, "more than the 1200 points")])
def test_impossible_component_counts_are_one_line(components, message):
    with pytest.raises(BetaVAEError, match=message):
        samplers.fit_mixture(clusters()[0], components)


def test_a_row_per_label_and_shares_that_round_up():
    points, labels = clusters()
    sampler = samplers.get("class").fit(points, labels, components=2)
    codes = sampler.grid(2, torch.Generator().manual_seed(0))  # fewer than the labels: one each
    assert codes.labels.tolist() == [0, 1, 2] and codes.z.shape == (3, 2) and codes.ncol == 1
    codes = sampler.grid(64, torch.Generator().manual_seed(0))
    assert codes.labels.tolist() == [0] * 22 + [1] * 22 + [2] * 22 and codes.ncol == 22
    assert samplers.get("gmm").fit(points, components=3).grid(64, torch.Generator()).labels is None


def test_the_registry_is_what_the_command_line_offers():
    assert registry.NAMES == tuple(registry.SAMPLERS) and samplers.DEFAULT == "prior"
    assert all(name == cls.name for name, cls in registry.SAMPLERS.items())
    sample = cli.build_parser()._subparsers._group_actions[0].choices["sample"]
    option = next(a for a in sample._actions if a.dest == "sampler")
    assert tuple(option.choices) == registry.NAMES and option.default == samplers.DEFAULT
    assert all(cls.help in option.help for cls in registry.SAMPLERS.values())
    with pytest.raises(BetaVAEError, match="unknown sampler 'bogus'; choose one of: prior, gmm, class"):
        samplers.get("bogus")


# --- a run's samplers ------------------------------------------------------------------------------------------------
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
    again = samplers.load(path, samplers.weights_digest(run), 3)
    for name in ("weights", "means", "scale_tril"):
        assert torch.equal(getattr(fitted.mixture(), name), getattr(again.mixture(), name))
    weights = run.path / folder.WEIGHTS
    save_file({k: v + 0.01 for k, v in load_file(weights).items()}, weights)  # the run's weights change
    with pytest.raises(samplers.StaleSampler, match="fitted for other weights"):
        samplers.load(path, samplers.weights_digest(run), 3)
    refitted = samplers.for_run(Run.open(run.path), "gmm", components=4)  # refitted by itself
    assert not torch.equal(refitted.mixture().means, fitted.mixture().means)


def test_the_default_sampler_is_the_prior_everywhere(run):
    assert isinstance(samplers.for_run(run), samplers.PriorSampler)
    images = run.sample(5, seed=4)
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(images, torch.sigmoid(run.model.decode(z)))
    assert cli.main(["sample", str(run.path), "--n", "4"]) == 0
    assert not (run.path / "samplers").exists()  # nothing was fitted


def test_run_sample_gives_what_the_sample_command_shows(run, monkeypatch, capsys):
    shown = []
    original = draw.sample_grid
    monkeypatch.setattr(draw, "sample_grid", lambda model, z, *a: shown.append(z) or original(model, z, *a))
    for sampler, digit in (("class", "2"), ("gmm", None), ("prior", None), ("class", None)):
        assert cli.main(["sample", str(run.path), "--sampler", sampler, "--n", "6", "--seed", "9"] +
                        (["--digit", digit] if digit else [])) == 0
        images = run.sample(6, sampler=sampler, label=int(digit) if digit else None, seed=9)
        assert torch.equal(images, torch.sigmoid(run.model.decode(shown[-1])))
        assert images.shape[1:] == (1, 12, 12) and 0 <= images.min() and images.max() <= 1
    assert len(run.sample(6, sampler="class", seed=9)) == 8  # a row of 2 for each of the 4 labels
    assert torch.equal(run.sample(6, "gmm", seed=1), run.sample(6, "gmm", seed=1))
    assert not torch.equal(run.sample(6, "gmm", seed=1), run.sample(6, "gmm", seed=2))
    with pytest.raises(BetaVAEError, match="--digit needs --sampler class"):
        run.sample(4, "gmm", label=1)


def test_the_api_bounds_how_many_images_one_call_draws(run):
    for n in (0, 10**9, True):
        with pytest.raises(BetaVAEError, match=r"--n must be a whole number from 1 to 100,000"):
            run.sample(n)


def test_sample_command_with_each_sampler(run, capsys):
    assert cli.main(["sample", str(run.path), "--sampler", "gmm", "--n", "16"]) == 0
    assert cli.main(["sample", str(run.path), "--sampler", "class", "--digit", "2", "--n", "8"]) == 0
    assert cli.main(["sample", str(run.path), "--sampler", "class"]) == 0
    out = capsys.readouterr().out
    assert "samples_gmm.png" in out and "samples_class_2.png" in out and "samples_class.png" in out
    for args, message in [(["--sampler", "class", "--digit", "9"], "--digit 9 is not one of this run's labels (0, 1, "
                                                                    "2, 3)"),
                          (["--digit", "1"], "--digit needs --sampler class"),
                          (["--sampler", "gmm", "--components", "1000"], "more than the"),
                          (["--components", "3"], "the prior has none")]:
        assert cli.main(["sample", str(run.path), *args]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as usage:  # a seed is 32-bit, as a run's own: a usage error of the command line
        cli.main(["sample", str(run.path), "--seed", str(2 ** 70)])
    assert usage.value.code == 2 and "and at most 4.29497e+09" in capsys.readouterr().err


def test_an_unlabelled_run_refuses_a_digit(tmp_path, capsys):
    x, _ = synthetic_images(200, (12, 12))
    np.savez(tmp_path / "u.npz", images=x)
    config = Config.of(dataset=str(tmp_path / "u.npz"), val_size=40, hidden=(16,), latent_dim=2, epochs=1)
    run_dir = fit(config, tmp_path / "r", log=lambda line: None)
    assert cli.main(["sample", str(run_dir), "--sampler", "class", "--digit", "1"]) == 1
    err = capsys.readouterr().err
    assert "without labels" in err and err.count("\n") == 1
    assert samplers.available(Run.open(run_dir)) == ["prior", "gmm"]


class MeanSampler(samplers.Sampler):
    """A sampler added as a newcomer would: one class (fitted to the posterior means, one Gaussian)."""

    name, help, source = "means", "one Gaussian fitted to the posterior means", "z from a Gaussian on the means"

    @classmethod
    def points(cls, codes):
        return codes.means


def test_a_new_sampler_is_one_class_and_one_registry_line(run, monkeypatch):
    monkeypatch.setitem(registry.SAMPLERS, "means", MeanSampler)  # the registry line
    assert "means" in samplers.available(run)
    path = run_figures.sample(run, 8, sampler="means")
    assert path.name == "samples_means.png" and path.is_file()
    assert isinstance(samplers.load(samplers.sampler_path(run, "means"), samplers.weights_digest(run), 3),
                      MeanSampler)
    described = {entry["name"]: entry for entry in samplers.explorer_samplers(run)}
    assert described["means"]["labels"] == [] and len(described["means"]["mixtures"]) == 1
    assert described["class"]["labels"] == ["0", "1", "2", "3"] and len(described["class"]["mixtures"]) == 4
    assert run.sample(3, "means").shape == (3, 1, 12, 12)


@needs_node
def test_the_report_draws_as_python_does():
    mixture = samplers.fit_mixture(clusters()[0], 3, seed=0)
    rng = np.random.default_rng(0)
    cases = [(rng.normal(size=2).tolist(), float(u)) for u in [0.0, 0.2, 0.5, 0.9, 0.999]]
    script = (f"const D = require({json.dumps(str(DECODER))}); const m = D.prepareMixture({json.dumps(mixture.to_json())});"
              f"process.stdout.write(JSON.stringify({json.dumps(cases)}.map(([e, u]) => Array.from(D.mixtureDraw(m, e, u)))))")
    got = json.loads(subprocess.run([NODE, "-e", script], capture_output=True, text=True, check=True).stdout)
    for (eps, u), z in zip(cases, got):
        expected = mixture.draw_with(torch.tensor(eps), u).numpy()
        assert np.abs(np.array(z) - expected).max() < 1e-4  # the page holds float32 parameters


@needs_node
def test_the_explorer_offers_each_sampler_as_it_describes_itself(run):
    """explorer.js in a minimal page under Node.js: each sampler in the list, labels for the one that draws by label,
    and each "draw z" the draw Python computes from the same noise."""
    page = report.write_report(run)
    result = subprocess.run([NODE, str(JS / "explorer_draws.js"), str(page)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    draws = json.loads(result.stdout)
    assert list(draws) == ["prior", "gmm", "class"]
    for name, drawn in draws.items():
        sampler = samplers.for_run(run, name)
        assert drawn["labels_offered"] == [str(y) for y in sampler.labels]
        assert drawn["labels_shown"] == sampler.by_label and (drawn["label"] is None) != sampler.by_label
        label = None if drawn["label"] is None else int(drawn["label"])
        expected = sampler.mixture(label).draw_with(torch.tensor(drawn["eps"]), drawn["u"])
        assert (torch.tensor(drawn["z"], dtype=torch.float64) - expected).abs().max().item() < 1e-4


# --- damaged sampler files -------------------------------------------------------------------------------------------
def rewrite(path: Path, change, keep_digest: bool = False) -> None:
    """Change a sampler file's metadata or tensors; with a matching sha256 (crafted), or the old one (damaged)."""
    metadata, tensors = store.read(path)
    change(metadata, tensors)
    if not keep_digest:
        metadata["sha256"] = checksums.content_digest(metadata, tensors)
    save_file(tensors, path, metadata=metadata)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10  # in the last tensor's bytes
    path.write_bytes(bytes(data))


def scaled(key: str, factor: float):
    return lambda metadata, tensors: tensors.update({key: tensors[key] * factor})


DAMAGE = {  # how a file is damaged or crafted -> what the one line says
    "flipped bytes": (flip_a_byte, "do not match the sha256 stored with them"),
    "shifted means": (lambda p: rewrite(p, lambda m, t: t.update({"means/-1": t["means/-1"] + 1}), True),
                      "do not match the sha256 stored with them"),
    "not safetensors": (lambda p: p.write_bytes(b"not a sampler"), "not a safetensors file"),
    "a newer format": (lambda p: rewrite(p, lambda m, t: m.update(format="9")), "format '9', not one this betavae"),
    "kind bogus": (lambda p: rewrite(p, lambda m, t: m.update(kind="bogus")), "kind 'bogus' is none of prior, gmm"),
    "another kind": (lambda p: rewrite(p, lambda m, t: m.update(kind="class")), "labels [-1] do not fit a class"),
    "NaN weights": (lambda p: rewrite(p, scaled("weights/-1", math.nan)), "NaN or infinite"),
    "weights summing to 2": (lambda p: rewrite(p, scaled("weights/-1", 2.0)), "are not a distribution"),
    "negative variance": (lambda p: rewrite(p, scaled("scale_tril/-1", -1.0)), "not positive definite"),
    "another latent size": (lambda p: rewrite(p, lambda m, t: t.update({
        "means/-1": torch.zeros(len(t["weights/-1"]), 4, dtype=torch.float64),
        "scale_tril/-1": torch.eye(4, dtype=torch.float64).repeat(len(t["weights/-1"]), 1, 1)})),
        "codes of 4 latents, but the run's model has 3"),
    "mismatched shapes": (lambda p: rewrite(p, lambda m, t: t.update({"means/-1": t["means/-1"][:1]})),
                          "do not make a Gaussian mixture"),
    "float32 tensors": (lambda p: rewrite(p, lambda m, t: t.update({k: v.float() for k, v in t.items()})),
                        "not float64"),
    "a missing tensor": (lambda p: rewrite(p, lambda m, t: t.pop("means/-1")), "not named weights/LABEL"),
    "settings not JSON": (lambda p: rewrite(p, lambda m, t: m.update(settings="{")), "settings are not a JSON object"),
    "an extra tensor": (lambda p: rewrite(p, lambda m, t: t.update({"code": torch.zeros(1)})), "not named weights/"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_sampler_file_is_refused_in_one_line_and_fitted_again(run, damage, capsys):
    fitted = samplers.for_run(run, "gmm")
    path = samplers.sampler_path(run, "gmm")
    change, message = DAMAGE[damage]
    change(path)
    with pytest.raises(samplers.DamagedSampler) as refused:
        samplers.load(path, samplers.weights_digest(run), 3, "gmm")
    assert message in str(refused.value) and str(path) in str(refused.value) and "\n" not in str(refused.value)
    assert "delete it" in str(refused.value)
    capsys.readouterr()
    again = samplers.for_run(Run.open(run.path), "gmm")  # what every command does: warns, fits again, replaces
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err and "fitting the gmm sampler again" in err
    assert torch.equal(again.mixture().means, fitted.mixture().means)
    samplers.load(path, samplers.weights_digest(run), 3, "gmm")  # the replaced file is sound


def test_a_fifo_at_a_sampler_file_is_said_and_replaced_never_opened(run, capsys):
    import os
    fitted = samplers.for_run(run, "gmm")
    path = samplers.sampler_path(run, "gmm")
    path.unlink()
    os.mkfifo(path)
    capsys.readouterr()
    with within(60):
        again = samplers.for_run(Run.open(run.path), "gmm")
    err = capsys.readouterr().err
    assert f"{path} is not a regular file; fitting the gmm sampler again" in err and err.count("\n") == 1, err
    assert torch.equal(again.mixture().means, fitted.mixture().means) and path.is_file()


def test_a_report_never_embeds_a_damaged_sampler(run):
    samplers.for_run(run, "class")
    rewrite(samplers.sampler_path(run, "class"), scaled("weights/2", math.nan))
    page = report.write_report(run).read_text()
    payload = page.split('id="explorer-data">')[1].split("</script>")[0]
    json.loads(payload, parse_constant=lambda name: pytest.fail(f"the page embeds {name}"))


def test_a_sampler_file_of_an_older_betavae_is_fitted_again_without_a_word(run, capsys):
    fitted = samplers.for_run(run, "gmm")
    path = samplers.sampler_path(run, "gmm")
    rewrite(path, lambda metadata, tensors: (metadata.update(format="1"), metadata.pop("sha256")), True)
    capsys.readouterr()
    again = samplers.for_run(Run.open(run.path), "gmm")
    assert capsys.readouterr().err == "" and torch.equal(again.mixture().means, fitted.mixture().means)
    assert store.read(path)[0]["format"] == str(store.FORMAT)


def test_a_sampler_that_cannot_be_kept_is_still_drawn_from(run, monkeypatch, capsys):
    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store.atomic, "write_bytes", refuse)  # as in a run folder mounted read-only
    assert samplers.for_run(run, "gmm").draw(4, torch.Generator()).shape == (4, 3)
    err = capsys.readouterr().err
    assert "could not be kept" in err and err.count("\n") == 1
    assert not samplers.sampler_path(run, "gmm").exists()
