import math

import pytest
import torch

from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.model.objectives import OBJECTIVES, BetaVAELoss, CapacityLoss, bernoulli_nll, gaussian_kl, linear_anneal


def test_kl_is_zero_at_the_prior():
    assert gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)).abs().max() == 0


def test_kl_matches_hand_computation():
    # KL(N(1, e^2) || N(0, 1)) = 0.5 * (1 + e^2 - 1 - 2) = 0.5 * (e^2 - 2)
    kl = gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    assert kl.item() == pytest.approx(0.5 * (math.exp(2) - 2))


def test_bernoulli_nll_matches_hand_computation():
    logits = torch.tensor([[[[0.0, 2.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    expected = math.log(2) + math.log(1 + math.exp(2))  # -log sigmoid(0) - log(1 - sigmoid(2))
    assert bernoulli_nll(logits, target).item() == pytest.approx(expected, rel=1e-6)


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 1, 4, 4, generator=g), torch.rand(n, 1, 4, 4, generator=g),
            torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g))


def test_beta_scales_only_the_kl():
    batch = _batch()
    one, four = BetaVAELoss.with_settings(beta=1.0)(*batch), BetaVAELoss.with_settings(beta=4.0)(*batch)
    assert torch.equal(one.recon, four.recon) and torch.equal(one.kl, four.kl)
    assert four.loss.item() == pytest.approx(one.recon.item() + 4 * one.kl.item(), rel=1e-6)
    assert BetaVAELoss.with_settings(beta=0.0)(*batch).loss.item() == pytest.approx(one.recon.item(), rel=1e-6)


def test_loss_does_not_depend_on_batch_size():
    logits, target, mean, logvar = _batch(8)
    whole = BetaVAELoss.with_settings(beta=2.0)(logits, target, mean, logvar).loss
    halves = [BetaVAELoss.with_settings(beta=2.0)(logits[s], target[s], mean[s], logvar[s]).loss for s in (slice(0, 4), slice(4, 8))]
    doubled = BetaVAELoss.with_settings(beta=2.0)(*(torch.cat([t, t]) for t in (logits, target, mean, logvar))).loss
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-6)
    assert whole.item() == pytest.approx(doubled.item(), rel=1e-6)


def test_kl_per_dim_sums_to_kl():
    terms = BetaVAELoss.with_settings(beta=1.0)(*_batch())
    assert terms.kl_per_dim.shape == (3,)
    assert terms.kl_per_dim.sum().item() == pytest.approx(terms.kl.item(), rel=1e-6)


def test_beta_warmup_is_linear():
    loss = BetaVAELoss.with_settings(beta=4.0, beta_warmup_steps=100)
    assert [loss.kl_weight(s) for s in (0, 50, 100, 1000)] == [0.0, 2.0, 4.0, 4.0]
    assert linear_anneal(0, 1, 5, 0) == 1


def test_beta_can_anneal_down_from_a_noisier_start():
    loss = BetaVAELoss.with_settings(beta=4.0, beta_warmup_steps=100, beta_start=16.0)
    assert [loss.kl_weight(s) for s in (0, 50, 100, 1000)] == [16.0, 10.0, 4.0, 4.0]
    config = Config.of(beta=4.0, beta_start=16.0, beta_warmup_steps=100)
    assert config.build_objective().kl_weight(0) == 16.0
    with pytest.raises(BetaVAEError, match="beta_start"):
        Config.of(beta_start=-1.0)


def test_capacity_objective_pulls_kl_towards_c():
    batch = _batch()
    capacity = CapacityLoss.with_settings(gamma=10.0, capacity_min=0.0, capacity_max=20.0,
                                           capacity_steps=10)
    assert capacity.capacity(5) == 10.0
    terms = capacity(*batch, step=5)
    assert terms.loss.item() == pytest.approx(terms.recon.item() + 10 * abs(terms.kl.item() - 10.0), rel=1e-6)


def test_each_objective_owns_its_settings_and_refuses_another_objectives():
    beta = Config.of(beta=3.0)
    assert beta.settings == {"beta": 3.0, "beta_warmup_steps": 0, "beta_start": 0.0}
    assert beta.build_objective().describe() == "beta-VAE: loss = recon + 3 * KL"
    with pytest.raises(BetaVAEError, match="the beta objective has no setting gamma.*capacity, btcvae, factorvae"):
        Config.of(beta=3.0, gamma=7.0)
    capacity = beta.replace(objective="capacity", gamma=7.0)  # a new objective starts from its own defaults
    assert capacity.settings == {"gamma": 7.0, "capacity_min": 0.0, "capacity_max": 25.0, "capacity_steps": 100_000}
    assert {name: kind.Settings().to_dict() == Config.of(objective=name).settings
            for name, kind in OBJECTIVES.items()} == dict.fromkeys(OBJECTIVES, True)


def test_the_saved_layout_stores_settings_under_the_objectives_name_and_reads_back():
    from betavae.config import from_dict
    config = Config.of(objective="dipvae", lambda_od=2.0)
    saved = config.to_dict()
    assert saved["dipvae"] == {"type": "i", "lambda_od": 2.0, "lambda_d_factor": 10.0} and "lambda_od" not in saved
    assert from_dict(saved) == config
