"""The model and what it is trained on: encoders and decoders (networks), the objectives that weigh reconstruction
against KL, each owning its parameters (objectives), and likelihood estimates of a trained model (likelihood)."""

from .networks import VAE, build

__all__ = ["VAE", "build"]
