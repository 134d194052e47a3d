"""Data larger than memory and models that fit the image: uint8 images memory-mapped read-only from .npy files (the
cache's format) and converted per batch exactly as the in-memory path converts them, and the conv model chosen by
the image size."""

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from betavae import api
from betavae.config import Config, preset
from betavae.data import arrays, dataset, fingerprint, image_cache, images, registry, split_fingerprint
from betavae.data.arrays import ByteImages, mapping_of
from betavae.data.dataset import Split
from betavae.errors import BetaVAEError
from betavae.model import networks
from betavae.runs import Run


def colour_arrays(folder, n: int = 40, size: int = 8, seed: int = 0) -> np.ndarray:
    """n random colour images (N, H, W, 3) uint8 saved as a folder of .npy arrays, with labels; returns the images."""
    rng = np.random.default_rng(seed)
    pictures = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "train_images.npy", pictures)
    np.save(folder / "train_labels.npy", np.arange(n) % 3)
    return pictures


def mapped_always(monkeypatch) -> None:
    """Every uint8 split stays uint8 (mapped when its file is), however small."""
    monkeypatch.setattr(dataset, "IN_MEMORY_BYTES", -1)


def convolutions(model: networks.VAE) -> int:
    return sum(isinstance(m, torch.nn.Conv2d) for m in model.encoder.modules())


# --- the memory-mapped path gives what the in-memory path gives -----------------------------------------------------
def test_mapped_batches_equal_the_in_memory_ones(tmp_path, monkeypatch):
    colour_arrays(tmp_path / "arrays")
    in_memory = registry.load(str(tmp_path / "arrays"), val_size=6)
    mapped_always(monkeypatch)
    mapped = registry.load(str(tmp_path / "arrays"), val_size=6)
    assert isinstance(in_memory.train.images, torch.Tensor)
    assert isinstance(mapped.train.images, ByteImages) and mapped.train.images.mapped
    assert mapped.image_shape == in_memory.image_shape == (3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    for index in dataset.batch_indices(len(mapped.train), 7, generator):  # shuffled batches, as training reads them
        assert torch.equal(mapped.train.images[index], in_memory.train.images[index])
    for name in ("train", "val", "test"):
        a, b = mapped.split(name), in_memory.split(name)
        assert torch.equal(torch.cat(list(a.images.split(5))), b.images)
        assert torch.equal(a.labels, b.labels) and split_fingerprint(a) == split_fingerprint(b)
    assert torch.equal(mapped.train.mean_image(), in_memory.train.mean_image())
    assert fingerprint(mapped) == fingerprint(in_memory)  # a run's data check does not depend on the storage
    sample_a, sample_b = mapped.train.sample(9, seed=3), in_memory.train.sample(9, seed=3)
    assert sample_a.images.mapped and torch.equal(sample_a.images[:], sample_b.images)
    assert torch.equal(mapped.train.images[4], in_memory.train.images[4])


def test_an_array_changed_in_the_cache_is_rebuilt_not_trained_on(tmp_path):
    """An entry's array replaced by a valid one of the same shape (all black, say) is told from the one betavae wrote
    by its length and modification time, and rebuilt from the user's images, which did not change."""
    pictures = np.random.default_rng(2).integers(0, 256, (12, 10, 10), dtype=np.uint8)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"{i}.png")
    decoded = images.read_folder(folder)
    entry = next((tmp_path / "cache" / "betavae" / "images").iterdir()) if image_cache.cached(folder) else None
    stat = (entry / "train_images.npy").stat()
    np.save(entry / "train_images.npy", np.zeros_like(decoded.train_images))
    os.utime(entry / "train_images.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p would keep it
    said = []
    again = image_cache.cached(folder, log=said.append)
    assert any("was changed after it was written; it will be rebuilt" in line for line in said), said
    assert np.array_equal(again.train_images, decoded.train_images)
    assert image_cache.cached(folder, log=said.append) and len(said) == 1  # rebuilt once, then read as it is
    mine = tmp_path / "mine"  # a link in place of the entry: replaced, and the user's folder it points to untouched
    mine.mkdir()
    (mine / "train_images.npy").write_text("my notes")
    shutil.rmtree(entry)
    entry.symlink_to(mine)
    again = image_cache.cached(folder, log=said.append)
    assert np.array_equal(again.train_images, decoded.train_images) and "is not a folder of its own" in said[-1]
    assert [p.name for p in mine.iterdir()] == ["train_images.npy"] and (mine / "train_images.npy").read_text() == \
        "my notes" and entry.is_dir() and not entry.is_symlink()


def test_the_cache_is_read_memory_mapped_and_gives_the_decoded_images(tmp_path, monkeypatch):
    pictures = np.random.default_rng(1).integers(0, 256, (12, 10, 10, 3), dtype=np.uint8)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"{i}.png")
    decoded = images.read_folder(folder)
    raw = image_cache.cached(folder)  # decoded, written to the cache, read back from it
    again = image_cache.cached(folder)
    for part in ("train_images", "test_images"):
        assert mapping_of(getattr(raw, part)) is not None and mapping_of(getattr(again, part)) is not None
        assert np.array_equal(getattr(again, part), getattr(decoded, part))
    mapped_always(monkeypatch)
    data = registry.load(str(folder), val_size=2)
    assert torch.equal(data.train.images[torch.arange(len(data.train))],
                       torch.from_numpy(decoded.train_images[:-2]).float() / 255)


def test_checksums_of_mapped_arrays_are_the_whole_arrays_checksums(tmp_path):
    pictures = colour_arrays(tmp_path / "arrays", n=30)
    raw = images.read_arrays(tmp_path / "arrays")
    digest = hashlib.sha256()
    for part in ("train_images", "train_labels", "test_images", "test_labels"):
        array = np.ascontiguousarray(getattr(raw, part))
        digest.update(f"{part}{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    assert raw.checksum() == digest.hexdigest()
    blocks = list(arrays.row_chunks(raw.train_images, max_bytes=500))  # blocks of 2 images (192 bytes each)
    assert len(blocks) == 14 and np.array_equal(np.concatenate(blocks), raw.train_images)
    assert np.array_equal(raw.train_images.transpose(0, 2, 3, 1), pictures[:27])  # read channels-last, given first


def test_a_truncated_npy_is_one_line_and_an_incomplete_cache_entry_is_rebuilt(tmp_path):
    colour_arrays(tmp_path / "arrays", n=20)
    whole = (tmp_path / "arrays" / "train_images.npy").read_bytes()
    (tmp_path / "arrays" / "train_images.npy").write_bytes(whole[:-100])
    with pytest.raises(BetaVAEError, match=r"train_images.npy is not a readable .npy array \(mmap length"):
        registry.load(str(tmp_path / "arrays"), val_size=2)
    (tmp_path / "arrays" / "train_images.npy").write_bytes(whole)
    first = image_cache.cached(tmp_path / "arrays", image_size=4)  # resized: cached as a folder of arrays
    entry = next((tmp_path / "cache" / "betavae" / "images").iterdir())
    (entry / "test_labels.npy").unlink()
    notes = []
    again = image_cache.cached(tmp_path / "arrays", image_size=4, log=notes.append)
    assert len(notes) == 1 and "lacks test_labels.npy; it will be rebuilt" in notes[0]
    assert (entry / "test_labels.npy").is_file() and np.array_equal(again.train_images, first.train_images)


def resident_kb(path) -> int:
    """Resident kB of this process's mappings of a file (Linux /proc/self/smaps)."""
    total, current = 0, ""
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            current = fields[-1] if len(fields) > 5 else ""
        elif fields[0] == "Rss:" and current == str(path):
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads Linux's /proc/self/smaps")
def test_mapped_pages_are_handed_back_after_every_read(tmp_path, monkeypatch):
    colour_arrays(tmp_path / "arrays", n=400, size=32)  # 1.2 MB, 3 KB an image
    mapped_always(monkeypatch)
    train = registry.load(str(tmp_path / "arrays"), val_size=10).train.images
    path = (tmp_path / "arrays" / "train_images.npy").resolve()
    batch = train[torch.arange(0, 300, 5)]
    assert batch.shape == (60, 3, 32, 32) and resident_kb(path) == 0
    monkeypatch.setattr(arrays, "release", lambda array: None)  # without the hand-back, the pages stay mapped
    train[torch.arange(0, 300, 5)]
    assert resident_kb(path) >= 60 * 3


# --- read-only: training cannot write into the user's data ----------------------------------------------------------
def test_the_mapped_file_is_opened_read_only(tmp_path, monkeypatch):
    colour_arrays(tmp_path / "arrays", n=24)
    before = (tmp_path / "arrays" / "train_images.npy").read_bytes()
    raw = images.read_arrays(tmp_path / "arrays")
    assert not raw.train_images.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        raw.train_images[0, 0, 0, 0] = 1
    mapped_always(monkeypatch)
    config = Config(dataset=str(tmp_path / "arrays"), arch="conv", hidden=(8,), latent_dim=2, batch_size=8,
                    epochs=1, val_size=4, figure_epochs=(), latent_map_epochs=())
    api.train(config, tmp_path / "run", figures=False, tensorboard_log=False, progress=False, log=lambda line: None)
    assert Run.open(tmp_path / "run").status["state"] == "finished"
    assert (tmp_path / "arrays" / "train_images.npy").read_bytes() == before


# --- models that fit the image --------------------------------------------------------------------------------------
@pytest.mark.parametrize("side, convs", [(28, 2), (32, 2), (64, 4), (128, 5)])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_model_shapes_by_image_size(side, convs, channels):
    model = networks.build(Config(arch="conv", hidden=(16,), latent_dim=4), (channels, side, side))
    assert convolutions(model) == convs
    mean, logvar = model.encode(torch.rand(2, channels, side, side))
    assert mean.shape == logvar.shape == (2, 4)
    assert model.decode(mean).shape == (2, channels, side, side)
    assert model.decode_mean(mean).shape == (2, channels, side, side)


def test_the_size_rule_between_and_beyond_the_common_sizes():
    depth = {side: len(networks.conv_channels((3, side, side))) for side in (4, 45, 46, 90, 91, 96, 200, 256, 512)}
    assert depth == {4: 2, 45: 2, 46: 4, 90: 4, 91: 5, 96: 5, 200: 6, 256: 6, 512: 7}
    assert networks.conv_channels((1, 28, 28)) == (32, 64)  # today's conv model for MNIST
    assert networks.conv_channels((3, 64, 200)) == (32,) * 4  # the shorter side counts
    given = networks.build(Config(arch="conv", hidden=(8,), channels=(4, 4, 4), latent_dim=2), (1, 64, 64))
    assert convolutions(given) == 3  # given channels are kept


def test_images_too_small_for_the_model_are_one_line():
    with pytest.raises(BetaVAEError) as error:
        networks.build(Config(arch="conv", hidden=(8,), latent_dim=2), (3, 3, 3))
    message = str(error.value)
    assert "\n" not in message and "images of 3x3 are too small for 2 stride-2 convolutions" in message
    assert "need 4x4 or larger; give --image-size 4 or more" in message and "--arch mlp" in message


def test_a_128_colour_data_set_builds_five_convolutions_and_trains(tmp_path, monkeypatch):
    colour_arrays(tmp_path / "arrays", n=12, size=128)
    mapped_always(monkeypatch)  # the training loop reads its batches from the mapped file
    assert registry.load(str(tmp_path / "arrays"), val_size=2).train.images.mapped
    config = preset("conv128").replace(dataset=str(tmp_path / "arrays"), image_size=0, hidden=(8,), latent_dim=2,
                                       batch_size=4, val_size=2, epochs=1, figure_epochs=(), latent_map_epochs=())
    run_dir = api.train(config, tmp_path / "run", figures=False, tensorboard_log=False, progress=False,
                        log=lambda line: None)
    run = Run.open(run_dir)
    assert run.image_shape == (3, 128, 128) and convolutions(run.model) == 5
    assert run.status["state"] == "finished" and run.metrics[-1]["step"] == 3  # 9 training images, batch 4
