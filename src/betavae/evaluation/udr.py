"""Unsupervised Disentanglement Ranking (UDR; Duan et al., ICLR 2020): which of several models trained alike is the
most disentangled, without labels: the numbers of `betavae select RUN RUN ...`.

Models that disentangle agree with each other up to the order and signs of their latents; entangled ones each mix the
factors their own way. UDR scores that agreement, with the definitions of disentanglement_lib's
evaluation/udr/metrics/udr.py:
- every model encodes one shared sample of images; its posterior means are standardized latent by latent;
- a latent is informative when its mean KL(q(z_d|x) || N(0, 1)) is above 0.01 nats; only informative latents count;
- the similarity matrix R of models a and b (rows: a's informative latents, columns: b's) holds the absolute Spearman
  rank correlations (variant spearman), or the absolute weights of a Lasso regression (alpha 0.1) of each of b's
  latents on all of a's (variant lasso);
- the pair's score: per column of R, its largest entry squared over its sum, averaged over the columns; the same per
  row; the mean of the two. A permutation with signs scores 1 (Spearman; Lasso's shrinkage makes it 0.9), a latent
  spread over several of the other model's scores less, independent codes about 0;
- a model's UDR: the median of its pair scores against every other model, the other model's latents as regressors.
Where the paper's equation weights the two directions by the numbers of informative latents, disentanglement_lib (and
so this module) takes their plain mean; the two agree when both models keep as many latents.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import permutations
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import atomic
from ..errors import BetaVAEError
from ..runs import Run

VARIANTS = ("lasso", "spearman")
DEFAULT_VARIANT = "lasso"  # disentanglement_lib's default (udr_sklearn's correlation_matrix)
KL_THRESHOLD = 0.01  # nats: latents with less mean KL are uninformative
LASSO_ALPHA = 0.1
SAMPLE_IMAGES = 10_000  # the shared sample `select` encodes
RESULT = "udr.json"
FORMAT = 1  # the layout of udr.json


# --- the metric on code tables -------------------------------------------------------------------------------------
def standardized(codes: np.ndarray) -> np.ndarray:
    """Each column at mean 0 and standard deviation 1 (a constant column becomes 0), as float64."""
    codes = np.asarray(codes, dtype=np.float64)
    sd = codes.std(axis=0)
    return (codes - codes.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def informative(kl_per_dim: Sequence[float], threshold: float = KL_THRESHOLD) -> np.ndarray:
    """Which latents carry information: mean KL per latent above the threshold."""
    return np.asarray(kl_per_dim, dtype=np.float64) > threshold


def spearman_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|Spearman rank correlation| of each column of a (rows) with each column of b (columns); 0 for a constant one."""
    from scipy.stats import rankdata

    ranks_a, ranks_b = standardized(rankdata(a, axis=0)), standardized(rankdata(b, axis=0))
    return np.abs(ranks_a.T @ ranks_b) / len(a)


def lasso_matrix(a: np.ndarray, b: np.ndarray, alpha: float = LASSO_ALPHA) -> np.ndarray:
    """|weights| of a Lasso regression of each column of b on all columns of a: rows a's columns, columns b's."""
    from sklearn.linear_model import Lasso

    weights = Lasso(alpha=alpha).fit(a, b).coef_
    return np.abs(np.reshape(weights, (b.shape[1], a.shape[1]))).T


def similarity(a: np.ndarray, b: np.ndarray, variant: str = DEFAULT_VARIANT) -> np.ndarray:
    """The similarity matrix R of two standardized code tables of one sample (rows a's latents, columns b's)."""
    check_variant(variant)
    if a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros((a.shape[1], b.shape[1]))
    return lasso_matrix(a, b) if variant == "lasso" else spearman_matrix(a, b)


def relative_strength(matrix: np.ndarray) -> float:
    """How one-to-one a similarity matrix is: the mean of its column-wise and row-wise max² / sum (0 when empty)."""
    if matrix.size == 0:
        return 0.0
    return (_strength(matrix, axis=0) + _strength(matrix, axis=1)) / 2


def _strength(matrix: np.ndarray, axis: int) -> float:
    """Mean over one axis of max² / sum, an all-zero line counting 0."""
    total, peak = matrix.sum(axis=axis), matrix.max(axis=axis)
    return float(np.mean(np.divide(peak ** 2, total, out=np.zeros_like(total), where=total > 0)))


@dataclass(frozen=True)
class Ranking:
    """UDR of each model; pair scores (row: the model whose latents are regressors, column: the model scored); the
    informative latents of each model."""

    scores: np.ndarray
    pairwise: np.ndarray
    informative: list[np.ndarray]


def udr(codes: Sequence[np.ndarray], kl_per_dim: Sequence[Sequence[float]], variant: str = DEFAULT_VARIANT,
        threshold: float = KL_THRESHOLD) -> Ranking:
    """UDR of each model from its codes of one shared sample, (N, D_i) each, and its mean KL per latent (D_i)."""
    check_variant(variant)
    check_tables(codes, kl_per_dim)
    masks = [informative(kl, threshold) for kl in kl_per_dim]
    latents = [standardized(table)[:, mask] for table, mask in zip(codes, masks)]
    pairwise = np.full((len(codes), len(codes)), np.nan)
    for i, j in permutations(range(len(codes)), 2):
        pairwise[i, j] = relative_strength(similarity(latents[i], latents[j], variant))
    scores = np.array([np.median(np.delete(pairwise[:, j], j)) for j in range(len(codes))])
    return Ranking(scores, pairwise, masks)


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise BetaVAEError(f"unknown UDR variant {variant!r}; choose {' or '.join(VARIANTS)}")


def check_tables(codes: Sequence[np.ndarray], kl_per_dim: Sequence[Sequence[float]]) -> None:
    """Refuse code tables that cannot be compared: fewer than two, of different samples, or KLs of other lengths."""
    if len(codes) < 2:
        raise BetaVAEError(f"UDR ranks models against each other: give at least 2 (got {len(codes)})")
    if len(kl_per_dim) != len(codes):
        raise BetaVAEError(f"{len(codes)} code tables but {len(kl_per_dim)} KL lists; give one per model")
    if len({np.shape(table)[0] for table in codes}) != 1:
        raise BetaVAEError("the code tables hold different numbers of images; encode one shared sample with each")
    for i, (table, kl) in enumerate(zip(codes, kl_per_dim)):
        if np.ndim(table) != 2 or np.shape(table)[1] != len(kl):
            raise BetaVAEError(f"model {i}: codes of shape {np.shape(table)} but {len(kl)} KL values; give (N, D) "
                               "codes and one KL per latent")
        if not (np.isfinite(np.asarray(table, dtype=float)).all() and np.isfinite(np.asarray(kl, dtype=float)).all()):
            raise BetaVAEError(f"model {i}: its codes or KL values hold NaN or infinity; give finite numbers")


# --- runs ----------------------------------------------------------------------------------------------------------
def open_runs(paths: Sequence[Run | str | Path]) -> list[Run]:
    """The finished runs to compare, refused in one line unless there are two or more, each once, of one data set
    and image shape."""
    if len(paths) < 2:
        raise BetaVAEError(f"UDR ranks runs against each other: give at least 2 finished runs (got {len(paths)})")
    runs = [path if isinstance(path, Run) else Run.open(path) for path in paths]
    seen: set[Path] = set()
    ids: dict[str, Path] = {}
    for run in runs:
        run.require_finished()
        run.require_writable()
        if run.path.resolve() in seen:
            raise BetaVAEError(f"{run.path} is given twice; give each run once")
        seen.add(run.path.resolve())
        if run.meta.run_id and run.meta.run_id in ids:  # a copied folder would agree with itself perfectly
            raise BetaVAEError(f"{run.path} is a copy of {ids[run.meta.run_id]} (the same run id); give each run once")
        ids[run.meta.run_id] = run.path
    first = runs[0]
    for run in runs[1:]:
        if run.config.dataset != first.config.dataset:
            raise BetaVAEError(f"{run.path} was trained on {run.config.dataset} but {first.path} on "
                               f"{first.config.dataset}; UDR compares runs of one data set, give runs trained on it")
        if run.image_shape != first.image_shape:
            raise BetaVAEError(f"{run.path} was trained on images of shape {run.image_shape} but {first.path} on "
                               f"{first.image_shape}; give runs trained on the same images")
    return runs


def select(runs: Sequence[Run | str | Path], n: int = SAMPLE_IMAGES, variant: str = DEFAULT_VARIANT, seed: int = 0,
           log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> dict[str, Any]:
    """Rank finished runs of one data set by UDR on a shared sample of at most n images (the first run's validation
    split, else its training split, drawn by seed); write RUN/udr.json to each and return the ranking, best first."""
    check_variant(variant)
    runs = open_runs(runs)
    split = runs[0].reference_name
    sample = runs[0].split(split).sample(n, seed)
    if len(sample) < 2:
        raise BetaVAEError(f"the {split} split of {runs[0].config.dataset} has {len(sample)} image(s); UDR needs at "
                           "least 2 (train with a larger --val-size)")
    log(f"encoding {len(sample):,} {split} images with each of {len(runs)} runs ...")
    codes = [run.model.posterior_means(sample.images) for run in runs]
    ranking = udr(codes, [run.kl_per_dim for run in runs], variant)
    result = summary(runs, ranking, variant=variant, images=len(sample), split=split, seed=seed)
    for record in result["ranking"]:
        atomic.write_json(Path(record["run"]) / RESULT, run_record(result, record))
    return result


def summary(runs: Sequence[Run], ranking: Ranking, **sample: Any) -> dict[str, Any]:
    """The ranking as plain data, best first: each run's UDR, rank, informative latents and pair scores."""
    order = sorted(range(len(runs)), key=lambda i: -ranking.scores[i])
    records = [{"run": str(runs[i].path), "run_id": runs[i].meta.run_id, "udr": float(ranking.scores[i]), "rank": rank,
                "informative_latents": np.flatnonzero(ranking.informative[i]).tolist(),
                "latent_dim": len(ranking.informative[i]),
                "against": {str(runs[j].path): float(ranking.pairwise[j, i]) for j in range(len(runs)) if j != i}}
               for rank, i in enumerate(order, start=1)]
    return {"format": FORMAT, "dataset": runs[0].config.dataset, "kl_threshold": KL_THRESHOLD, **sample,
            "ranking": records, "best": records[0]["run"]}


def run_record(result: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """What one run's udr.json holds: its score and rank, the other runs and its score against each, and how they
    were compared."""
    shared = {key: value for key, value in result.items() if key != "ranking"}
    return {**shared, **record, "of": len(result["ranking"])}


def format_table(result: dict[str, Any]) -> str:
    """The ranking as a table, best first, and which run to keep."""
    lines = [f"UDR ({result['variant']}) on {result['images']:,} {result['split']} images of {result['dataset']} "
             f"(seed {result['seed']}; latents with KL > {result['kl_threshold']} nats count):",
             f"  {'rank':>4}  {'UDR':>6}  {'informative':>11}  run"]
    for record in result["ranking"]:
        used = f"{len(record['informative_latents'])} of {record['latent_dim']}"
        lines.append(f"  {record['rank']:>4}  {record['udr']:>6.3f}  {used:>11}  {record['run']}")
    best, *others = result["ranking"]
    tied = [record["run"] for record in others if record["udr"] >= best["udr"] - 1e-12]
    lines.append(f"best: {result['best']}" + (f" (tied with {', '.join(tied)})" if tied else "") +
                 f"; each run's score and rank are in RUN/{RESULT}")
    return "\n".join(lines)
