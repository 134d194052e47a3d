"""Training and scale-out: the loop (trainer), what a checkpoint holds (checkpoint), setting a run up (fit) and
resuming it (resuming), the run folder's files (folder), what watches training (callbacks, tensorboard), Ctrl-C
(interrupts), and going faster or wider: CUDA graphs on one GPU (cuda_graphs), DistributedDataParallel and Ray
(distributed)."""

from .callbacks import Callback, EpochEnd
from .fit import fit, resume
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = ["Callback", "EpochEnd", "Trainer", "TrainingDiverged", "TrainingInterrupted", "fit", "resume"]
