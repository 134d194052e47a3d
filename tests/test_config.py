import pytest

from betavae import config
from betavae.config import preset, resolve
from betavae.errors import BetaVAEError


@pytest.mark.parametrize("bad, message", [
    (dict(beta=-1), "beta must be at least 0"),
    (dict(latent_dim=0), "latent_dim must be at least 1"),
    (dict(arch="resnet"), "unknown arch 'resnet'"),
    (dict(activation="tanh"), "unknown activation 'tanh'; choose one of: relu, silu"),
    (dict(lr=0), "lr must be a positive"),
    (dict(batch_size=0), "batch_size must be at least 1"),
    (dict(beta=float("nan")), "beta must be at least 0"),
    (dict(hidden=()), "hidden must list"),
    (dict(dataset="nonsense"), "dataset 'nonsense'"),
    (dict(cuda_graphs="flase"), "cuda_graphs got 'flase', which is not a valid boolean"),
    (dict(cuda_graphs="maybe"), "fix --cuda-graphs"),
])
def test_invalid_values_are_refused(bad, message):
    with pytest.raises(BetaVAEError, match=message):
        config.from_dict(bad)


@pytest.mark.parametrize("text, value", [("true", True), ("Yes", True), ("1", True), ("on", True),
                                         ("false", False), ("no", False), ("0", False), ("OFF", False)])
def test_booleans_are_strict(text, value):
    assert config.from_dict({"cuda_graphs": text}).cuda_graphs is value


def test_presets():
    assert preset("description").beta == 1 and preset("description").batch_size == 256
    assert preset("description").epochs == 100
    assert preset("vae").beta == 1
    assert preset("betavae").beta > 1
    with pytest.raises(BetaVAEError, match="unknown preset"):
        preset("nope")


def test_overrides_are_coerced_from_strings():
    c = resolve("vae", overrides={"beta": "2.5", "hidden": "512,256", "epochs": "3", "data_dir": "x"})
    assert (c.beta, c.hidden, c.epochs, c.data_dir) == (2.5, (512, 256), 3, "x")
    with pytest.raises(BetaVAEError, match="epochs got '2.5'"):
        resolve(overrides={"epochs": "2.5"})
    with pytest.raises(BetaVAEError, match="unknown configuration key"):
        resolve(overrides={"bta": 1})


def test_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('beta = 8\nhidden = [256, 128]\n')
    c = resolve("vae", path, {"epochs": 2})
    assert (c.beta, c.hidden, c.epochs) == (8.0, (256, 128), 2)
    path.write_text("beta = [")
    with pytest.raises(BetaVAEError, match="not valid TOML"):
        config.load_file(path)
    with pytest.raises(BetaVAEError, match="does not exist"):
        config.load_file(tmp_path / "missing.toml")


def test_round_trip_through_dict():
    c = preset("conv").replace(beta=2.0)
    assert config.from_dict(c.to_dict()) == c
