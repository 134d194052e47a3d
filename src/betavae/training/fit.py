"""Setting a run up and training it: the configuration (new, or saved and resumed), the data, the processes of a
torchrun job, then the trainer. Resume changes are decided here and nowhere else."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from .. import data as datalib
from ..config import Config, from_dict
from ..errors import BetaVAEError
from . import checkpoint, distributed, folder
from .callbacks import Callback
from .trainer import Trainer

RESUMABLE_CHANGES = ("epochs", "device", "threads", "precision", "cuda_graphs")


def fit(config: Config, run_dir: str | Path, *, resume: bool = False, data: datalib.Data | None = None,
        callbacks: Iterable[Callback] = (), progress: bool | None = None,
        log: Callable[[str], None] | None = None) -> Path:
    """Train `config` into run_dir (a new run), or with resume=True continue the run there, its saved configuration
    changed by `config`'s resumable fields; returns the run folder. Only the callbacks given watch it."""
    run_dir = Path(run_dir)
    if resume:
        config = resumed_config(run_dir, config)
        state = folder.load_checkpoint(run_dir)
    else:
        if (run_dir / folder.CONFIG).exists():
            raise BetaVAEError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                               "or choose another --name")
        state = None
    if config.threads:
        torch.set_num_threads(config.threads)
    context = distributed.from_environment(distributed.device_for(config.device))
    trainer = None
    try:
        if data is None:
            if not context.is_main:
                context.barrier()  # rank 0 fetches (and caches) the data first
            data = datalib.load(config.dataset, config.data_dir, config.val_size)
            if context.is_main:
                context.barrier()
        if context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            folder.save_config(run_dir, config, data.image_shape)
        trainer = Trainer(config, run_dir, data, callbacks, progress, log, context)
        if state is not None:
            checkpoint.restore(trainer, state)
        trainer.run()
        context.barrier()  # every rank done before any tears down
    finally:
        if context.distributed:
            del trainer  # DDP's reducer must go before its process group, or the interpreter aborts at exit
            gc.collect()
            distributed.shutdown()
    return run_dir


def resumed_config(run_dir: Path, changes: Config | Mapping[str, Any] | None = None) -> Config:
    """The saved configuration with the requested changes (a Config, or only the fields to change), refusing any
    change but those a resume allows."""
    saved, _ = folder.read_config_file(run_dir)
    if not changes:
        return saved
    requested = changes if isinstance(changes, Config) else from_dict(dict(changes), saved)
    changed = {k for k, v in requested.to_dict().items() if saved.to_dict()[k] != v}
    refused = sorted(changed - set(RESUMABLE_CHANGES))
    if refused:
        raise BetaVAEError(f"cannot change {', '.join(refused)} when resuming {run_dir}; only "
                           f"{', '.join(RESUMABLE_CHANGES)} may change. Start a new run instead")
    return saved.replace(**{k: getattr(requested, k) for k in changed})
