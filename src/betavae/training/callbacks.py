"""What watches training: a callback is called after every epoch with an `EpochEnd`. Figures, the report and
TensorBoard are callbacks, so the trainer itself only trains; this module sits below both, so neither imports the
other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import Config
from ..data import Data
from ..model import VAE


@dataclass
class EpochEnd:
    """What a callback sees after each epoch (epoch 0 is the untrained model)."""

    epoch: int
    record: dict[str, Any]
    model: VAE
    data: Data
    config: Config
    run_dir: Path
    is_last: bool
    run_id: str = ""  # the run's identity (config.json), written into the files callbacks keep in the run

    @property
    def kl_per_dim(self) -> list[float]:
        """This epoch's KL per latent dimension: on the validation split, else on the training split."""
        return kl_per_dim(self.record)


Callback = Callable[[EpochEnd], None]


def held_out(record: dict[str, Any]) -> dict[str, Any]:
    """An epoch record's validation numbers, or its training numbers when there is no validation split."""
    return record.get("val", record["train"])


def kl_per_dim(record: dict[str, Any]) -> list[float]:
    """An epoch record's KL per latent dimension: on the validation split, else on the training split."""
    return held_out(record)["kl_per_dim"]
