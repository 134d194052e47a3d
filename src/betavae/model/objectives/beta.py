"""beta-VAE (Higgins et al. 2017): recon + beta * KL, with beta optionally moving linearly over a first stretch of
steps (a warm-up from 0, or, from above beta, a noisy start that anneals down)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Objective, Penalty, Settings, Step, check_weights, linear_anneal, setting


@dataclass(frozen=True)
class BetaSettings(Settings):
    beta: float = setting(4.0, "the weight of the KL term: loss = recon + beta * KL; 1 = the plain VAE (Higgins et "
                               "al. used 4 on dSprites)")
    beta_warmup_steps: int = setting(0, "move beta linearly from beta_start to beta over this many steps")
    beta_start: float = setting(0.0, "beta at step 0 of the warm-up (0 warms up; above beta anneals down)")

    def check(self) -> None:
        check_weights(self, "beta", "beta_start", "beta_warmup_steps")


class BetaVAELoss(Objective):
    name, Settings, paper = "beta", BetaSettings, "beta-VAE (Higgins et al. 2017)"

    def kl_weight(self, step: Step) -> float | torch.Tensor:
        s = self.settings
        return linear_anneal(s.beta_start, s.beta, step, s.beta_warmup_steps)

    def penalty(self, kl_per_dim, mean, logvar, z, step) -> Penalty:
        return self.kl_weight(step) * kl_per_dim.sum(), {}

    def logged(self, step: int) -> dict[str, float]:
        return {"kl_weight": float(self.kl_weight(step))}

    def describe(self) -> str:
        s = self.settings
        warmup = f", beta moving from {s.beta_start:g} over {s.beta_warmup_steps} steps" if s.beta_warmup_steps else ""
        return f"beta-VAE: loss = recon + {s.beta:g} * KL{warmup}"


def negative_elbo() -> BetaVAELoss:
    """beta = 1: the loss is exactly the negative ELBO (what likelihood evaluations report)."""
    return BetaVAELoss(BetaSettings(beta=1.0))
