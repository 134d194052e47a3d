"""The ground-truth data sets read from the user's own files (Shapes3D, MPI3D, SmallNORB, Cars3D) and CelebA, each on a
tiny synthetic file in the official format (same keys, dtypes, layout and magic numbers; fewer factor levels)."""

from __future__ import annotations

import gzip
import re
import sys

import numpy as np
import pytest
import torch

from betavae.data import celeba, registry
from betavae.data.cars3d import Cars3D
from betavae.data.dataset import fingerprint
from betavae.data.mpi3d import MPI3D
from betavae.data.official import resize_lanczos
from betavae.data.shapes3d import Shapes3D
from betavae.data.smallnorb import PARTS, SmallNORB
from betavae.errors import BetaVAEError

h5py = pytest.importorskip("h5py")
QUIET = lambda line: None  # noqa: E731


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Caches in a fresh folder, and no $BETAVAE_DATA from the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BETAVAE_DATA", raising=False)


def as_float(images_nhwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images_nhwc)).permute(0, 3, 1, 2).float() / 255


def check_round_trip(truth) -> None:
    index = np.arange(truth.num_images)
    assert np.array_equal(truth.index_of(truth.factors_of(index)), index)


# --- Shapes3D ---------------------------------------------------------------------------------------------------------
SHAPES_SIZES = (2, 2, 2, 2, 2, 3)


def write_shapes3d(folder, sizes=SHAPES_SIZES, shuffle=False, **override):
    """3dshapes.h5 as published: images (N, 64, 64, 3) uint8, labels (N, 6) float64 of factor values, grid order."""
    truth = Shapes3D(sizes)
    factors = truth.factors_of(np.arange(truth.num_images))
    spans = [(0, 1), (0, 1), (0, 1), (0.75, 1.25), (0, 3), (-30, 30)]
    labels = np.stack([np.linspace(low, high, size)[factors[:, k]] for k, ((low, high), size)
                       in enumerate(zip(spans, sizes))], axis=1)
    images = np.random.default_rng(0).integers(0, 256, (truth.num_images, 64, 64, 3), dtype=np.uint8)
    if shuffle:
        labels = labels[np.random.default_rng(1).permutation(len(labels))]
    folder.mkdir(exist_ok=True)
    with h5py.File(folder / "3dshapes.h5", "w") as stored:
        for key, value in {"images": images, "labels": labels, **override}.items():
            stored.create_dataset(key, data=value)
    return truth, images


def test_shapes3d_reads_the_official_layout_lazily(tmp_path):
    truth, images = write_shapes3d(tmp_path / "data")
    grid = truth.grid(str(tmp_path / "data"), QUIET)
    assert grid.shape == (96, 3, 64, 64) and truth.image_shape == (3, 64, 64)
    assert isinstance(grid.source, h5py.Dataset)  # images stay in the file
    pick = torch.tensor([95, 3, 3, 40])
    assert torch.equal(grid[pick], as_float(images[pick.numpy()]))
    check_round_trip(truth)
    factors = np.array([[1, 0, 1, 1, 0, 2]])
    assert torch.equal(truth.images(factors), as_float(images[truth.index_of(factors)]))


@pytest.mark.parametrize("override, message", [
    ({"labels": np.zeros((96, 5))}, "expected 'images' (96, 64, 64, 3) uint8"),
    ({"images": np.zeros((96, 64, 64, 3), np.float32)}, "expected 'images' (96, 64, 64, 3) uint8"),
])
def test_shapes3d_refuses_wrong_shapes(tmp_path, override, message):
    truth, _ = write_shapes3d(tmp_path / "data", **override)
    with pytest.raises(BetaVAEError, match=re.escape(message)):
        truth.grid(str(tmp_path / "data"), QUIET)


def test_shapes3d_refuses_wrong_keys_order_and_damage(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    with h5py.File(folder / "3dshapes.h5", "w") as stored:
        stored.create_dataset("imgs", data=np.zeros((96, 64, 64, 3), np.uint8))
    with pytest.raises(BetaVAEError, match="holds imgs; expected 'images'"):
        Shapes3D(SHAPES_SIZES).grid(str(folder), QUIET)
    truth, _ = write_shapes3d(folder, shuffle=True)
    with pytest.raises(BetaVAEError, match="not in the grid's order"):
        truth.grid(str(folder), QUIET)
    write_shapes3d(folder)
    whole = (folder / "3dshapes.h5").read_bytes()
    (folder / "3dshapes.h5").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(BetaVAEError, match="3dshapes.h5") as error:
        Shapes3D(SHAPES_SIZES).grid(str(folder), QUIET)[torch.arange(96)]
    assert "\n" not in str(error.value)
    with pytest.raises(BetaVAEError, match="does not exist; `betavae fetch shapes3d`"):
        Shapes3D(SHAPES_SIZES).grid(str(tmp_path / "elsewhere"), QUIET)


def test_shapes3d_without_h5py_says_how_to_install_it(tmp_path, monkeypatch):
    write_shapes3d(tmp_path / "data")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(BetaVAEError, match="pip install h5py"):
        Shapes3D(SHAPES_SIZES).grid(str(tmp_path / "data"), QUIET)


def test_fetch_explains_where_files_come_from_and_checks_the_published_checksum(tmp_path):
    with pytest.raises(BetaVAEError) as error:
        registry.fetch("shapes3d", str(tmp_path / "empty"))
    assert "https://storage.googleapis.com/3d-shapes/3dshapes.h5" in str(error.value)
    assert "--data-dir" in str(error.value)
    write_shapes3d(tmp_path / "data")
    with pytest.raises(BetaVAEError, match="has sha256 [0-9a-f]{64}, expected 0a0f6ed9") as error:
        registry.fetch("shapes3d", str(tmp_path / "data"))  # a tiny file is not the official one
    assert "\n" not in str(error.value)


def test_a_tiny_shapes3d_goes_through_the_registry_end_to_end(tmp_path, monkeypatch):
    truth, images = write_shapes3d(tmp_path / "data")
    monkeypatch.setitem(registry.KNOWN, "shapes3d", registry._ground_truth_dataset(truth))
    data = registry.load("shapes3d", str(tmp_path / "data"), val_size=8)
    assert [len(data.train), len(data.val), len(data.test)] == [79, 8, 9]
    assert data.image_shape == (3, 64, 64)
    assert registry.ground_truth("shapes3d", "a test") is truth
    train_index = truth.split_indices(8)["train"]
    assert torch.equal(data.train.images[:5], as_float(images[train_index[:5]]))
    assert torch.equal(data.train.labels, torch.from_numpy(truth.factors_of(train_index)[:, truth.label_factor]))
    assert registry.factor_pairs("shapes3d", 8, "a test").partners(torch.arange(4), torch.Generator()).shape == (4,)
    first = fingerprint(data)
    assert fingerprint(registry.load("shapes3d", str(tmp_path / "data"), val_size=8)) == first
    write_shapes3d(tmp_path / "other", sizes=SHAPES_SIZES)
    with h5py.File(tmp_path / "other" / "3dshapes.h5", "r+") as stored:
        stored["images"][0] = 255 - stored["images"][0]
    changed = registry.load("shapes3d", str(tmp_path / "other"), val_size=8)
    assert fingerprint(changed) != first  # other images, other fingerprint


# --- MPI3D ------------------------------------------------------------------------------------------------------------
MPI_SIZES = (2, 1, 1, 1, 2, 2, 3)


def test_mpi3d_copies_the_npz_once_into_a_memory_mapped_cache(tmp_path):
    truth = MPI3D("toy", MPI_SIZES)
    images = np.random.default_rng(2).integers(0, 256, (truth.num_images, 64, 64, 3), dtype=np.uint8)
    np.savez(tmp_path / "mpi3d_toy.npz", images=images)
    grid = truth.grid(str(tmp_path), QUIET)
    assert isinstance(grid.source, np.memmap) and grid.shape == (24, 3, 64, 64)
    assert torch.equal(grid[torch.arange(24)], as_float(images))
    check_round_trip(truth)
    assert truth.factor_names[-1] == "vertical_axis" and MPI3D("real").num_images == 1_036_800
    again = MPI3D("toy", MPI_SIZES).grid(str(tmp_path), QUIET)
    assert again.source.filename == grid.source.filename  # read from the cache, not copied again


def test_mpi3d_refuses_wrong_keys_shapes_and_truncation(tmp_path):
    truth = MPI3D("real", MPI_SIZES)
    np.savez(tmp_path / "mpi3d_real.npz", imgs=np.zeros((24, 64, 64, 3), np.uint8))
    with pytest.raises(BetaVAEError, match="holds imgs; expected 'images'"):
        truth.grid(str(tmp_path), QUIET)
    np.savez(tmp_path / "mpi3d_real.npz", images=np.zeros((24, 64, 64), np.uint8))
    with pytest.raises(BetaVAEError, match=r"expected \(24, 64, 64, 3\) uint8"):
        MPI3D("real", MPI_SIZES).grid(str(tmp_path), QUIET)
    np.savez(tmp_path / "mpi3d_real.npz", images=np.ones((24, 64, 64, 3), np.uint8))
    whole = (tmp_path / "mpi3d_real.npz").read_bytes()
    (tmp_path / "mpi3d_real.npz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(BetaVAEError, match="mpi3d_real.npz could not be read"):
        MPI3D("real", MPI_SIZES).grid(str(tmp_path), QUIET)
    assert not list((tmp_path / "cache").rglob("*.npy"))  # no half-written cache


# --- SmallNORB --------------------------------------------------------------------------------------------------------
NORB_SIZES = (2, 2, 2, 3, 2)


def matrix(magic: int, array: np.ndarray) -> bytes:
    """NORB's binary matrix format: magic, ndim, max(3, ndim) sizes (int32, little-endian), then the data."""
    sizes = list(array.shape) + [1] * (3 - array.ndim)
    return np.array([magic, array.ndim, *sizes], "<i4").tobytes() + array.tobytes()


def write_norb(folder, damage=None):
    """The two parts: instance 1 in the training files (gzipped, as published), 0 in the testing ones (plain)."""
    truth = SmallNORB(NORB_SIZES)
    rng = np.random.default_rng(3)
    written = np.zeros((truth.num_images, 96, 96), np.uint8)
    folder.mkdir(exist_ok=True)
    for part, instance in zip(PARTS, (1, 0)):
        cells = [(c, instance, e, a, light) for c in range(2) for e in range(2) for a in range(3) for light in range(2)]
        cells = np.array(cells)[rng.permutation(len(cells))]
        pairs = rng.integers(0, 256, (len(cells), 2, 96, 96), dtype=np.uint8)
        written[truth.index_of(cells)] = pairs[:, 0]
        info = np.column_stack([cells[:, 1], cells[:, 2], cells[:, 3] * 2, cells[:, 4]]).astype("<i4")
        files = {"dat": matrix(0x1E3D4C55, pairs), "cat": matrix(0x1E3D4C54, cells[:, 0].astype("<i4")),
                 "info": matrix(0x1E3D4C54, info)}
        for kind, data in files.items():
            if damage and damage[0] == (part, kind):
                data = damage[1](data)
            name = folder / f"smallnorb-{part}-{kind}.mat"
            if part == PARTS[0]:
                (folder / f"{name.name}.gz").write_bytes(gzip.compress(data))
            else:
                name.write_bytes(data)
    return truth, written


def test_smallnorb_places_each_image_by_its_labels(tmp_path):
    truth, written = write_norb(tmp_path)
    grid = truth.grid(str(tmp_path), QUIET)
    assert grid.shape == (48, 1, 64, 64)
    assert torch.equal(grid[torch.arange(48)], as_float(resize_lanczos(written, 64)))  # the first camera, resized
    check_round_trip(truth)
    assert SmallNORB().num_images == 48_600


@pytest.mark.parametrize("damage, message", [
    (((PARTS[1], "dat"), lambda data: b"\x00\x00\x00\x00" + data[4:]), "magic number"),
    (((PARTS[1], "dat"), lambda data: data[:len(data) // 2]), "truncated"),
    (((PARTS[0], "dat"), lambda data: data[:len(data) // 2]), "truncated"),
    (((PARTS[1], "info"), lambda data: data[:20] + np.array([9], "<i4").tobytes() + data[24:]), "labels outside"),
])
def test_smallnorb_refuses_damaged_files(tmp_path, damage, message):
    truth, _ = write_norb(tmp_path, damage)
    with pytest.raises(BetaVAEError, match=message) as error:
        truth.grid(str(tmp_path), QUIET)
    assert "\n" not in str(error.value)


def test_smallnorb_names_a_missing_file(tmp_path):
    write_norb(tmp_path)
    (tmp_path / f"smallnorb-{PARTS[1]}-cat.mat").unlink()
    with pytest.raises(BetaVAEError, match="testing-cat.mat.gz does not exist"):
        SmallNORB(NORB_SIZES).grid(str(tmp_path), QUIET)


# --- Cars3D -----------------------------------------------------------------------------------------------------------
def write_cars(folder, cars=2):
    """One MATLAB v5 file per car, `im` (H, W, 3, 24 azimuths, 4 elevations) uint8."""
    from scipy.io import savemat

    folder.mkdir(exist_ok=True)
    ims = np.random.default_rng(4).integers(0, 256, (cars, 16, 16, 3, 24, 4), dtype=np.uint8)
    for car, im in enumerate(ims):
        savemat(folder / f"car_{car + 1:03d}_mesh.mat", {"im": im})
    return Cars3D((4, 24, cars)), ims


def test_cars3d_reads_each_car_into_its_grid_places(tmp_path):
    truth, ims = write_cars(tmp_path)
    grid = truth.grid(str(tmp_path), QUIET)
    assert grid.shape == (192, 3, 64, 64)
    for elevation, azimuth, car in [(0, 0, 0), (3, 5, 1), (2, 23, 0)]:
        expected = as_float(resize_lanczos(ims[car][None, :, :, :, azimuth, elevation], 64))
        assert torch.equal(truth.images(np.array([[elevation, azimuth, car]])), expected)
    check_round_trip(truth)


def test_cars3d_refuses_wrong_files(tmp_path):
    from scipy.io import savemat

    write_cars(tmp_path, cars=3)
    with pytest.raises(BetaVAEError, match="holds 3 .mat files; expected the 2"):
        Cars3D((4, 24, 2)).grid(str(tmp_path), QUIET)
    savemat(tmp_path / "car_002_mesh.mat", {"image": np.zeros((4, 4, 3, 24, 4), np.uint8)})
    with pytest.raises(BetaVAEError, match="car_002_mesh.mat has no array 'im'"):
        Cars3D((4, 24, 3)).grid(str(tmp_path), QUIET)
    (tmp_path / "car_002_mesh.mat").write_bytes(b"not a MATLAB file at all")
    with pytest.raises(BetaVAEError, match="car_002_mesh.mat is not a readable MATLAB file"):
        Cars3D((4, 24, 3)).grid(str(tmp_path), QUIET)
    assert not list((tmp_path / "cache").rglob("*.npy"))


# --- CelebA -----------------------------------------------------------------------------------------------------------
NAMES = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
         "Blond_Hair "
         "Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones "
         "Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline "
         "Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick "
         "Wearing_Necklace Wearing_Necktie Young").split()


def write_celeba(folder, n=12, lines=None):
    """img_align_celeba/NNNNNN.jpg (178x218) and list_attr_celeba.txt in the official text layout."""
    from PIL import Image

    rng = np.random.default_rng(5)
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    values = rng.choice([-1, 1], (n, 40))
    rows = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / "img_align_celeba" / name)
        rows.append(name + " " + " ".join(f"{v:2d}" for v in values[i]))
    text = [str(n), " ".join(NAMES), *rows] if lines is None else lines([str(n), " ".join(NAMES), *rows])
    (folder / "list_attr_celeba.txt").write_text("\n".join(text) + "\n")
    return values


def test_celeba_is_images_labelled_by_an_attribute(tmp_path):
    from betavae.data.images import fit_to_size, read_image

    values = write_celeba(tmp_path)
    data = registry.load("celeba", str(tmp_path), val_size=2)
    assert [len(data.train), len(data.val), len(data.test)] == [9, 2, 1]
    assert registry.lookup("celeba").truth is None  # labels, not ground-truth factors
    smiling = (values[:, NAMES.index("Smiling")] == 1).astype(np.int64)
    assert torch.equal(torch.cat([data.train.labels, data.val.labels, data.test.labels]), torch.from_numpy(smiling))
    expected = fit_to_size(read_image(tmp_path / "img_align_celeba" / "000011.jpg"), 64)
    assert torch.equal(data.val.images[1], as_float(expected[None])[0])
    attributes = celeba.read_attributes(tmp_path / "list_attr_celeba.txt")
    assert attributes.names == tuple(NAMES) and np.array_equal(attributes.values, values == 1)


@pytest.mark.parametrize("lines, message", [
    (lambda lines: lines[:-1], "lists 11 images but its first line says 12"),
    (lambda lines: lines[:3] + [lines[3].rsplit(" ", 1)[0]] + lines[4:], "line 4 is not a file name and 40 values"),
    (lambda lines: [lines[0], " ".join(NAMES[:39])] + lines[2:], "line of 40 attribute names"),
])
def test_celeba_refuses_a_damaged_attribute_list(tmp_path, lines, message):
    write_celeba(tmp_path, lines=lines)
    with pytest.raises(BetaVAEError, match=message):
        registry.load("celeba", str(tmp_path), val_size=2)


def test_celeba_names_a_missing_image_and_fetch_checks_the_list(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(BetaVAEError, match="000004.jpg is listed in list_attr_celeba.txt but does not exist"):
        registry.load("celeba", str(tmp_path), val_size=2)
    with pytest.raises(BetaVAEError, match="list_attr_celeba.txt has sha256 [0-9a-f]{64}, expected f0e5da28"):
        registry.fetch("celeba", str(tmp_path))
    with pytest.raises(BetaVAEError, match="img_align_celeba, list_attr_celeba.txt not in"):
        registry.fetch("celeba", str(tmp_path / "empty"))


# --- every ground-truth set end to end: trained on, then scored by the five metrics ---------------------------------
def tiny_set(name, folder):
    """The truth of a tiny official-format file of data set `name`, written to folder."""
    if name == "shapes3d":
        return write_shapes3d(folder)[0]
    if name == "mpi3d-toy":
        truth = MPI3D("toy", MPI_SIZES)
        folder.mkdir(exist_ok=True)
        images = np.random.default_rng(2).integers(0, 256, (truth.num_images, 64, 64, 3), dtype=np.uint8)
        np.savez(folder / "mpi3d_toy.npz", images=images)
        return truth
    return write_norb(folder)[0] if name == "smallnorb" else write_cars(folder)[0]


@pytest.mark.parametrize("name", ["shapes3d", "mpi3d-toy", "smallnorb", "cars3d"])
def test_each_ground_truth_set_trains_and_is_scored_by_the_five_metrics(name, tmp_path, monkeypatch):
    from betavae.api import disentangle
    from betavae.config import Config
    from betavae.evaluation import factors
    from betavae.training import fit

    truth = tiny_set(name, tmp_path / "data")
    monkeypatch.setitem(registry.KNOWN, name, registry._ground_truth_dataset(truth))
    config = Config.of(dataset=name, data_dir=str(tmp_path / "data"), val_size=4, hidden=(16,), latent_dim=3,
                       batch_size=8, epochs=1, figure_epochs=(), latent_map_epochs=())
    run = fit(config, tmp_path / "run", log=QUIET)
    small = dict(beta_vae=dict(num_train=20, num_eval=20, batch_size=4),
                 factor_vae=dict(num_train=20, num_eval=20, batch_size=4, num_variance_estimate=40),
                 mig=dict(num_train=40), dci=dict(num_train=40, num_test=20), sap=dict(num_train=40, num_test=20))
    result = disentangle(run, sizes=small, log=QUIET)
    varying = [n for n, size in zip(truth.factor_names, truth.factor_sizes) if size > 1]  # one level: nothing to score
    assert result["factors"] == varying and len(varying) >= 2
    assert all(0.0 <= score <= 1.0 for score in result["scores"].values()), result["scores"]
    assert np.array(result["details"]["mig"]["normalized_mutual_information"]).shape == (3, len(varying))
    assert (run / factors.RESULT).is_file() and (run / "figures" / "traversal_factors.png").is_file()


def test_the_metrics_leave_out_one_level_factors_and_refuse_fewer_than_two_that_vary():
    from betavae.evaluation.factors import looked_up

    truth = MPI3D("toy", MPI_SIZES)  # levels (2, 1, 1, 1, 2, 2, 3): four factors vary
    scored = looked_up(truth, np.arange(truth.num_images, dtype=np.float64)[:, None])
    assert scored.sizes == (2, 2, 2, 3) and scored.names[0] == truth.factor_names[0]
    codes, levels = scored.sample(50, np.random.RandomState(0))
    full = np.zeros((50, 7), dtype=np.int64)
    full[:, [0, 4, 5, 6]] = levels
    assert np.array_equal(codes[:, 0], truth.index_of(full))  # each code is its own image's
    with pytest.raises(BetaVAEError, match="1 factor\\(s\\) of more than one level; .* need at least two"):
        looked_up(MPI3D("toy", (1, 1, 1, 1, 1, 1, 3)), np.zeros((3, 2)))
