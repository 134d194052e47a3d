"""A trained model against the ground-truth factors of its data set: the numbers of `betavae disentanglement RUN`.

The data set's whole grid (dSprites: 737,280 images) is encoded once to posterior means, one batch at a time (the grid
stays packed: dSprites' is 377 MB), so every metric looks codes up instead of encoding the ~3 million images it
samples. Any data set with ground-truth factors serves (data/groundtruth.py). Writes disentanglement.json; the
figures are drawn by pictures/run_figures.py.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from .. import atomic
from ..data import GroundTruthData, ground_truth
from ..data.groundtruth import Grid
from ..errors import BetaVAEError
from ..model import VAE
from ..runs import Run
from .disentanglement import METRICS, GroundTruth, evaluate_all

RESULT = "disentanglement.json"
FORMAT = 1  # the layout of disentanglement.json
ENCODE_BATCH = 1024  # images encoded at once (why this size: docs/benchmarks.md, `betavae disentanglement`)


def grid_codes(model: VAE, grid: Grid, batch_size: int = ENCODE_BATCH) -> np.ndarray:
    """Posterior means (N, D) of every image of a grid, in index order, as float64."""
    return model.posterior_means(grid, batch_size).astype(np.float64)


def looked_up(truth: GroundTruthData, codes: np.ndarray) -> GroundTruth:
    """A data set's factors that vary (a factor of one level carries nothing to score, and the metrics' classifiers
    cannot fit it), represented by looking their images' codes up."""
    varying = [k for k, size in enumerate(truth.factor_sizes) if size > 1]
    if len(varying) < 2:
        raise BetaVAEError(f"{truth.name} has {len(varying)} factor(s) of more than one level; the metrics compare "
                           "factors and need at least two")

    def represent(factors: np.ndarray) -> np.ndarray:
        full = np.zeros((len(factors), len(truth.factor_sizes)), dtype=np.int64)
        full[:, varying] = factors
        return codes[truth.index_of(full)]

    return GroundTruth(tuple(truth.factor_sizes[k] for k in varying), represent,
                       tuple(truth.factor_names[k] for k in varying))


def evaluate_run(run: Run, seed: int = 0, data_dir: str | None = None,
                 sizes: dict[str, dict[str, Any]] | None = None,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict[str, Any]:
    """All five metrics on a finished run trained on a data set with ground-truth factors; the result is also written
    to RUN/disentanglement.json."""
    run.require_finished()
    truth = ground_truth(run.config.dataset, f"disentanglement scores {run.path} against ground-truth factors")
    log(f"encoding the {truth.num_images:,} {truth.name} images ...")
    codes = grid_codes(run.model, truth.grid(data_dir or run.config.data_dir, log))
    result = evaluate_all(looked_up(truth, codes), seed, log, **(sizes or {}))
    result.update(format=FORMAT, run=str(run.path), run_id=run.meta.run_id, sample_sizes=sizes or "disentanglement_lib defaults",
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
