"""The data cache of a user's images: a folder of image files, or arrays to resize, decoded once into a folder of
.npy arrays (uint8 (N, C, H, W) and labels), read memory-mapped from then on. An entry is named by what it was read
from (`cache_key`: each source file's name, length and modification time, and the size asked for), and keeps the
length, modification time and a content digest of each of its own arrays (entry.json), so that an array changed in
the cache is rebuilt rather than trained on. An entry is a folder of its own: a link in its place is replaced, never
written through."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import BetaVAEError
from . import images, sources
from .images import ARRAY_FILES, Log, say
from .sources import RawData

CACHE_VERSION = 4  # bump when reading or resizing changes, so that cached images are read again
MANIFEST = "entry.json"  # each array's length, modification time and content digest, written last
SAMPLED_ROWS = 4096  # images a large array's digest reads


def cached(path: Path, image_size: int = 0, cache: Path | None = None, log: Log = say) -> RawData:
    """The user's images at `image_size` (0: as stored), decoded once: a folder of image files, or an .npz or a folder
    of arrays to resize, is kept in the data cache under `cache_key` as a folder of .npy arrays and read from it
    memory-mapped, so that changed files or another size never share an entry (a folder of arrays read as stored is
    mapped where it is, and an .npz read as stored is as fast to read as the cache: neither is copied)."""
    read = images.read_arrays if images.is_arrays_folder(path) else \
        images.read_npz if path.suffix == ".npz" else images.read_folder
    if not path.exists() or (read is not images.read_folder and not image_size):
        return read(path, image_size, log)
    target = (cache or sources.cache_dir()) / "images" / cache_key(path, image_size)
    if target.is_symlink() or (target.exists() and not target.is_dir()):  # never read or written through
        log(f"betavae: cache entry {target} is not a folder of its own (a link?); it is replaced by one")
        target.unlink()  # the link itself (or a file) in betavae's own cache, never what it points to
    try:
        return read_cache(target)
    except BetaVAEError as error:
        if target.exists():
            log(f"betavae: {error}")
    raw = read(path, image_size, log)
    try:
        write_cache(raw, target)
    except OSError as error:
        log(f"betavae: could not write the cache {target} ({error}); continuing without it")
        return raw
    return read_cache(target)  # mapped: the decoded copy is freed


def read_cache(folder: Path) -> RawData:
    """A cache entry: every one of ARRAY_FILES, memory-mapped; one that is missing or unreadable is one line (and the
    entry is rebuilt)."""
    missing = [name for name in (*ARRAY_FILES.values(), MANIFEST) if not (folder / name).is_file()]
    if missing:
        raise BetaVAEError(f"cache {folder} lacks {', '.join(missing)}; it will be rebuilt")
    if read_manifest(folder) != stamps(folder):
        raise BetaVAEError(f"cache {folder} was changed after it was written; it will be rebuilt")
    try:
        arrays = {key: images.load_array(folder / name) for key, name in ARRAY_FILES.items()}
        for key in ("images", "test_images"):  # stored (N, C, H, W): read as such, never by the layout rule, which
            array = arrays[key]  # would take 4x4 grey images, (N, 1, 4, 4), for 1x4 RGBA ones
            if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] not in (1, 3) or \
                    array.shape[1:] != arrays["images"].shape[1:]:
                raise BetaVAEError(f"{key} is {array.dtype} of shape {array.shape}, not uint8 (N, C, H, W)")
        train, test = arrays["images"], arrays["test_images"]
        return RawData(train, images.read_labels(arrays, ("labels",), len(train), folder, cache=True),
                       test, images.read_labels(arrays, ("test_labels",), len(test), folder, cache=True))
    except BetaVAEError as error:
        raise BetaVAEError(f"cache {folder} is unreadable ({error}); it will be rebuilt") from None


def write_cache(raw: RawData, folder: Path) -> None:
    """Each array as an .npy file in the entry's folder, each written atomically (an entry lacking one is rebuilt)."""
    (folder / MANIFEST).unlink(missing_ok=True)  # an entry rewritten is unreadable until its manifest is new
    for key, name in ARRAY_FILES.items():
        part = key if key.startswith("test") else f"train_{key}"
        with atomic.atomic_path(folder / name) as tmp, open(tmp, "wb") as stream:
            np.save(stream, getattr(raw, part), allow_pickle=False)
    atomic.write_json(folder / MANIFEST, stamps(folder))


def stamps(folder: Path) -> dict[str, list]:
    """Each array file's length, modification time and a digest of its content, as the entry's manifest keeps them."""
    return {name: stamp(folder / name) for name in ARRAY_FILES.values()}


def stamp(path: Path) -> list:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, content_digest(images.load_array(path))]


def content_digest(array: np.ndarray, whole_below: int = 64 << 20) -> str:
    """sha256 of an array's shape, type and content: all of it up to `whole_below` bytes, else of SAMPLED_ROWS rows
    spread over it (a replaced or zeroed array changes them; reading gigabytes on every start would take minutes)."""
    digest = hashlib.sha256(f"{array.shape} {array.dtype}".encode())
    rows = array if array.nbytes <= whole_below else \
        array[np.unique(np.linspace(0, len(array) - 1, SAMPLED_ROWS).astype(np.int64))]
    digest.update(np.ascontiguousarray(rows).data)
    return digest.hexdigest()


def read_manifest(folder: Path) -> object:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def cache_key(path: Path, image_size: int) -> str:
    """What a read of the user's images depends on: the path, each image file's name, length and modification time,
    and the size asked for (which also names the entry: <digest>-<size>)."""
    path = path.resolve()
    if path.is_file() or images.is_arrays_folder(path):
        files = [path] if path.is_file() else [path / name for name in ARRAY_FILES.values() if (path / name).is_file()]
    else:
        files = [file for _, file in images.image_files(path, lambda line: None)]
    digest = hashlib.sha256(f"v{CACHE_VERSION} {path} {image_size}".encode())
    for file in files:
        stat = file.stat()
        digest.update(f"\n{file} {stat.st_size} {stat.st_mtime_ns}".encode())
    return f"{digest.hexdigest()[:32]}-{image_size or 'stored'}"
