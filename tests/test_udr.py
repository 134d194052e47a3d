"""UDR: models that agree up to permutation and sign score high, entangled or unrelated ones low; `betavae select`
ranks finished runs of one data set and refuses anything else in one line."""

import json
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr

import betavae
from betavae import cli
from betavae.errors import BetaVAEError
from betavae.evaluation.udr import (RESULT, VARIANTS, format_table, lasso_matrix, relative_strength, select,
                                    spearman_matrix, standardized, udr)
from betavae.training import folder

from .conftest import synthetic_images

N, D = 2000, 4
KL = np.ones(D)
PERMUTATIONS = ([0, 1, 2, 3], [2, 0, 3, 1], [1, 3, 0, 2])
SIGNS = ([1, 1, 1, 1], [-1, 1, -1, 1], [1, -1, -1, -1])


def factors(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(N, D))


def rotation(seed: int) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(D, D)))[0]


def scores(tables, variant, kl=None, **options) -> np.ndarray:
    return udr(tables, [KL if kl is None else kl] * len(tables), variant, **options).scores


# --- the metric on code tables -------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_permuted_and_sign_flipped_copies_score_as_identical_ones(variant):
    f = factors()
    identical = scores([f, f, f], variant)
    flipped = scores([f[:, p] * s for p, s in zip(PERMUTATIONS, SIGNS)], variant)
    assert identical.min() > (0.85 if variant == "lasso" else 0.9)  # Lasso's shrinkage (alpha 0.1) caps it at 0.9
    np.testing.assert_allclose(flipped, identical, atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
def test_rotated_models_score_lower_and_independent_ones_near_zero(variant):
    f = factors()
    aligned = scores([f, f, f], variant).min()
    rotated = scores([f @ rotation(seed) for seed in (1, 2, 3)], variant)
    noise = scores([factors(seed) for seed in (4, 5, 6)], variant)
    assert rotated.max() < 0.6 * aligned
    assert noise.max() < 0.05


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_entangled_model_ranks_last(variant):
    f = factors()
    result = scores([f @ rotation(1), f, f[:, PERMUTATIONS[1]] * SIGNS[1]], variant)
    assert np.argmin(result) == 0 and result[0] < result[1:].min() - 0.2


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_kl_threshold_drops_uninformative_latents(variant):
    f, rng = factors(), np.random.default_rng(7)
    clean = [f[:, p] for p in PERMUTATIONS]
    padded = [np.hstack([table, 0.01 * rng.normal(size=(N, 3))]) for table in clean]
    kl = np.array([1.0] * D + [0.001] * 3)
    dropped = scores(padded, variant, kl)
    np.testing.assert_allclose(dropped, scores(clean, variant), atol=1e-9)
    kept = scores(padded, variant, kl, threshold=0.0)  # the near-constant latents, standardized, count as noise
    assert kept.max() < dropped.min() - 0.1


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_model_without_informative_latents_scores_zero(variant):
    f = factors()
    ranking = udr([f, f, f], [KL, KL, np.zeros(D)], variant)
    assert ranking.scores[2] == 0 and ranking.pairwise[0, 2] == 0 and ranking.pairwise[2, 0] == 0
    assert ranking.scores[0] > 0.4  # the median of a perfect match and nothing


def test_a_models_lasso_score_regresses_its_latents_on_the_others():
    f, rng = factors(), np.random.default_rng(3)
    a, b = f[:, :2], np.stack([f[:, 0], f[:, 0] + 0.1 * rng.normal(size=N)], axis=1)  # b repeats one of a's latents
    result = scores([a, b], "lasso", np.ones(2))
    b_on_a = relative_strength(lasso_matrix(standardized(a), standardized(b)))
    assert result[1] == pytest.approx(b_on_a) and abs(result[0] - result[1]) > 0.05  # as disentanglement_lib


def test_relative_strength_of_hand_made_matrices():
    assert relative_strength(np.eye(3)) == pytest.approx(1.0)
    assert relative_strength(np.ones((3, 3))) == pytest.approx(1 / 3)
    assert relative_strength(np.array([[1.0, 1, 0], [1, 1, 0], [0, 0, 1]])) == pytest.approx(2 / 3)
    assert relative_strength(np.zeros((3, 3))) == 0 and relative_strength(np.zeros((0, 3))) == 0


def test_spearman_matrix_is_scipys_with_ties_and_a_constant_latent():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, size=(300, 3)).astype(float), rng.integers(0, 4, size=(300, 2)).astype(float)
    expected = np.abs(spearmanr(a, b).statistic[:3, 3:])
    np.testing.assert_allclose(spearman_matrix(a, b), expected, atol=1e-12)
    a[:, 1] = 2.0
    assert np.all(spearman_matrix(a, b)[1] == 0)


def test_lasso_matrix_rows_are_the_regressors():
    a = factors()
    matrix = lasso_matrix(a, a[:, [2]] * 0.5)
    assert matrix.shape == (D, 1) and matrix[2, 0] > 0.1 and matrix.sum() == matrix[2, 0]


@pytest.mark.parametrize("tables, kls, message", [
    ([np.zeros((5, 2))], [np.ones(2)], "at least 2"),
    ([np.zeros((5, 2)), np.zeros((6, 2))], [np.ones(2)] * 2, "different numbers of images"),
    ([np.zeros((5, 2)), np.zeros((5, 2))], [np.ones(2), np.ones(3)], "3 KL values"),
])
def test_tables_that_cannot_be_compared_are_refused(tables, kls, message):
    with pytest.raises(BetaVAEError, match=message):
        udr(tables, kls)
    with pytest.raises(BetaVAEError, match="unknown UDR variant 'pearson'"):
        udr([np.zeros((5, 2))] * 2, [np.ones(2)] * 2, "pearson")


# --- betavae select ------------------------------------------------------------------------------------------------
SETTINGS = {"hidden": "16", "latent_dim": "3", "batch_size": "32", "epochs": "1", "val_size": "40"}


def write_npz(path, size=(12, 12)):
    x, y = synthetic_images(200, size)
    np.savez(path, images=x, labels=y)
    return path


def tiny_run(npz, path, seed=0):
    config = betavae.resolve(overrides={"dataset": str(npz), "seed": str(seed), **SETTINGS})
    return betavae.train(config, path, figures=False, report=False, progress=False, log=lambda line: None)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("betavae: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_select_ranks_runs_and_writes_each_its_score(tmp_path, capsys):
    npz = write_npz(tmp_path / "d.npz")
    runs = [str(tiny_run(npz, tmp_path / f"seed-{seed}", seed)) for seed in (0, 1, 2)]
    assert cli.main(["select", *runs, "--variant", "spearman"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.lstrip()[:1].isdigit()]
    assert "UDR (spearman) on 40 val images" in out and len(rows) == 3 and all("/seed-" in row for row in rows)
    records = [json.loads((tmp_path / f"seed-{seed}" / RESULT).read_text()) for seed in (0, 1, 2)]
    assert sorted(r["rank"] for r in records) == [1, 2, 3] and {r["variant"] for r in records} == {"spearman"}
    for record, run in zip(records, runs):
        assert set(record["against"]) == set(runs) - {run} and record["of"] == 3
        assert record["udr"] == pytest.approx(np.median(list(record["against"].values())))
    best = min(records, key=lambda r: r["rank"])
    assert out.splitlines()[-1].startswith(f"best: {best['run']}")
    assert best["udr"] == max(r["udr"] for r in records)


def test_select_refuses_what_it_cannot_compare_in_one_line(tmp_path, capsys):
    npz = write_npz(tmp_path / "d.npz")
    a, b = (str(tiny_run(npz, tmp_path / name)) for name in ("a", "b"))
    other = str(tiny_run(write_npz(tmp_path / "other.npz"), tmp_path / "other"))
    write_npz(npz, (8, 8))  # the same data set's images, now of another size
    small = str(tiny_run(npz, tmp_path / "small"))
    shutil.copytree(tmp_path / "a", tmp_path / "a-copy")  # a copied run would agree with itself perfectly
    cases = [([a], "give at least 2 finished runs (got 1)"), ([a, a], "is given twice"),
             ([a, str(tmp_path / "a-copy")], "is a copy of"),
             ([a, other], "was trained on"), ([a, small], "images of shape (1, 8, 8)")]
    for runs, message in cases:
        assert cli.main(["select", *runs]) == 1
        assert message in one_line_error(capsys)
    folder.write_status(tmp_path / "b", "interrupted", 0, 1)
    assert cli.main(["select", a, b]) == 1
    assert "is interrupted" in one_line_error(capsys)
    assert not (tmp_path / "a" / RESULT).exists()
    with pytest.raises(BetaVAEError, match="unknown UDR variant"):
        select([a, b], variant="pearson")


def test_the_table_says_when_the_best_is_tied():
    records = [{"run": name, "udr": score, "rank": rank, "informative_latents": [0], "latent_dim": 3}
               for rank, (name, score) in enumerate([("a", 0.5), ("b", 0.5), ("c", 0.2)], start=1)]
    result = {"variant": "lasso", "images": 40, "split": "val", "dataset": "d", "seed": 0, "kl_threshold": 0.01,
              "ranking": records, "best": "a"}
    assert format_table(result).splitlines()[-1].startswith("best: a (tied with b);")
    records[1]["udr"] = 0.4
    assert format_table(result).splitlines()[-1].startswith("best: a;")


def test_codes_with_nan_are_one_line():
    from betavae.errors import BetaVAEError
    from betavae.evaluation import udr as udr_module
    with pytest.raises(BetaVAEError, match="model 0: its codes or KL values hold NaN or infinity"):
        udr_module.udr([np.full((10, 2), np.nan), np.ones((10, 2))], np.ones((2, 2)))
