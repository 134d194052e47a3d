"""`betavae disentanglement RUN`: the grid's codes, the metrics, disentanglement.json, figures, clear refusals."""

import json

import numpy as np
import pytest
import torch

from betavae import runs
from betavae.api import disentangle
from betavae.config import Config
from betavae.data import Data, PackedImages, Split, dsprites
from betavae.errors import BetaVAEError
from betavae.evaluation import factors
from betavae.pictures.run_figures import factor_labels
from betavae.runs import Run
from betavae.training import fit

SMALL = dict(beta_vae=dict(num_train=200, num_eval=100), factor_vae=dict(num_train=200, num_eval=100,
             num_variance_estimate=1000), mig=dict(num_train=2000), dci=dict(num_train=300, num_test=100),
             sap=dict(num_train=300, num_test=100))


def tiny_dsprites(n: int = 96) -> Data:
    index = np.random.default_rng(0).choice(dsprites.N_IMAGES, 3 * n, replace=False)
    images = dsprites.render(dsprites.index_to_factors(index)).bool()
    shapes = torch.from_numpy(dsprites.index_to_factors(index)[:, 0])
    part = lambda a, b: Split(images[a:b], shapes[a:b])  # noqa: E731
    return Data("dsprites", part(0, n), part(n, 2 * n), part(2 * n, 3 * n))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = Config.of(dataset="dsprites", pixels="binary", hidden=(16,), latent_dim=6, batch_size=32, epochs=1)
    return fit(config, tmp_path_factory.mktemp("runs") / "d", data=tiny_dsprites(), log=lambda line: None)


def test_grid_codes_are_the_posterior_means_in_index_order(run):
    model = runs.load(run)
    levels = dsprites.index_to_factors(np.arange(100, 140))
    images = dsprites.render(levels)
    packed = np.packbits(images.flatten(1).numpy().astype(np.uint8), axis=1)
    codes = factors.grid_codes(model, PackedImages(packed, (1, 64, 64)), batch_size=16)
    assert codes.shape == (40, 6)
    assert np.allclose(codes, model.encode(images)[0].detach().double().numpy(), atol=1e-5)


def test_disentanglement_of_a_run_writes_its_scores_and_figures(run, monkeypatch):
    # Codes that carry pos_x and pos_y in their own latents and nothing else: the metrics must see that.
    grid = dsprites.index_to_factors(np.arange(dsprites.N_IMAGES))
    fake = np.zeros((dsprites.N_IMAGES, 6))
    fake[:, 1], fake[:, 4] = grid[:, 3], grid[:, 4]
    fake[:, [0, 2, 3, 5]] = np.random.default_rng(0).normal(scale=0.01, size=(dsprites.N_IMAGES, 4))
    monkeypatch.setattr(factors, "grid_codes", lambda model, packed: fake)
    monkeypatch.setattr(dsprites, "packed_images", lambda data_dir, log=None: np.zeros((1, 512), np.uint8))
    result = disentangle(run, sizes=SMALL, log=lambda line: None)
    stored = json.loads((run / factors.RESULT).read_text())
    assert stored["scores"] == result["scores"]
    information = np.array(stored["details"]["mig"]["normalized_mutual_information"])
    assert information.shape == (6, 5)
    assert information[1, 3] > 0.8 and information[4, 4] > 0.8  # pos_x in z1, pos_y in z4
    assert 0.25 < result["scores"]["mig"] < 0.45  # two of five factors captured (20 bins cap each near 0.9)
    assert (run / "figures" / "mutual_information.png").stat().st_size > 1000
    assert (run / "figures" / "traversal_factors.png").stat().st_size > 1000
    table = factors.format_table(result)
    assert "MIG" in table and "SAP" in table and "DCI informativeness" in table
    assert factor_labels(information, dsprites.FACTORS)[1].startswith("pos_x")


def test_the_report_shows_the_scores_when_there_are_any(run, monkeypatch):
    from betavae.pictures.report import write_report

    (run / factors.RESULT).unlink(missing_ok=True)
    assert "<h2>Disentanglement</h2>" not in write_report(Run.open(run, data=tiny_dsprites())).read_text()
    scores = {"scores": {"mig": 0.123456, "sap": 0.05}}
    (run / factors.RESULT).write_text(json.dumps(scores))
    page = write_report(Run.open(run, data=tiny_dsprites())).read_text()
    assert "<h2>Disentanglement</h2>" in page and "0.123" in page


def test_runs_without_ground_truth_factors_are_refused(tmp_path, data):
    mnist_run = fit(Config.of(hidden=(8,), latent_dim=2, epochs=1), tmp_path / "m", data=data, log=lambda line: None)
    with pytest.raises(BetaVAEError, match="no ground-truth factors"):
        disentangle(mnist_run)
