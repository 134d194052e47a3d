"""`gmm`: a Gaussian mixture fitted, after training, to codes of the training images drawn from their posteriors, the
codes the decoder was trained on (after Ghosh et al. 2020, "From variational to deterministic autoencoders", who fit
the means). The aggregate posterior is not N(0, I), so prior draws land where the decoder saw little; the mixture
follows where the codes really are. Why draws rather than means, and why 20 components: docs/samplers.md."""

from __future__ import annotations

from .base import Sampler


class MixtureSampler(Sampler):
    """One mixture of full-covariance Gaussians over posterior draws of (at most runs.FIT_IMAGES) training images."""

    name = "gmm"
    help = "a Gaussian mixture fitted to the training images' codes (better digits)"
    source = "z from a Gaussian mixture fitted to the training codes"
    default_components = 20
