"""Training objectives, decoupled from the model: one module per objective, each a frozen settings class (its own
names, its paper's defaults, its own checks) and a loss that adds its `penalty` to the reconstruction term (base.py
says how every term is reduced). Adding an objective is one module here plus one line in OBJECTIVES."""

from __future__ import annotations

from .adagvae import AdaGVAELoss, AdaGVAESettings
from .base import Context, Objective, Settings, Step, Terms, bernoulli_nll, gaussian_kl, linear_anneal
from .beta import BetaSettings, BetaVAELoss, negative_elbo
from .btcvae import TCVAELoss, TCVAESettings
from .capacity import CapacityLoss, CapacitySettings
from .dipvae import DIPVAELoss, DIPVAESettings
from .factorvae import FactorVAELoss, FactorVAESettings

OBJECTIVES: dict[str, type[Objective]] = {
    kind.name: kind for kind in (BetaVAELoss, CapacityLoss, TCVAELoss, FactorVAELoss, DIPVAELoss, AdaGVAELoss)}


__all__ = ["OBJECTIVES", "AdaGVAELoss", "AdaGVAESettings", "BetaSettings", "BetaVAELoss", "CapacityLoss",
           "CapacitySettings", "Context", "DIPVAELoss", "DIPVAESettings", "FactorVAELoss", "FactorVAESettings",
           "Objective", "Settings", "Step", "TCVAELoss", "TCVAESettings", "Terms", "bernoulli_nll",
           "gaussian_kl", "linear_anneal", "negative_elbo"]
