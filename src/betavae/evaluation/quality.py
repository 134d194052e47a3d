"""Quality of samples and of representations, from feature vectors: Fréchet distance, classifier score, precision and
recall on k-NN manifolds, class histograms, and linear / k-NN probes of posterior means."""

from __future__ import annotations

import numpy as np
import torch


def frechet_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between Gaussians fitted to two feature sets.

    tr (C_a C_b)^(1/2) is the sum of the square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2), a symmetric PSD
    matrix, so symmetric eigendecompositions compute it exactly even when a covariance is singular (features that are
    always zero), where a general matrix square root warns and loses accuracy."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    trace_root = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)


def classifier_score(probabilities: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when each image is confidently one class and all classes appear."""
    p = probabilities.double().clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))


def class_histogram(probabilities: torch.Tensor) -> list[int]:
    """How many images the classifier assigns to each class."""
    return torch.bincount(probabilities.argmax(1), minlength=probabilities.shape[1]).tolist()


def _kth_neighbour_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    radii = []
    for block in x.split(chunk):
        distances = torch.cdist(block, x)
        radii.append(distances.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself, at distance 0
    return torch.cat(radii)


def _fraction_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    inside = [(torch.cdist(block, centres) <= radii[None]).any(1) for block in points.split(chunk)]
    return float(torch.cat(inside).float().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. (2019): precision = share of fake points inside the real k-NN manifold, recall = share of
    real points inside the fake one."""
    real, fake = real.double(), fake.double()
    precision = _fraction_inside(fake, real, _kth_neighbour_radius(real, k))
    recall = _fraction_inside(real, fake, _kth_neighbour_radius(fake, k))
    return precision, recall


def linear_probe(train_x, train_y, test_x, test_y, seed: int = 0) -> float:
    """Test accuracy of a logistic regression fitted on standardised training features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(np.asarray(train_x), np.asarray(train_y))
    return float(model.score(np.asarray(test_x), np.asarray(test_y)))


def knn_probe(train_x, train_y, test_x, test_y, k: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbour classifier (Euclidean) on the features."""
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(n_neighbors=k).fit(np.asarray(train_x), np.asarray(train_y))
    return float(model.score(np.asarray(test_x), np.asarray(test_y)))
