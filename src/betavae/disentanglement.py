"""Disentanglement metrics from latent codes and ground-truth factors (started: MIG so far).

Definitions follow disentanglement_lib: codes are discretized per dimension into 20 equal-width histogram bins,
mutual information is the discrete plug-in estimate, and MIG (Chen et al. 2018) is, per factor, the gap between
the two latents most informative about it, divided by the factor's entropy, averaged over factors.
"""

from __future__ import annotations

import numpy as np


def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """(N, D) real codes -> (N, D) bin indices of `bins` equal-width bins per dimension."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], bins)[1][:-1]
        out[:, d] = np.digitize(codes[:, d], edges)
    return out


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, K) matrix of I(code_d; factor_k) in nats."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(factors[:, k], discrete_codes[:, d]) for k in range(factors.shape[1])]
                     for d in range(discrete_codes.shape[1])])


def entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy of each discrete factor, in nats."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Mutual information gap: 1 when each factor is captured by exactly one latent, 0 when by none or by two."""
    if codes.shape[1] < 2:
        raise ValueError("MIG needs at least two latent dimensions")
    information = np.sort(mutual_information(discretize(codes, bins), factors), axis=0)[::-1]
    return float(np.mean((information[0] - information[1]) / entropy(factors)))
