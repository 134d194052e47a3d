"""Per-epoch scalars to TensorBoard, when the optional extra is installed (pip install 'betavae[tensorboard]')."""

from __future__ import annotations

from . import folder
from .callbacks import EpochEnd


def available() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """A training callback writing loss, recon, KL, negative ELBO and active units for train and validation."""

    def __init__(self):
        self.writer = None

    def __call__(self, end: EpochEnd) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(end.run_dir / folder.TENSORBOARD))
        for split in ("train", "val"):
            for key, value in end.record.get(split, {}).items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{split}/{key}", value, end.epoch)
        self.writer.add_scalar("kl_weight", end.record["kl_weight"], end.epoch)
        self.writer.flush()
        if end.is_last:
            self.writer.close()
