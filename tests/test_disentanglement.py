"""The metrics must measure what they claim: ground truth scores high, noise and mixtures low."""

import numpy as np
import pytest

from betavae.disentanglement import mig


@pytest.fixture
def factors():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, n, 5000) for n in (3, 6, 10, 16)], axis=1)


def test_ground_truth_and_a_rescaled_permuted_copy_score_near_the_maximum(factors):
    assert mig(factors.astype(float), factors) > 0.95
    copy = factors[:, [2, 0, 3, 1]] * np.array([0.3, -2.0, 5.0, 0.01]) + 7.0
    assert mig(copy, factors) > 0.95


def test_noise_and_a_rotation_that_mixes_factors_score_near_chance(factors):
    rng = np.random.default_rng(1)
    assert mig(rng.normal(size=(5000, 6)), factors) < 0.05
    standardized = (factors - factors.mean(0)) / factors.std(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    assert mig(standardized @ rotation, factors) < 0.35


def test_duplicating_a_factor_into_two_latents_lowers_mig(factors):
    duplicated = np.concatenate([factors, factors[:, :1]], axis=1).astype(float)
    assert mig(duplicated, factors) < mig(factors.astype(float), factors) - 0.2
