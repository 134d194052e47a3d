"""Data: sources (where files come from), idx (the file format), images (user data), dataset (tensors, splits)."""

from .dataset import Data, Split, batch_indices, binarize, load, load_raw, prepare, split_raw

__all__ = ["Data", "Split", "batch_indices", "binarize", "load", "load_raw", "prepare", "split_raw"]
