"""A trained model against known ground-truth factors (dSprites): the numbers of `betavae disentanglement RUN`.

The posterior means of all 737,280 images of the grid are computed once, unpacking one batch at a time (the grid stays
bit-packed, 377 MB), so every metric looks codes up instead of encoding the ~3 million images it samples. Writes
disentanglement.json; the figures are drawn by pictures/run_figures.py.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Callable

import numpy as np
import torch

from .. import atomic
from ..data import PackedImages, dsprites, lookup
from ..errors import BetaVAEError
from ..model import VAE
from ..runs import Run
from .disentanglement import METRICS, GroundTruth, evaluate_all

RESULT = "disentanglement.json"
FORMAT = 1  # the layout of disentanglement.json
TRAVERSAL_FACTORS = (2, 5, 0, 16, 16)  # a large heart in the middle of the frame, upright
ENCODE_BATCH = 1024  # against 4096: 8% faster on a 2-core CPU, a quarter of the activations (peak 1.3 GB, not 1.9)


def grid_codes(model: VAE, packed: np.ndarray, batch_size: int = ENCODE_BATCH) -> np.ndarray:
    """Posterior means (737280, D) of every image of the grid, in index order, as float64."""
    with warnings.catch_warnings():  # the cache is memory-mapped read-only, and nothing here writes to it: no copy
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        rows = torch.from_numpy(np.asarray(packed))
    images = PackedImages(rows, (1, dsprites.SIZE, dsprites.SIZE))
    return model.posterior_means(images, batch_size).astype(np.float64)


def dsprites_truth(codes: np.ndarray) -> GroundTruth:
    """The dSprites factors, represented by looking their images' codes up."""
    return GroundTruth(dsprites.SIZES, lambda factors: codes[dsprites.factors_to_index(factors)], dsprites.FACTORS)


def traversal_image() -> torch.Tensor:
    """The image whose latents the factor-labelled traversal sweeps."""
    return dsprites.render(np.array([TRAVERSAL_FACTORS]))[0]


def evaluate_run(run: Run, seed: int = 0, data_dir: str | None = None,
                 sizes: dict[str, dict[str, Any]] | None = None,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict[str, Any]:
    """All five metrics on a finished run trained on a data set with ground-truth factors; the result is also written
    to RUN/disentanglement.json."""
    run.require_finished()
    if not lookup(run.config.dataset).has_factors:
        raise BetaVAEError(f"{run.path} was trained on {run.config.dataset}, which has no ground-truth factors; "
                           "disentanglement needs a run trained with --dataset dsprites")
    log(f"encoding the {dsprites.N_IMAGES:,} dSprites images ...")
    codes = grid_codes(run.model, dsprites.packed_images(data_dir or run.config.data_dir, log))
    result = evaluate_all(dsprites_truth(codes), seed, log, **(sizes or {}))
    result.update(format=FORMAT, run=str(run.path), sample_sizes=sizes or "disentanglement_lib defaults",
                  kl_per_dim=run.kl_per_dim)
    atomic.write_json(run.path / RESULT, result)
    return result


def format_table(result: dict[str, Any]) -> str:
    """The scores, one per line, with what each measures."""
    what = {"beta_vae": "beta-VAE metric (eval accuracy)", "factor_vae": "FactorVAE metric (eval accuracy)",
            "mig": "MIG", "dci_disentanglement": "DCI disentanglement", "dci_completeness": "DCI completeness",
            "dci_informativeness": "DCI informativeness (test accuracy)", "sap": "SAP"}
    lines = [f"disentanglement of {result['run']} (seed {result['seed']}, {', '.join(METRICS)}):"]
    lines += [f"  {what[name]:<38} {value:.3f}" for name, value in result["scores"].items()]
    return "\n".join(lines)
