import math

import pytest
import torch

from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.model.objectives import BetaVAELoss, CapacityLoss, bernoulli_nll, build, gaussian_kl, linear_anneal


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
    one, four = BetaVAELoss(1.0)(*batch), BetaVAELoss(4.0)(*batch)
    assert torch.equal(one.recon, four.recon) and torch.equal(one.kl, four.kl)
    assert four.loss.item() == pytest.approx(one.recon.item() + 4 * one.kl.item(), rel=1e-6)
    assert BetaVAELoss(0.0)(*batch).loss.item() == pytest.approx(one.recon.item(), rel=1e-6)


def test_loss_does_not_depend_on_batch_size():
    logits, target, mean, logvar = _batch(8)
    whole = BetaVAELoss(2.0)(logits, target, mean, logvar).loss
    halves = [BetaVAELoss(2.0)(logits[s], target[s], mean[s], logvar[s]).loss for s in (slice(0, 4), slice(4, 8))]
    doubled = BetaVAELoss(2.0)(*(torch.cat([t, t]) for t in (logits, target, mean, logvar))).loss
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-6)
    assert whole.item() == pytest.approx(doubled.item(), rel=1e-6)


def test_kl_per_dim_sums_to_kl():
    terms = BetaVAELoss(1.0)(*_batch())
    assert terms.kl_per_dim.shape == (3,)
    assert terms.kl_per_dim.sum().item() == pytest.approx(terms.kl.item(), rel=1e-6)


def test_beta_warmup_is_linear():
    loss = BetaVAELoss(4.0, warmup_steps=100)
    assert [loss.kl_weight(s) for s in (0, 50, 100, 1000)] == [0.0, 2.0, 4.0, 4.0]
    assert linear_anneal(0, 1, 5, 0) == 1


def test_beta_can_anneal_down_from_a_noisier_start():
    loss = BetaVAELoss(4.0, warmup_steps=100, start=16.0)
    assert [loss.kl_weight(s) for s in (0, 50, 100, 1000)] == [16.0, 10.0, 4.0, 4.0]
    config = Config(beta=4.0, beta_start=16.0, beta_warmup_steps=100)
    assert build(config).kl_weight(0) == 16.0
    with pytest.raises(BetaVAEError, match="beta_start"):
        Config(beta_start=-1.0)


def test_capacity_objective_pulls_kl_towards_c():
    batch = _batch()
    capacity = CapacityLoss(gamma=10.0, c_min=0.0, c_max=20.0, c_steps=10)
    assert capacity.capacity(5) == 10.0
    terms = capacity(*batch, step=5)
    assert terms.loss.item() == pytest.approx(terms.recon.item() + 10 * abs(terms.kl.item() - 10.0), rel=1e-6)


def test_each_objective_declares_the_parameters_it_reads():
    from betavae.config import OBJECTIVES as NAMES
    from betavae.model.objectives import OBJECTIVES, settings

    assert set(OBJECTIVES) == set(NAMES)
    beta = Config(beta=3.0, gamma=7.0)
    assert settings(beta) == {"objective": "beta", "beta": 3.0, "beta_warmup_steps": 0, "beta_start": 0.0}
    capacity = settings(beta.replace(objective="capacity"))
    assert capacity["gamma"] == 7.0 and "beta" not in capacity
    assert build(beta).describe() == "beta-VAE: loss = recon + 3 * KL"
