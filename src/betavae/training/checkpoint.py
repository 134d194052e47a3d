"""What a checkpoint holds, so that a resumed run continues exactly: weights, optimizer, every random stream, the
epoch in progress (its permutation, position and running totals), the training time spent, and the identity of the
run it belongs to. A checkpoint is checked before it is used: its keys and their types, its run, and its epoch and
step against the run's metrics and status, so that one copied from another run or edited is refused in one line."""

from __future__ import annotations

from pathlib import Path
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
        "format": FORMAT, "run_id": trainer.run_id, "epoch": trainer.epoch, "step": trainer.step,
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


REQUIRED = {"epoch": int, "step": int, "model": dict, "optimizer": dict, "rng_torch": torch.Tensor,
            "rng_data": torch.Tensor}
OPTIONAL = {"trained_seconds": (int, float), "out_of_time": bool, "rng_binarize": torch.Tensor,
            "rng_pairs": torch.Tensor, "rng_cuda": torch.Tensor, "objective": dict}  # absent in earlier versions


def check(state: Any, path: Path, run_id: str, records: list[dict[str, Any]], status: dict[str, Any],
          latest: bool = True) -> None:
    """Refuse, in one line, a checkpoint that is damaged, belongs to another run (another run id, or an epoch and step
    this run's metrics do not show), or is not the run's latest (`latest`: the run went on past it)."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise BetaVAEError(f"{path} is not a betavae checkpoint; restore this run's own, or train a new run")
    wrong = [key for key, kind in REQUIRED.items() if not isinstance(state.get(key), kind) or
             isinstance(state.get(key), bool)] + ([] if state.get("partial") is None or
                                                  isinstance(state.get("partial"), dict) else ["partial"])
    wrong += [key for key, kind in OPTIONAL.items() if key in state and not isinstance(state[key], kind)
              or key == "trained_seconds" and isinstance(state.get(key), bool)]
    if wrong:
        raise BetaVAEError(f"{path} is damaged ({', '.join(wrong)} missing or of the wrong type); restore this run's "
                           "own checkpoint, or train a new run")
    if run_id and state.get("run_id") != run_id:
        raise BetaVAEError(f"{path} belongs to another run (copied in?); restore this run's own checkpoint, or "
                           "train a new run")
    epoch, step = state["epoch"], state["step"]
    if not shows(records, epoch, step, state["partial"]) or (latest and ran_past(status, records, epoch)):
        raise BetaVAEError(f"{path} holds epoch {epoch}, step {step}, which this run's {folder.METRICS_JSONL} and "
                           f"{folder.STATUS} do not show (a checkpoint of another run, an older one, or an edited "
                           "one); restore this run's own checkpoint, or train a new run")


def shows(records: list[dict[str, Any]], epoch: int, step: int, partial: dict[str, Any] | None) -> bool:
    """Whether the metrics record the checkpoint's epoch at its step (less the batches of an epoch in progress)."""
    record = next((r for r in records if r.get("epoch") == epoch), None)
    position = partial.get("position", 0) if partial else 0
    return record is not None and record.get("step", step - position) + position == step


def ran_past(status: dict[str, Any], records: list[dict[str, Any]], epoch: int) -> bool:
    """Whether the run completed epochs after the checkpoint's. The metrics of one more epoch are written just before
    its checkpoint, so a process killed in between leaves them one epoch ahead."""
    last = records[-1].get("epoch", 0) if records else 0
    return folder.trained_epochs(status, []) > epoch or (isinstance(last, int) and last > epoch + 1)


def restore(trainer: Trainer, state: dict[str, Any], records: list[dict[str, Any]],
            name: str = folder.CHECKPOINT) -> None:
    """Put a checked state (read from the run's file `name`) back into a freshly built trainer of the same run, with
    the run's metrics records up to its epoch."""
    path = trainer.run_dir / name
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        if state.get("objective"):
            trainer.objective.load_state_dict(state["objective"])
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise BetaVAEError(f"{path} does not match this run's model ({first_line(error, 160)}); it belongs to another "
                           "run") from None
    trainer.epoch, trainer.step, trainer.partial = state["epoch"], state["step"], state["partial"]
    trainer.saved_epoch = trainer.epoch
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
    trainer.records = [r for r in records if r["epoch"] <= trainer.epoch]
