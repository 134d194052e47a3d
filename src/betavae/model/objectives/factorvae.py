"""FactorVAE (Kim and Mnih 2018): recon + KL + gamma * TC, the total correlation estimated by a discriminator between
codes and dimension-permuted codes (the density-ratio trick). The discriminator has its own Adam and takes one step
after each of the model's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ...errors import BetaVAEError
from .base import Context, Objective, Penalty, Settings, check_weights, setting


def permute_dimensions(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each latent dimension shuffled across the batch on its own: samples of prod_d q(z_d) from samples of q(z).
    The shuffles are drawn on the CPU (from `generator`, a CPU generator), whatever the codes' device."""
    order = torch.rand(z.shape, generator=generator).argsort(dim=0).to(z.device)
    return z.gather(0, order)


def discriminator(latent_dim: int, width: int = 1000, layers: int = 6) -> torch.nn.Sequential:
    """Kim and Mnih's MLP: `layers` linear layers of `width` with leaky ReLUs, then one logit of "from q(z)" (against
    "from the product of its marginals"). At the optimum the logit is log q(z) / prod_d q(z_d)."""
    sizes = [latent_dim] + [width] * layers
    modules: list[torch.nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        modules += [torch.nn.Linear(n_in, n_out), torch.nn.LeakyReLU(0.2)]
    return torch.nn.Sequential(*modules, torch.nn.Linear(width, 1))


@dataclass(frozen=True)
class FactorVAESettings(Settings):
    gamma: float = setting(35.0, "the weight of the total correlation (Kim and Mnih used 35 on dSprites)")
    discriminator_lr: float = setting(1e-4, "the discriminator's Adam learning rate (betas 0.5 and 0.9)")

    def check(self) -> None:
        check_weights(self, "gamma")
        if not (self.discriminator_lr > 0 and math.isfinite(self.discriminator_lr)):
            raise BetaVAEError(f"discriminator_lr must be a positive finite number, got {self.discriminator_lr}; try "
                               "--discriminator-lr 1e-4")


class FactorVAELoss(Objective):
    name, Settings, paper = "factorvae", FactorVAESettings, "FactorVAE (Kim and Mnih 2018)"
    graphable = distributable = False  # its discriminator steps on the host, on one process's codes
    needs_codes = True
    min_batch = 2  # codes permuted across the batch

    def __init__(self, settings: FactorVAESettings | None = None, context: Context = Context(), width: int = 1000):
        super().__init__(settings, context)
        with torch.random.fork_rng():  # its initialisation leaves the model's random stream as it was
            torch.manual_seed(context.seed)
            self.discriminator = discriminator(context.latent_dim, width)
        self.generator = torch.Generator().manual_seed(context.seed + 3)  # training's permutations (evaluation: 0)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.settings.discriminator_lr,
                                          betas=(0.5, 0.9))
        self.pending: torch.Tensor | None = None  # the discriminator's loss on the last training batch

    def penalty(self, kl_per_dim, mean, logvar, z, step) -> Penalty:
        codes = z.detach().float()
        training = torch.is_grad_enabled()  # evaluation (no_grad) neither trains nor draws from training's stream
        permuted = permute_dimensions(codes, self.generator if training else torch.Generator().manual_seed(0))
        real, fake = self.discriminator(codes).squeeze(1), self.discriminator(permuted).squeeze(1)
        accuracy = ((real > 0).float().mean() + (fake <= 0).float().mean()) / 2
        if training:  # the discriminator learns from this batch in after_step
            self.pending = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))) / 2
        self.discriminator.requires_grad_(False)  # the model's loss reaches z through it, not its weights
        tc = self.discriminator(z.float()).mean()
        self.discriminator.requires_grad_(True)
        return kl_per_dim.sum() + self.settings.gamma * tc, {"tc": tc.detach(),
                                                             "discriminator_accuracy": accuracy.detach()}

    def describe(self) -> str:
        s = self.settings
        return (f"FactorVAE: loss = recon + KL + {s.gamma:g} * TC, TC from a discriminator (Adam "
                f"{s.discriminator_lr:g}) between codes and dimension-permuted codes")

    def to(self, device: torch.device | str) -> "FactorVAELoss":
        self.discriminator.to(device)
        return self

    def after_step(self) -> None:
        if self.pending is None:
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.pending.backward()
        self.optimizer.step()
        self.pending = None

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not {"discriminator", "optimizer", "generator"} <= set(state):
            raise ValueError("the checkpoint lacks the FactorVAE discriminator's state")
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
