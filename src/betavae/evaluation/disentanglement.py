"""Disentanglement metrics: how well a representation separates known ground-truth factors.

Each metric follows disentanglement_lib's definition and default sample sizes, with its own
np.random.RandomState(seed) as there:
- beta-VAE metric (Higgins et al. 2017): a logistic regression guesses which factor a batch of 64 pairs shared from
  the mean absolute difference of their codes; 10,000 training and 5,000 evaluation points; score = eval accuracy.
- FactorVAE metric (Kim and Mnih 2018): codes scaled by their global standard deviation (10,000 samples, dimensions
  with standard deviation below 0.05 pruned); in a batch of 64 sharing one factor, the dimension of least variance
  votes for that factor; majority-vote classifier; 10,000 / 5,000 points; score = eval accuracy.
- MIG (Chen et al. 2018): 20 equal-width bins per code, plug-in mutual information with each factor; per factor the
  gap between the two most informative codes over the factor's entropy, averaged; 10,000 points.
- DCI (Eastwood and Williams 2018): gradient-boosted trees per factor on 10,000 points; importance-weighted
  disentanglement and completeness; informativeness = mean test accuracy on 5,000 more.
- SAP (Kumar et al. 2018), discrete factors: a linear SVM (C = 0.01, balanced) per code and factor predicts the
  factor from that code alone; per factor the gap between the two best test accuracies, averaged; 10,000 / 5,000.

A metric sees the world through a `GroundTruth`: the factor sizes and a function from factor levels to codes (for a
model: render or look up the images, encode, take the posterior means).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Represent = Callable[[np.ndarray], np.ndarray]  # factor levels (N, K) -> codes (N, D)


@dataclass(frozen=True)
class GroundTruth:
    """Factors with `sizes` levels each, sampled uniformly and independently; `represent` maps them to codes."""

    sizes: tuple[int, ...]
    represent: Represent
    names: tuple[str, ...] = ()

    @property
    def num_factors(self) -> int:
        return len(self.sizes)

    def sample_factors(self, n: int, rng: np.random.RandomState) -> np.ndarray:
        return np.stack([rng.randint(size, size=n) for size in self.sizes], axis=1)

    def sample(self, n: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """Codes (N, D) and the factor levels (N, K) they come from."""
        factors = self.sample_factors(n, rng)
        return np.asarray(self.represent(factors), dtype=np.float64), factors


# --- MIG -------------------------------------------------------------------------------------------------------------
def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """(N, D) real codes -> (N, D) bin indices of `bins` equal-width bins per dimension."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.zeros(codes.shape, dtype=np.int64)
    for d in range(codes.shape[1]):
        edges = np.histogram(codes[:, d], bins)[1][:-1]
        out[:, d] = np.digitize(codes[:, d], edges)
    return out


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(D, K) matrix of I(code_d; factor_k) in nats."""
    from sklearn.metrics import mutual_info_score

    return np.array([[mutual_info_score(factors[:, k], discrete_codes[:, d]) for k in range(factors.shape[1])]
                     for d in range(discrete_codes.shape[1])])


def entropy(factors: np.ndarray) -> np.ndarray:
    """Entropy of each discrete factor, in nats."""
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def normalized_mutual_information(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> np.ndarray:
    """(D, K) mutual information of each code with each factor, over the factor's entropy (0 to 1)."""
    return mutual_information(discretize(codes, bins), factors) / entropy(factors)


def top_two_gap(matrix: np.ndarray) -> float:
    """Mean over columns (factors) of the gap between the two largest entries (latents): MIG's and SAP's score."""
    if matrix.shape[0] < 2:
        raise ValueError("MIG and SAP need at least two latent dimensions")
    ordered = np.sort(matrix, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Mutual information gap: 1 when each factor is captured by exactly one latent, 0 when by none or by two."""
    return top_two_gap(normalized_mutual_information(codes, factors, bins))


# --- DCI -------------------------------------------------------------------------------------------------------------
def dci_importance(codes: np.ndarray, factors: np.ndarray, test_codes: np.ndarray, test_factors: np.ndarray,
                   seed: int = 0) -> tuple[np.ndarray, float]:
    """(D, K) feature importances of gradient-boosted trees predicting each factor, and their mean test accuracy.
    The trees are seeded (disentanglement_lib leaves them unseeded, so its ties break differently per run); the
    factors are fitted in parallel processes, the slowest part of all five metrics, those with the most levels
    first (a fit's time grows with its classes), so the processes finish together."""
    from joblib import Parallel, delayed

    order = sorted(range(factors.shape[1]), key=lambda k: -len(np.unique(factors[:, k])))
    fitted = Parallel(n_jobs=min(factors.shape[1], usable_cores()))(
        delayed(_boosted_trees)(codes, factors[:, k], test_codes, test_factors[:, k], seed) for k in order)
    fits = [fit for _, fit in sorted(zip(order, fitted))]
    importance = np.stack([importance for importance, _ in fits], axis=1)
    return importance, float(np.mean([accuracy for _, accuracy in fits]))


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask: `taskset -c 1 betavae ...` gets one), not the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _boosted_trees(codes: np.ndarray, factor: np.ndarray, test_codes: np.ndarray, test_factor: np.ndarray,
                   seed: int) -> tuple[np.ndarray, float]:
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(random_state=seed).fit(codes, factor)
    return np.abs(model.feature_importances_), float(np.mean(model.predict(test_codes) == test_factor))


def _one_minus_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """1 - entropy of each slice of p along `axis` (normalized to sum to 1), in base = its length."""
    p = p + 1e-11
    p = p / p.sum(axis=axis, keepdims=True)
    return np.clip(1.0 + (p * np.log(p)).sum(axis=axis) / np.log(p.shape[axis]), 0.0, 1.0)  # no -0.000


def dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement (each code's importance on one factor, weighted by the code's share) and completeness (each
    factor's importance on one code, weighted by the factor's share)."""
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    per_code, per_factor = _one_minus_entropy(importance, axis=1), _one_minus_entropy(importance, axis=0)
    disentanglement = float(np.sum(per_code * weights.sum(1) / weights.sum()))
    completeness = float(np.sum(per_factor * weights.sum(0) / weights.sum()))
    return disentanglement, completeness


# --- SAP -------------------------------------------------------------------------------------------------------------
def sap_matrix(codes: np.ndarray, factors: np.ndarray, test_codes: np.ndarray, test_factors: np.ndarray
               ) -> np.ndarray:
    """(D, K) test accuracy of a linear SVM predicting factor k from code d alone."""
    from sklearn.svm import LinearSVC

    scores = np.zeros((codes.shape[1], factors.shape[1]))
    for d in range(codes.shape[1]):
        for k in range(factors.shape[1]):
            model = LinearSVC(C=0.01, class_weight="balanced").fit(codes[:, d:d + 1], factors[:, k])
            scores[d, k] = np.mean(model.predict(test_codes[:, d:d + 1]) == test_factors[:, k])
    return scores


# --- the metrics on a ground truth -----------------------------------------------------------------------------------
def beta_vae_metric(truth: GroundTruth, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                    num_eval: int = 5_000) -> dict[str, float]:
    """Accuracy of a linear classifier telling which factor a batch of pairs shared, from |z1 - z2| averaged."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(seed)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels, first, second = [], [], []
        for _ in range(n):
            k = rng.randint(truth.num_factors)
            a, b = truth.sample_factors(batch_size, rng), truth.sample_factors(batch_size, rng)
            b[:, k] = a[:, k]
            labels.append(k), first.append(a), second.append(b)
        difference = np.abs(truth.represent(np.concatenate(first)) - truth.represent(np.concatenate(second)))
        return difference.reshape(n, batch_size, -1).mean(1), np.array(labels)

    x_train, y_train = points(num_train)
    x_eval, y_eval = points(num_eval)
    with warnings.catch_warnings():  # lbfgs's default 100 iterations, as in disentanglement_lib, may not converge
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(random_state=rng).fit(x_train, y_train)
    return {"train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
            "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval))}


def factor_vae_metric(truth: GroundTruth, seed: int = 0, batch_size: int = 64, num_train: int = 10_000,
                      num_eval: int = 5_000, num_variance_estimate: int = 10_000, threshold: float = 0.05
                      ) -> dict[str, float]:
    """Accuracy of a majority vote from the dimension of least (scaled) variance to the factor held fixed."""
    rng = np.random.RandomState(seed)
    codes, _ = truth.sample(num_variance_estimate, rng)
    global_variance = np.var(codes, axis=0, ddof=1)
    active = np.flatnonzero(np.sqrt(global_variance) >= threshold)
    if len(active) == 0:
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "active_dims": 0}

    def votes(n: int) -> np.ndarray:
        table = np.zeros((truth.num_factors, codes.shape[1]), dtype=np.int64)
        labels, batches = [], []
        for _ in range(n):
            k = rng.randint(truth.num_factors)
            factors = truth.sample_factors(batch_size, rng)
            factors[:, k] = factors[0, k]
            labels.append(k), batches.append(factors)
        local = np.var(truth.represent(np.concatenate(batches)).reshape(n, batch_size, -1), axis=1, ddof=1)
        chosen = active[np.argmin(local[:, active] / global_variance[active], axis=1)]
        np.add.at(table, (np.array(labels), chosen), 1)
        return table

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)  # each dimension's factor
    columns = np.arange(train_votes.shape[1])
    eval_votes = votes(num_eval)
    return {"train_accuracy": float(train_votes[classifier, columns].sum() / train_votes.sum()),
            "eval_accuracy": float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
            "active_dims": int(len(active))}


def mig_metric(truth: GroundTruth, seed: int = 0, num_train: int = 10_000) -> dict[str, Any]:
    codes, factors = truth.sample(num_train, np.random.RandomState(seed))
    information = normalized_mutual_information(codes, factors)
    return {"mig": top_two_gap(information), "normalized_mutual_information": information.tolist()}


def dci_metric(truth: GroundTruth, seed: int = 0, num_train: int = 10_000, num_test: int = 5_000) -> dict[str, Any]:
    rng = np.random.RandomState(seed)
    (codes, factors), (test_codes, test_factors) = truth.sample(num_train, rng), truth.sample(num_test, rng)
    importance, informativeness = dci_importance(codes, factors, test_codes, test_factors, seed)
    disentanglement, completeness = dci_scores(importance)
    return {"disentanglement": disentanglement, "completeness": completeness, "informativeness": informativeness,
            "importance": importance.tolist()}


def sap_metric(truth: GroundTruth, seed: int = 0, num_train: int = 10_000, num_test: int = 5_000) -> dict[str, Any]:
    rng = np.random.RandomState(seed)
    (codes, factors), (test_codes, test_factors) = truth.sample(num_train, rng), truth.sample(num_test, rng)
    scores = sap_matrix(codes, factors, test_codes, test_factors)
    return {"sap": top_two_gap(scores), "score_matrix": scores.tolist()}


METRICS: dict[str, Callable[..., dict[str, Any]]] = {
    "beta_vae": beta_vae_metric, "factor_vae": factor_vae_metric, "mig": mig_metric, "dci": dci_metric,
    "sap": sap_metric}


def headline(details: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The one number of each metric (DCI gives three)."""
    scores = {"beta_vae": details["beta_vae"]["eval_accuracy"], "factor_vae": details["factor_vae"]["eval_accuracy"],
              "mig": details["mig"]["mig"], "sap": details["sap"]["sap"]}
    scores.update({f"dci_{part}": details["dci"][part] for part in ("disentanglement", "completeness",
                                                                    "informativeness")})
    return scores


def evaluate_all(truth: GroundTruth, seed: int = 0, log: Callable[[str], None] = lambda line: None,
                 **sizes: dict[str, Any]) -> dict[str, Any]:
    """Every metric with its own RandomState(seed); `sizes` may override a metric's sample sizes by name."""
    details, seconds = {}, {}
    for name, metric in METRICS.items():
        start = time.perf_counter()
        details[name] = metric(truth, seed, **sizes.get(name, {}))
        seconds[name] = round(time.perf_counter() - start, 1)
        log(f"{name}: {seconds[name]} s")
    return {"scores": headline(details), "details": details, "seconds": seconds, "seed": seed,
            "factors": list(truth.names)}
