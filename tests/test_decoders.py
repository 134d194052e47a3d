"""The decoder likelihoods: each -log p against an independent computation, normalised, differentiable, and each
trains, resumes bitwise and is refused where it does not fit the data."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy import integrate, stats

from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.model import decoders, networks
from betavae.model.likelihood import elbo_terms, importance_weighted_log_likelihood
from betavae.model.objectives import negative_elbo
from betavae.training import fit, folder, resume

from .test_training import assert_same_weights

NAMES = list(decoders.LIKELIHOODS)


def outputs_and_targets(name: str, seed: int = 0) -> tuple[decoders.Likelihood, torch.Tensor, torch.Tensor]:
    """A likelihood of 2-channel images, random outputs (N, outputs * 2, 3, 3) and 8-bit targets (edges included)."""
    g = torch.Generator().manual_seed(seed)
    likelihood = decoders.build(name, 2)
    output = torch.randn(4, likelihood.outputs * 2, 3, 3, generator=g, dtype=torch.float64)
    target = torch.randint(0, 256, (4, 2, 3, 3), generator=g).double() / 255
    target[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    return likelihood, output, target


def test_bernoulli_nll_is_the_cross_entropy_by_hand():
    likelihood, output, target = outputs_and_targets("bernoulli")
    p = torch.sigmoid(output)
    by_hand = -(target * p.log() + (1 - target) * (1 - p).log()).flatten(1).sum(1)
    assert torch.allclose(likelihood.nll(output, target), by_hand)


@pytest.mark.parametrize("name", ["gaussian", "gaussian-learned"])
def test_gaussian_nll_is_scipys_normal_density(name):
    likelihood, output, target = outputs_and_targets(name)
    sigma = np.full((2, 1, 1), 0.1)
    if name == "gaussian-learned":
        with torch.no_grad():
            likelihood.raw_log_sigma.copy_(torch.tensor([[[-1.5]], [[0.3]]]))
        sigma = np.exp(np.array([-1.5, 0.3]))[:, None, None]
    expected = -stats.norm.logpdf(target.numpy(), output.numpy(), sigma).reshape(4, -1).sum(1)
    assert np.allclose(likelihood.nll(output, target).detach().numpy(), expected)


def test_logistic_nll_is_scipys_logistic_cdf_over_each_bin():
    likelihood, output, target = outputs_and_targets("logistic")
    mu, log_scale = output[:, :2].numpy(), output[:, 2:].numpy()
    x, s = target.numpy(), np.exp(log_scale)
    upper = np.where(x > 254.5 / 255, 1.0, stats.logistic.cdf(x + 0.5 / 255, mu, s))
    lower = np.where(x < 0.5 / 255, 0.0, stats.logistic.cdf(x - 0.5 / 255, mu, s))
    expected = -np.log(upper - lower).reshape(4, -1).sum(1)
    assert np.allclose(likelihood.nll(output, target).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("mu, log_scale", [(0.3, -3.0), (0.0, -7.0), (1.2, 0.5), (0.5, -7.0), (-0.4, -1.0)])
def test_logistic_probabilities_over_all_256_bins_sum_to_one(mu, log_scale):
    likelihood = decoders.build("logistic", 1)
    levels = torch.arange(256, dtype=torch.float64).view(256, 1, 1, 1) / 255
    output = torch.tensor([mu, log_scale], dtype=torch.float64).view(1, 2, 1, 1).expand(256, 2, 1, 1)
    probabilities = torch.exp(-likelihood.nll(output, levels))
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-9)
    assert (probabilities >= 0).all()


@pytest.mark.parametrize("mu, log_scale", [(0.3, -3.0), (-0.5, -1.0), (1.4, -2.0), (0.5, -7.0)])
def test_logistic_mean_is_the_mean_over_its_bins(mu, log_scale):
    likelihood = decoders.build("logistic", 1)
    levels = torch.arange(256, dtype=torch.float64).view(256, 1, 1, 1) / 255
    output = torch.tensor([mu, log_scale], dtype=torch.float64).view(1, 2, 1, 1)
    probabilities = torch.exp(-likelihood.nll(output.expand(256, 2, 1, 1), levels))
    assert likelihood.mean(output).item() == pytest.approx((probabilities * levels.flatten()).sum().item(), abs=1e-9)


def test_logistic_is_exact_where_a_bin_holds_almost_nothing():
    """Far from the mean the bin's probability is the tail's, e^-(distance / s), not a rounding to log 0."""
    likelihood = decoders.build("logistic", 1)
    output = torch.tensor([0.0, -7.0]).view(1, 2, 1, 1)  # s = e^-7; the bin at 0.5 is ~500 scales away
    nll = likelihood.nll(output, torch.full((1, 1, 1, 1), 128 / 255)).item()
    s, x = math.exp(-7.0), 128 / 255
    upper, lower = (x + 0.5 / 255) / s, (x - 0.5 / 255) / s  # both ~500: sigmoid(t) = 1 - e^-t to 1e-200
    expected = lower - math.log(1 - math.exp(lower - upper))  # -log(e^-lower - e^-upper)
    assert math.isfinite(nll) and nll == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("logit", [0.0, 1e-6, -0.05, 0.09, 0.11, 0.7, -3.0, 12.0, -40.0])
def test_continuous_bernoulli_density_integrates_to_one_and_has_its_mean(logit):
    likelihood = decoders.build("continuous-bernoulli", 1)
    output = torch.tensor(logit, dtype=torch.float64).view(1, 1, 1, 1)
    def density(x: float) -> float:
        return math.exp(-likelihood.nll(output, torch.tensor(x, dtype=torch.float64).view(1, 1, 1, 1)).item())

    total, _ = integrate.quad(density, 0, 1, points=[0.01, 0.99], limit=200)
    mean, _ = integrate.quad(lambda x: x * density(x), 0, 1, points=[0.01, 0.99], limit=200)
    assert total == pytest.approx(1.0, abs=1e-7)
    assert likelihood.mean(output).item() == pytest.approx(mean, abs=1e-7)


def test_continuous_bernoulli_matches_torch_distributions():
    likelihood, output, target = outputs_and_targets("continuous-bernoulli")
    output = output * 3
    reference = torch.distributions.ContinuousBernoulli(logits=output)
    assert torch.allclose(likelihood.nll(output, target), -reference.log_prob(target).flatten(1).sum(1))
    assert torch.allclose(likelihood.mean(output), reference.mean)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_finite_at_extreme_and_zero_outputs(name):
    likelihood, output, target = outputs_and_targets(name)
    output = output * 10
    output[0, :, 0] = 0.0
    output[1, :, 0] = 80.0
    output[2, :, 0] = -80.0
    for dtype in (torch.float32, torch.float64):
        raw = output.to(dtype).requires_grad_()
        likelihood.nll(raw, target.to(dtype)).sum().backward()
        assert torch.isfinite(raw.grad).all()
        assert torch.isfinite(likelihood.mean(raw)).all() and torch.isfinite(likelihood.sample(raw.detach())).all()


@pytest.mark.parametrize("name", NAMES)
def test_samples_lie_in_the_unit_interval_around_the_mean(name):
    likelihood = decoders.build(name, 1)
    output = torch.tensor([0.6, -4.0] if name == "logistic" else [0.6], dtype=torch.float64)  # mass inside [0, 1]
    output = output.view(1, -1, 1, 1).expand(40000, -1, 1, 1)
    draws = likelihood.sample(output, torch.Generator().manual_seed(0))
    assert draws.min() >= 0 and draws.max() <= 1
    if name == "logistic":
        assert torch.allclose(draws * 255, (draws * 255).round(), atol=1e-6)  # on the 8-bit grid
    assert draws.mean().item() == pytest.approx(likelihood.mean(output[:1]).item(), abs=0.01)


def test_the_model_decodes_its_likelihoods_outputs_and_means():
    model = networks.build(Config.of(arch="conv", hidden=(8,), channels=(4,), latent_dim=3, likelihood="logistic"),
                           (3, 8, 8))
    z = torch.randn(2, 3)
    assert model.decode(z).shape == (2, 6, 8, 8) and model.output_shape == (6, 8, 8)
    assert model.decode_mean(z).shape == (2, 3, 8, 8)
    assert model.sample(2).shape == (2, 3, 8, 8)


TINY = Config.of(hidden=(16,), latent_dim=3, batch_size=32, epochs=2, beta=1.0, seed=5, figure_epochs=(),
                 latent_map_epochs=())


@pytest.mark.parametrize("name", NAMES)
def test_a_tiny_run_of_each_likelihood_trains_and_resumes_bitwise(name, tmp_path, data):
    config = TINY.replace(likelihood=name)
    straight = fit(config, tmp_path / "straight", data=data, log=lambda line: None)
    split = fit(config.replace(epochs=1), tmp_path / "split", data=data, log=lambda line: None)
    resume(split, {"epochs": 2}, data=data, log=lambda line: None)
    assert_same_weights(straight, split)
    records = folder.read_metrics(straight)
    assert records[-1]["val"]["loss"] < records[0]["val"]["loss"]
    assert ("bits_per_dim" in records[-1]["val"]) == (name == "logistic")
    weights = load_file(straight / folder.WEIGHTS)
    if name == "gaussian-learned":  # sigma is learned, and saved with the weights
        assert not torch.allclose(weights["likelihood.raw_log_sigma"], torch.full((1, 1, 1), math.log(0.1)))
    else:
        assert not any(key.startswith("likelihood") for key in weights)


def test_bits_per_dim_of_the_logistic_are_its_negative_elbo_over_the_pixels(data):
    torch.manual_seed(0)
    model = networks.build(TINY.replace(likelihood="logistic"), (1, 12, 12))
    terms = elbo_terms(model, data.val, negative_elbo(), "grey")
    assert terms["bits_per_dim"] == pytest.approx(terms["neg_elbo"] / (144 * math.log(2)))
    assert "bits_per_dim" not in elbo_terms(networks.build(TINY, (1, 12, 12)), data.val, negative_elbo(), "grey")


@pytest.mark.parametrize("name", ["logistic", "gaussian-learned", "continuous-bernoulli"])
def test_iwae_at_k1_is_the_elbo_in_expectation_for_each_likelihood(name, data):
    torch.manual_seed(0)
    model = networks.build(TINY.replace(likelihood=name), (1, 12, 12)).eval()
    x = data.val.images[:20]
    g = torch.Generator().manual_seed(0)
    k1 = torch.stack([importance_weighted_log_likelihood(model, x, 1, g) for _ in range(200)]).mean()
    elbo = -torch.tensor([elbo_terms(model, data.val.take(slice(0, 20)), negative_elbo(), "grey", seed=s)["neg_elbo"]
                          for s in range(200)]).mean()
    assert k1.item() == pytest.approx(elbo.item(), rel=0.01)


def test_logistic_is_refused_on_binary_pixels_and_on_data_that_are_not_8_bit(tmp_path, data):
    with pytest.raises(BetaVAEError, match="8-bit pixels, not binary"):
        Config.of(likelihood="logistic", pixels="binary")
    with pytest.raises(BetaVAEError, match="unknown likelihood"):
        Config.of(likelihood="poisson")
    odd = data.train.images.clone()
    odd[3, 0, 0, 0] = 0.5  # between 127/255 and 128/255
    with pytest.raises(BetaVAEError, match="other levels; use --likelihood gaussian"):
        decoders.check_data("logistic", odd)
    decoders.check_data("gaussian", odd)  # a density on [0, 1] takes any level
    decoders.check_data("logistic", data.train.images)


@pytest.mark.parametrize("name", ["logistic", "gaussian"])
def test_evaluate_reports_bits_per_dim_for_the_logistic_and_names_a_density_otherwise(name, tmp_path, npz):
    from betavae.evaluation.evaluate import evaluate, format_table

    config = TINY.replace(likelihood=name, epochs=1, dataset=str(npz), val_size=50)
    run = fit(config, tmp_path / "run", log=lambda line: None)
    result = evaluate(run, split="val", importance_samples=5, repeats=2, probes=False, log=lambda line: None)
    assert "elbo_binarized" not in result and "elbo_grey" not in result
    elbo, iwae = result["elbo"], result["iwae"]
    assert elbo["is_likelihood"] == iwae["is_likelihood"] == (name == "logistic")
    if name == "logistic":
        assert elbo["bits_per_dim"] == pytest.approx(elbo["neg_elbo"] / (144 * math.log(2)))
        assert iwae["bits_per_dim"] == pytest.approx(iwae["nll"] / (144 * math.log(2)))
        assert "bits/dim" in format_table(result)
    else:
        assert "bits_per_dim" not in elbo and "bits_per_dim" not in iwae
        assert "density on [0, 1]" in elbo["label"] and "not comparable" in format_table(result)
