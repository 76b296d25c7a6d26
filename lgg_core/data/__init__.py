"""Data: the ``kaggle_3m`` reader and its validation, the decoded cache, patient-level splits, transforms, uploads.

Imports only numpy-level libraries except :mod:`~lgg_core.data.dataset` and :mod:`~lgg_core.data.transforms` (torch).
May import nothing else from ``lgg_core``.
"""
from lgg_core._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DATA_DIR_ENV": "reader",
    "DatasetError": "reader",
    "find_root": "reader",
    "read_image": "reader",
    "read_mask": "reader",
    "read_metadata": "reader",
    "scan": "reader",
    "LGGData": "cache",
    "load_dataset": "cache",
    "fold_roles": "splits",
    "load_split": "splits",
    "make_folds": "splits",
    "save_split": "splits",
    "SliceDataset": "dataset",
    "BalancedSampler": "dataset",
    "download_dataset": "download",
    "UploadError": "upload",
    "read_upload": "upload",
    "read_mask_upload": "upload",
})
