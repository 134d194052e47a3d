"""What an epoch record of metrics.jsonl holds, checked as it is read: the readers (curves, report, resume) index
records without checks, so a damaged or edited line is refused here, in one place, naming what is wrong."""

from __future__ import annotations

import math
from typing import Any


def check_record(record: Any, previous: dict[str, Any] | None) -> dict[str, Any]:
    """An epoch record as training writes it (its epoch, step and each split's losses and KL per latent, as many
    latents as the record before), else ValueError saying what is wrong: the readers index it without checks."""
    if not isinstance(record, dict):
        raise ValueError("not a record")
    for key in ("epoch", "step"):
        if not (_is_number(record.get(key)) and isinstance(record[key], int) and record[key] >= 0):
            raise ValueError(f"{key} is not a whole number")
    if previous is not None and record["epoch"] != previous["epoch"] + 1:
        raise ValueError(f"epoch {record['epoch']} follows epoch {previous['epoch']}: a line repeated, moved or lost")
    for key in ("lr", "kl_weight", "train_seconds", "images_per_second"):
        if record.get(key) is not None and not _is_number(record[key]):
            raise ValueError(f"{key} is not a number")
    if not isinstance(record.get("note", ""), str):
        raise ValueError("note is not text")
    if "train" not in record:
        raise ValueError("it has no train losses")
    for split in ("train", "val"):
        if split in record:
            _check_split(record[split], split, previous.get(split) if previous else None)
    return record


def _check_split(losses: Any, split: str, previous: Any) -> None:
    if not (isinstance(losses, dict) and all(_is_number(losses.get(k)) for k in ("loss", "recon", "kl", "neg_elbo"))):
        raise ValueError(f"{split} is not a table of loss, recon, kl and neg_elbo, finite numbers")
    kl = losses.get("kl_per_dim")
    if not (isinstance(kl, list) and kl and all(_is_number(v) for v in kl)):
        raise ValueError(f"{split} kl_per_dim is not a list of finite numbers")
    if previous is not None and len(kl) != len(previous["kl_per_dim"]):
        raise ValueError(f"{split} kl_per_dim has {len(kl)} latents, the record before {len(previous['kl_per_dim'])}")
    if losses.get("active_units") is not None and not isinstance(losses["active_units"], int):
        raise ValueError(f"{split} active_units is not a whole number")


def _is_number(value: Any) -> bool:
    """A finite number: training never records NaN or infinity (a diverged epoch stops the run unrecorded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
