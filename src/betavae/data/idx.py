"""The IDX file format of MNIST and Fashion-MNIST: parse it, and say clearly when a file is corrupt or truncated."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import BetaVAEError

_UBYTE = 0x08


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes (gzipped or not) into a uint8 array, checking the header against the payload size."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise BetaVAEError(f"{source} is a corrupt or truncated gzip file ({error}); delete it and fetch it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise BetaVAEError(f"{source} is not an IDX file (bad magic number); check that it is an MNIST-style file")
    if data[2] != _UBYTE:
        raise BetaVAEError(f"{source} holds IDX type 0x{data[2]:02x}, only unsigned bytes (0x08) are supported")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise BetaVAEError(f"{source} has a truncated IDX header; delete it and fetch it again")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    payload = len(data) - header
    if payload != expected:
        what = "truncated" if payload < expected else "longer than its header says"
        raise BetaVAEError(f"{source} is {what} ({payload} bytes of data for shape {shape}); delete it and fetch it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file from disk (gzipped or not)."""
    path = Path(path)
    try:
        return parse_idx(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise BetaVAEError(f"{path} does not exist; check the path") from None


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (used to write test fixtures and exports)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()
