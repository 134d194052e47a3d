"""Data: sources (where files come from), idx (the file format), images (user data), dsprites (rendered from its
factors), dataset (tensors, splits)."""

from .dataset import Data, Split, as_float, batch_indices, binarize, load, load_raw, prepare, split_raw

__all__ = ["Data", "Split", "as_float", "batch_indices", "binarize", "load", "load_raw", "prepare", "split_raw"]
