"""DIP-VAE (Kumar et al. 2018): recon + KL + a penalty pushing the covariance of the aggregate posterior (type i: of
the posterior means; type ii: of the codes) towards the identity, so that its axes decorrelate."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Objective, Penalty, Settings, check_choice, check_weights, setting

TYPES = ("i", "ii")


def dip_covariance(mean: torch.Tensor, logvar: torch.Tensor, kind: str) -> torch.Tensor:
    """The batch's estimate of the aggregate posterior's covariance: Cov[mean] (DIP-VAE-I), or Cov[mean] plus
    E[diag(var)], the covariance of z itself (DIP-VAE-II)."""
    centred = mean - mean.mean(0)
    covariance = centred.T @ centred / len(mean)
    return covariance + torch.diag(logvar.exp().mean(0)) if kind == "ii" else covariance


def dip_penalty(covariance: torch.Tensor, off_diagonal: float, diagonal: float) -> torch.Tensor:
    """lambda_od * sum of squared off-diagonal entries + lambda_d * sum of squared (diagonal - 1): 0 at the identity."""
    diag = covariance.diagonal()
    off = covariance - torch.diag(diag)
    return off_diagonal * off.pow(2).sum() + diagonal * (diag - 1).pow(2).sum()


@dataclass(frozen=True)
class DIPVAESettings(Settings):
    type: str = setting("i", "i: the covariance of the posterior means; ii: of the codes")
    lambda_od: float = setting(10.0, "the weight of the squared off-diagonal covariances")
    lambda_d_factor: float = setting(10.0, "lambda_d, the weight of the squared (diagonal - 1), as a multiple of "
                                           "lambda_od (disentanglement_lib: 10 for type i, 1 for type ii)")

    def check(self) -> None:
        check_choice("type", self.type, TYPES)
        check_weights(self, "lambda_od", "lambda_d_factor")

    @property
    def lambda_d(self) -> float:
        return self.lambda_d_factor * self.lambda_od


class DIPVAELoss(Objective):
    name, Settings, paper = "dipvae", DIPVAESettings, "DIP-VAE (Kumar et al. 2018)"
    distributable = False  # its covariance is estimated from the batch one process sees
    min_batch = 2

    def penalty(self, kl_per_dim, mean, logvar, z, step) -> Penalty:
        s = self.settings
        decorrelation = dip_penalty(dip_covariance(mean, logvar, s.type), s.lambda_od, s.lambda_d)
        return kl_per_dim.sum() + decorrelation, {"dip_penalty": decorrelation.detach()}

    def describe(self) -> str:
        s = self.settings
        return (f"DIP-VAE-{s.type.upper()}: loss = recon + KL + {s.lambda_od:g} * off-diagonal^2 + {s.lambda_d:g} * "
                f"(diagonal - 1)^2 of Cov[{'z' if s.type == 'ii' else 'mean'}]")
