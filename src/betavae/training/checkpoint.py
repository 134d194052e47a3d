"""What a checkpoint holds, so that a resumed run continues exactly: weights, optimizer, every random stream, the
epoch in progress (its permutation, position and running totals) and the training time spent."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import BetaVAEError, first_line
from ..model.likelihood import Totals
from . import folder
Trainer = Any  # a training.trainer.Trainer, which passes itself (importing it here would make a cycle)

FORMAT = "betavae-checkpoint-1"


def capture(trainer: Trainer) -> dict[str, Any]:
    """The trainer's whole state, as tensors and plain values (torch.load(weights_only=True) reads it back)."""
    state = {
        "format": FORMAT, "epoch": trainer.epoch, "step": trainer.step,
        "trained_seconds": trainer.trained_seconds, "out_of_time": trainer.out_of_time,
        "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
        "rng_torch": torch.get_rng_state(), "rng_data": trainer.generator.get_state(),
        "rng_binarize": trainer.binarizer.get_state(), "rng_pairs": trainer.pairing.get_state(),
        "objective": trainer.objective.state_dict(),  # its own parts: FactorVAE's discriminator and its Adam
        "partial": trainer.partial and {**trainer.partial, "totals": trainer.partial["totals"].state()},
    }
    if trainer.device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(trainer.device)
    return state


def restore(trainer: Trainer, state: dict[str, Any], name: str = folder.CHECKPOINT) -> None:
    """Put a captured state (read from the run's file `name`) back into a freshly built trainer of the same run."""
    path = trainer.run_dir / name
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BetaVAEError(f"{path} is not a betavae checkpoint")
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        if state.get("objective"):
            trainer.objective.load_state_dict(state["objective"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise BetaVAEError(f"{path} does not match this run's model ({first_line(error, 160)}); it belongs to another "
                           "run") from None
    trainer.epoch, trainer.step, trainer.partial = state["epoch"], state["step"], state["partial"]
    trainer.trained_seconds = trainer.clock = state.get("trained_seconds", 0.0)
    trainer.out_of_time = state.get("out_of_time", False)
    torch.set_rng_state(state["rng_torch"])
    trainer.generator.set_state(state["rng_data"])
    if "rng_binarize" in state:  # checkpoints of earlier versions drew both from rng_data
        trainer.binarizer.set_state(state["rng_binarize"])
    if "rng_pairs" in state:
        trainer.pairing.set_state(state["rng_pairs"])
    if "rng_cuda" in state and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"], trainer.device)
    if trainer.partial is not None:
        main = trainer.context.is_main  # the saved totals are the job's: count them once, on rank 0
        totals = Totals.from_state(trainer.partial["totals"], trainer.device) if main else \
            Totals(trainer.config.latent_dim, trainer.device)
        trainer.partial.update(perm=trainer.partial["perm"].to(trainer.device), totals=totals)
    trainer.records = [r for r in folder.read_metrics(trainer.run_dir) if r["epoch"] <= trainer.epoch]
