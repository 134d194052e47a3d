"""Data: the registry of data sets by name (registry), where files come from (sources), the IDX format (idx), the
user's own images (images), data sets made from known factors (groundtruth: dSprites rendered from its factors in
dsprites, its colour and noisy variants in dsprites_variants), bit-packed images (packed), uint8 images memory-mapped
and converted per batch (arrays), and splits as tensors (dataset)."""

from .dataset import (Data, Split, as_float, batch_indices, binarize, check_pixels, fingerprint, prepare,
                      split_fingerprint, split_raw)
from .groundtruth import GroundTruthData
from .packed import PackedImages
from .pairs import FactorPairs
from .registry import factor_pairs, fetch, ground_truth, load, load_split, lookup

__all__ = ["Data", "FactorPairs", "GroundTruthData", "PackedImages", "Split", "as_float", "batch_indices", "binarize",
           "check_pixels", "factor_pairs", "fetch", "fingerprint", "ground_truth", "load", "load_split", "lookup",
           "prepare", "split_fingerprint", "split_raw"]
