import pytest

from betavae import config
from betavae.config import preset, resolve
from betavae.errors import BetaVAEError

from .conftest import within


@pytest.mark.parametrize("bad, message", [
    (dict(beta=-1), "beta must be a number from 0 to 1e\\+06"),
    (dict(latent_dim=0), "latent_dim must be from 1 to 4096"),
    (dict(latent_map_size=0), "latent_map_size must be from 2 to 1e\\+07"),
    (dict(latent_map_size=1), "latent_map_size must be from 2 to 1e\\+07"),
    (dict(objective="btcvae", batch_size=1), "the btcvae objective estimates its penalty across the batch"),
    (dict(objective="dipvae", batch_size=1), "needs --batch-size 2 at least"),
    (dict(objective="factorvae", batch_size=1), "needs --batch-size 2 at least"),
    (dict(arch="resnet"), "unknown arch 'resnet'"),
    (dict(activation="tanh"), "unknown activation 'tanh'; choose one of: relu, silu"),
    (dict(lr=0), "lr must be a number above 0 and at most 10"),
    (dict(lr=1e300), "lr must be a number above 0 and at most 10, got 1e\\+300"),
    (dict(batch_size=0), "batch_size must be from 1"),
    (dict(beta=float("nan")), "beta must be a number from 0 to 1e\\+06"),
    (dict(hidden=()), "hidden must list"),
    (dict(dataset="nonsense"), "dataset 'nonsense'"),
    (dict(cuda_graphs="flase"), "cuda_graphs got 'flase', which is not a valid boolean"),
    (dict(cuda_graphs="maybe"), "fix --cuda-graphs"),
    (dict(latent_dim=9223372036854775807), "latent_dim must be from 1 to 4096"),
    (dict(seed=2**63), "seed must be from 0 to 4.29497e\\+09"),
    (dict(threads=10**9), "threads must be from 0 to 1024"),
    (dict(hidden=(2**40,)), "hidden must list layer sizes from 1 to 65536"),
    (dict(objective="factorvae", beta=4), "the factorvae objective has no setting beta"),
])
def test_invalid_values_are_refused(bad, message):
    with pytest.raises(BetaVAEError, match=message):
        config.from_dict(bad)


@pytest.mark.parametrize("text, value", [("true", True), ("Yes", True), ("1", True), ("on", True),
                                         ("false", False), ("no", False), ("0", False), ("OFF", False)])
def test_booleans_are_strict(text, value):
    assert config.from_dict({"cuda_graphs": text}).cuda_graphs is value


def test_presets():
    assert preset("description").settings["beta"] == 1 and preset("description").batch_size == 256
    assert preset("description").epochs == 100
    assert preset("vae").settings["beta"] == 1
    assert preset("betavae").settings["beta"] > 1
    with pytest.raises(BetaVAEError, match="unknown preset"):
        preset("nope")


def test_overrides_are_coerced_from_strings():
    c = resolve("vae", overrides={"beta": "2.5", "hidden": "512,256", "epochs": "3", "data_dir": "x"})
    assert (c.settings["beta"], c.hidden, c.epochs, c.data_dir) == (2.5, (512, 256), 3, "x")
    with pytest.raises(BetaVAEError, match="epochs got '2.5'"):
        resolve(overrides={"epochs": "2.5"})
    with pytest.raises(BetaVAEError, match="unknown configuration key"):
        resolve(overrides={"bta": 1})


def test_toml_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('beta = 8\nhidden = [256, 128]\n')
    c = resolve("vae", path, {"epochs": 2})
    assert (c.settings["beta"], c.hidden, c.epochs) == (8.0, (256, 128), 2)
    path.write_text("beta = [")
    with pytest.raises(BetaVAEError, match="not valid TOML"):
        config.load_file(path)
    with pytest.raises(BetaVAEError, match="does not exist"):
        config.load_file(tmp_path / "missing.toml")


def test_round_trip_through_dict():
    c = preset("conv").replace(beta=2.0)
    assert config.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("text, message", [
    ("latent_dim = true", "latent_dim got True, which is not a valid integer"),
    ("lr = false", "lr got False, which is not a valid number"),
    ("hidden = true", "hidden got True, which is not a valid list of integers"),
    ("hidden = [true]", "hidden got \\[True\\]"),
    ("dataset = 3", "dataset got 3, which is not a valid string"),
    ("epochs = 2.5", "epochs got 2.5"),
    ('lr = "0.001"', "lr got '0.001', which is not a valid number; fix the file"),
    ('hidden = "16,32"', "hidden got '16,32', which is not a valid list of integers"),
    ('cuda_graphs = "no"', "cuda_graphs got 'no'"),
    ('beta = "4"', "beta got '4'"),
])
def test_toml_values_of_the_wrong_type_are_refused_not_coerced(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(BetaVAEError, match=message):
        config.load_file(path)


def test_text_stays_text_in_a_config_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('dataset = "fashion-mnist"\ndata_dir = "/data"\nobjective = "beta"\n')
    c = config.load_file(path)
    assert (c.dataset, c.data_dir, c.objective) == ("fashion-mnist", "/data", "beta")


def test_a_config_file_is_read_only_up_to_a_bound(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# " + "x" * (config.MAX_CONFIG_BYTES + 10))
    with pytest.raises(BetaVAEError, match="is over 1 MB"):
        config.load_file(path)


def test_a_new_objective_starts_from_its_papers_settings():
    """--preset dsprites --objective factorvae trains with Kim and Mnih's gamma = 35, not a shared default."""
    c = resolve("dsprites", overrides={"objective": "factorvae"})
    assert c.settings == {"gamma": 35.0, "discriminator_lr": 1e-4} and c.to_dict()["factorvae"]["gamma"] == 35.0
    assert resolve("dsprites", overrides={"objective": "btcvae"}).settings["beta"] == 6.0
    assert resolve("dsprites", overrides={"objective": "factorvae", "gamma": "50"}).settings["gamma"] == 50.0


def test_toml_takes_settings_flat_or_as_the_objectives_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('objective = "dipvae"\n[dipvae]\nlambda_od = 2\n')
    assert config.load_file(path).settings == {"type": "i", "lambda_od": 2.0, "lambda_d_factor": 10.0}
    path.write_text('[train]\nobjective = "capacity"\ngamma = 50\n')
    assert config.load_file(path).settings["gamma"] == 50.0


def test_a_toml_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufefflatent_dim = 3\n".encode("utf-8"))
    assert config.load_file(path).latent_dim == 3


def test_an_objectives_table_is_read_for_the_objective_an_option_chooses(tmp_path):
    """A [dipvae] table with --objective dipvae is that objective's settings, not an unknown key; a table of an
    objective nobody chose says how to choose it."""
    path = tmp_path / "c.toml"
    path.write_text("[dipvae]\nlambda_od = 2\n")
    chosen = resolve(None, path, {"objective": "dipvae"})
    assert chosen.objective == "dipvae" and chosen.settings["lambda_od"] == 2.0
    message = r"a \[dipvae\] table holds the dipvae objective's settings, but the objective is beta: choose it with"
    with pytest.raises(BetaVAEError, match=message):
        resolve(None, path, {})


@pytest.mark.parametrize("objective, flat, expected", [
    ("beta", dict(beta=2.0, gamma=1000.0, tc_weight=6.0), {"beta": 2.0, "beta_warmup_steps": 0, "beta_start": 0.0}),
    ("capacity", dict(beta=4.0, gamma=100.0, capacity_max=20.0), {"gamma": 100.0, "capacity_max": 20.0}),
    ("btcvae", dict(beta=4.0, mi_weight=0.5, tc_weight=6.0, dimwise_weight=2.0, tc_estimator="mws"),
     {"alpha": 0.5, "beta": 6.0, "gamma": 2.0, "estimator": "mws"}),
    ("factorvae", dict(beta=4.0, tc_weight=35.0, discriminator_lr=1e-3), {"gamma": 35.0, "discriminator_lr": 1e-3}),
    ("dipvae", dict(dip_type="ii", dip_offdiagonal=5.0, dip_diagonal=5.0),
     {"type": "ii", "lambda_od": 5.0, "lambda_d_factor": 1.0}),
    ("adagvae", dict(beta=2.0, tc_weight=6.0), {"beta": 2.0}),
])
def test_old_run_configs_with_flat_fields_map_to_the_objectives_settings(objective, flat, expected):
    c = config.from_saved({"objective": objective, "lr": 0.01, **flat}, 1)
    assert c.objective == objective and c.lr == 0.01
    assert expected.items() <= c.settings.items()


def test_the_disentangle_recipe_is_ada_gvae_with_beta_4():
    """The preset settled on seeds 1-3 (docs/dsprites.md): Ada-GVAE, beta 4, on the dSprites model."""
    config = preset("disentangle")
    assert config.objective == "adagvae" and config.settings["beta"] == 4.0
    assert preset("adagvae").settings["beta"] == 1.0  # the paper's setting stays the adagvae preset's


def test_a_config_path_that_is_not_a_regular_file_is_refused_without_reading(tmp_path):
    """A FIFO (or a folder, or a device) as --config would block or mislead: one line, nothing read."""
    import os
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, "/dev/zero"):
        with within(60), pytest.raises(BetaVAEError, match="not a regular file"):
            config.load_file(path)
