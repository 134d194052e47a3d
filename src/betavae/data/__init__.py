"""Data: the registry of data sets by name (registry), where files come from (sources), the IDX format (idx), the
user's own images (images), dSprites rendered from its factors (dsprites), bit-packed binary images (packed), and
splits as tensors (dataset)."""

from .dataset import (Data, Split, as_float, batch_indices, binarize, fingerprint, prepare, split_fingerprint,
                      split_raw)
from .packed import PackedImages
from .pairs import FactorPairs
from .registry import factor_pairs, fetch, load, load_split, lookup

__all__ = ["Data", "FactorPairs", "PackedImages", "Split", "as_float", "batch_indices", "binarize", "factor_pairs", "fetch", "fingerprint", "load",
           "load_split", "lookup", "prepare", "split_fingerprint", "split_raw"]
