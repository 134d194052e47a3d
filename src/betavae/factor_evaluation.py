"""A trained model against known ground-truth factors (dSprites): `betavae disentanglement RUN`.

The posterior means of all 737,280 images of the grid are computed once, so every metric looks codes up instead of
encoding the ~3 million images it samples. Writes disentanglement.json, figures/mutual_information.png and
figures/traversal_factors.png (each latent's row labelled with the factor it captures best).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import atomic, figures, runs
from .data import dsprites
from .disentanglement import METRICS, GroundTruth, evaluate_all
from .errors import BetaVAEError
from .models import VAE
from .report import REPORT, write_report

RESULT = "disentanglement.json"
TRAVERSAL_IMAGE = (2, 5, 0, 16, 16)  # a large heart in the middle of the frame, upright


@torch.no_grad()
def grid_codes(model: VAE, packed: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Posterior means (737280, D) of every image of the grid, in index order."""
    model.eval()
    device = next(model.parameters()).device
    parts = [model.encode(dsprites.unpack(packed[i:i + batch_size]).to(device))[0].cpu()
             for i in range(0, len(packed), batch_size)]
    return torch.cat(parts).double().numpy()


def dsprites_truth(codes: np.ndarray) -> GroundTruth:
    """The dSprites factors, represented by looking their images' codes up."""
    return GroundTruth(dsprites.SIZES, lambda factors: codes[dsprites.factors_to_index(factors)], dsprites.FACTORS)


def best_factors(normalized_information: np.ndarray) -> list[str]:
    """For each latent, the factor it carries most information about, with that share of the factor's entropy."""
    return [f"{dsprites.FACTORS[int(np.argmax(row))]} {np.max(row):.2f}" for row in normalized_information]


def evaluate_run(run_dir: str | Path, seed: int = 0, data_dir: str | None = None,
                 sizes: dict[str, dict[str, Any]] | None = None,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict[str, Any]:
    """All five metrics on a finished dSprites run; the result is also written to RUN/disentanglement.json."""
    run_dir = Path(run_dir)
    runs.require_finished(run_dir)
    config, _ = runs.read_config(run_dir)
    if config.dataset != "dsprites":
        raise BetaVAEError(f"{run_dir} was trained on {config.dataset}, which has no ground-truth factors; "
                           "disentanglement needs a run trained with --dataset dsprites")
    model = runs.load(run_dir)
    log(f"encoding the {dsprites.N_IMAGES:,} dSprites images ...")
    codes = grid_codes(model, dsprites.packed_images(data_dir or config.data_dir, log))
    result = evaluate_all(dsprites_truth(codes), seed, log, **(sizes or {}))
    result.update(run=str(run_dir), sample_sizes=sizes or "disentanglement_lib defaults",
                  kl_per_dim=last_kl(run_dir))
    atomic.write_json(run_dir / RESULT, result)
    save_figures(run_dir, model, result)
    if (run_dir / REPORT).is_file():
        write_report(run_dir, model)  # now with the scores and the two figures
    return result


def last_kl(run_dir: Path) -> list[float]:
    record = runs.read_metrics(run_dir)[-1]
    return record.get("val", record["train"])["kl_per_dim"]


def save_figures(run_dir: Path, model: VAE, result: dict[str, Any]) -> None:
    information = np.array(result["details"]["mig"]["normalized_mutual_information"])
    out = run_dir / "figures"
    figures.save_figure(figures.information_figure(information, dsprites.FACTORS, result["kl_per_dim"]),
                        out / "mutual_information.png")
    image = dsprites.render(np.array([TRAVERSAL_IMAGE]))[0]
    figure, _ = figures.traversal_figure(model, image, result["kl_per_dim"], row_labels=best_factors(information))
    figures.save_figure(figure, out / "traversal_factors.png")


def format_table(result: dict[str, Any]) -> str:
    """The scores, one per line, with what each measures."""
    what = {"beta_vae": "beta-VAE metric (eval accuracy)", "factor_vae": "FactorVAE metric (eval accuracy)",
            "mig": "MIG", "dci_disentanglement": "DCI disentanglement", "dci_completeness": "DCI completeness",
            "dci_informativeness": "DCI informativeness (test accuracy)", "sap": "SAP"}
    lines = [f"disentanglement of {result['run']} (seed {result['seed']}, {', '.join(METRICS)}):"]
    lines += [f"  {what[name]:<38} {value:.3f}" for name, value in result["scores"].items()]
    return "\n".join(lines)
