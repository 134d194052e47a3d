"""A run's weights, model.safetensors: the latest model, with its epoch, the run it belongs to and a sha256 of its
contents in the file's metadata (safetensors: loading it runs no code)."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes

from .. import atomic, checksums
from ..config import Config
from ..errors import BetaVAEError, first_line
from ..model import networks
from .folder import CONFIG, WEIGHTS, check_owner


def save_weights(run_dir: Path, model: networks.VAE, epoch: int, run_id: str = "") -> None:
    """The latest weights, with their epoch, the run they belong to and a sha256 of it all in the file's metadata."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = checksums.sealed({"epoch": str(epoch), "run_id": run_id}, state)
    atomic.write_bytes(run_dir / WEIGHTS, save_safetensors_bytes(state, metadata=metadata))


def load_weights(run_dir: Path, config: Config, image_shape: tuple[int, int, int], device: str = "cpu",
                 run_id: str = "") -> networks.VAE:
    """The model a configuration describes with the run's latest weights, in eval mode; weights another run wrote
    (another `run_id`) or changed since they were written (their sha256; files from before it was kept have none) are
    refused."""
    model = networks.build(config, image_shape)
    weights = run_dir / WEIGHTS
    try:
        with safe_open(str(weights), framework="pt") as stored:
            metadata, state = stored.metadata() or {}, {key: stored.get_tensor(key) for key in stored.keys()}
    except FileNotFoundError:
        raise no_weights(run_dir) from None
    except (SafetensorError, ValueError, OSError, RuntimeError) as error:
        raise BetaVAEError(f"{weights} is corrupt or not a safetensors file ({first_line(error, 120)}); delete it and "
                           f"write it again from the run's checkpoint with: betavae train --resume {run_dir}") from None
    check_owner(weights, metadata.get("run_id", ""), run_id)
    if checksums.KEY in metadata and not checksums.intact(metadata, state):
        raise BetaVAEError(f"{weights} has changed since it was written (its contents do not match the sha256 stored "
                           f"with them); delete it and write it again from the run's checkpoint with: betavae train "
                           f"--resume {run_dir}")
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise BetaVAEError(f"{weights} does not match the model in {CONFIG} (a foreign or edited file); delete it and "
                           f"write it again from the run's checkpoint with: betavae train --resume {run_dir}") from None
    return model.to(device).eval()


def no_weights(run_dir: Path) -> BetaVAEError:
    """What a command that needs the weights says when they are missing: the repair that writes them again."""
    return BetaVAEError(f"{run_dir} has no {WEIGHTS} (not written yet, or deleted); write it again from the run's "
                        f"checkpoint with: betavae train --resume {run_dir}")
