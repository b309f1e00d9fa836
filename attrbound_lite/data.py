"""Image data sets as float tensors in [0, 1].

MNIST, Fashion-MNIST, CIFAR-10 and a 5,000-image CIFAR-10 subset.

``load_dataset(name, split)`` returns an ``ImageDataset`` with ``images`` of shape (N, C, H, W), float32 in
[0, 1] (normalisation belongs inside the model, see ``attrbound_lite.models.Normalize``) and ``labels`` of
shape (N,), int64, plus a ``fingerprint`` (md5 of the exact bytes returned) that a checkpoint can record.

MNIST, Fashion-MNIST and CIFAR-10 are read by torchvision's own classes, with torchvision's md5 checks.
Without network, point ``mirror=`` (or ``$ATTRBOUND_DATA_MIRROR``) at a local folder laid out as
torchvision expects::

    <mirror>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <mirror>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <mirror>/cifar-10-python.tar.gz
    <mirror>/cifar10-subset/cifar10_batch_{0,1,2,3,50}.png, cifar10_labels.js

The mirror is only read (it may be read-only): archives are md5-checked and copied into ``root``, where
torchvision extracts them. Nothing is returned silently incomplete: sample counts are checked against the
full split sizes, and MNIST / Fashion-MNIST against the fingerprint of the canonical data.
"""

from __future__ import annotations

import hashlib
import io
import operator
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ._checks import check_flag, check_labels
from ._io import atomic_path, file_digest

__all__ = ["load_dataset", "ImageDataset", "DATASETS", "SPLITS", "DATASET_INFO", "CIFAR10_SUBSET_MD5",
           "default_root", "default_mirror", "fingerprint", "SubsetMissingError", "as_tensors"]

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar10-subset")
SPLITS = ("train", "test")

_CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

DATASET_INFO: dict[str, dict[str, Any]] = {
    "mnist": dict(family="mnist", shape=(1, 28, 28), num_classes=10, sizes={"train": 60000, "test": 10000},
                  classes=["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
                           "7 - seven", "8 - eight", "9 - nine"]),
    "fashion-mnist": dict(family="fashion-mnist", shape=(1, 28, 28), num_classes=10,
                          sizes={"train": 60000, "test": 10000},
                          classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                   "Sneaker", "Bag", "Ankle boot"]),
    "cifar10": dict(family="cifar10", shape=(3, 32, 32), num_classes=10, sizes={"train": 50000, "test": 10000},
                    classes=list(_CIFAR10_CLASSES)),
    "cifar10-subset": dict(family="cifar10", shape=(3, 32, 32), num_classes=10,
                           sizes={"train": 4000, "test": 1000},
                           classes=list(_CIFAR10_CLASSES)),
}
"""Static facts about each data set.

Per data set: ``family`` (whose protocol and architecture it shares: ``attrbound_lite.protocols``),
``shape`` (C, H, W) of one image, ``num_classes``, ``classes`` (names, index = label) and ``sizes``
(samples in the full train / test split).
"""

_TORCHVISION_CLASS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
# the folder torchvision extracts each data set into, under root
_EXTRACTED_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}

# The CIFAR-10 subset is not a torchvision data set: its md5s are listed here (see the data README).
CIFAR10_SUBSET_DIR = "cifar10-subset"
CIFAR10_SUBSET_MD5 = {
    "cifar10_batch_0.png": "22905c3a5cc5e101d06a2b6d6087eff0",
    "cifar10_batch_1.png": "268c70910bb9bd5055b57d0870f26d63",
    "cifar10_batch_2.png": "7276547afd77ffb906d58242360a2534",
    "cifar10_batch_3.png": "7daf46aac2cef4fae955f89c83a9c34f",
    "cifar10_batch_50.png": "fc6b4e3450caf155c495dd8de98e47bf",
    "cifar10_labels.js": "cca178ce60262e7c6f380803befdbeff",
}
_SUBSET_BATCHES = {"train": (0, 1, 2, 3), "test": (50,)}
_SUBSET_LABELS = "cifar10_labels.js"

# ``fingerprint`` of the canonical full splits (from the archives whose md5s torchvision checks). torchvision
# does not checksum the extracted MNIST files, so this catches a damaged extraction that still parses.
_KNOWN_FINGERPRINTS = {
    ("mnist", "train"): "65e3bbc3fa6148d786a74d0e2884e0e1",
    ("mnist", "test"): "8281dd42328a9749b8d38e82a48dccfa",
    ("fashion-mnist", "train"): "6143ce6bc2f232c187fcb24a4fe93272",
    ("fashion-mnist", "test"): "5ba1cb8af53c013fa1eeac8e97828e7d",
    # the subset, whether read from its PNGs or taken from torchvision's CIFAR-10 (the first 4,000 / 1,000)
    ("cifar10-subset", "train"): "57c69951c5e7ff28420c1ba1d3d19914",
    ("cifar10-subset", "test"): "9ff9aba0b41b7fc874e9e5196fb41755",
}


class SubsetMissingError(RuntimeError):
    """The CIFAR-10 subset's files are in neither the root nor the mirror."""

_MIRROR_HINT = ("or set ATTRBOUND_DATA_MIRROR (or pass mirror=, --mirror on the command line) to a local folder laid "
                "out as torchvision expects (<mirror>/MNIST/raw/*.gz, <mirror>/FashionMNIST/raw/*.gz, "
                "<mirror>/cifar-10-python.tar.gz, <mirror>/cifar10-subset/)")


class ImageDataset(Dataset):
    """An in-memory image data set: images (N, C, H, W) float32 in [0, 1] and labels (N,) int64.

    ``name``, ``split`` and ``classes`` (class names, index = label) describe the data; ``indices`` are the
    indices of the full split that were kept (``None``: all of it); ``fingerprint`` is the md5 of the exact
    data (see ``fingerprint()``) and ``source_md5`` maps each source file to its md5.
    ``dataset[i]`` is ``(image (C, H, W), label)``; ``tensors()`` returns ``(images, labels)``.

    Args:
        images: Images of shape (N, C, H, W), float32 in [0, 1].
        labels: Labels of shape (N,), int64.
        name: Data set name (e.g. ``"mnist"``).
        split: ``"train"`` or ``"test"``.
        classes: Class names, index = label.
        indices: Indices (into the full split) of the samples kept; ``None``: the whole split.
        fingerprint: md5 of the data; ``None``: computed from ``images`` and ``labels``.
        source_md5: Map of each source file to its md5; ``None``: empty.

    Raises:
        TypeError: If ``images`` or ``labels`` is not a tensor, or ``classes`` not a list of names.
        ValueError: If ``images`` is not float32 (N, C, H, W), ``labels`` is not int64 (N,) with values in
            [0, len(classes)), ``classes`` is empty, or ``indices`` is not a 1-d integer tensor of N indices.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, name: str, split: str, classes: list[str],
                 indices: torch.Tensor | None = None, fingerprint: str | None = None,
                 source_md5: dict[str, str] | None = None):
        for value, what in ((images, "images"), (labels, "labels")):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{what} must be a torch.Tensor, got {type(value).__name__}; convert with "
                                f"torch.as_tensor({what}).")
        if not isinstance(classes, (list, tuple)):
            raise TypeError(f"classes must be a list of class names, got {type(classes).__name__}.")
        if not classes:
            raise ValueError("classes is empty; pass the class names, index = label (e.g. "
                             "DATASET_INFO['mnist']['classes']).")
        if images.ndim != 4 or images.dtype != torch.float32:
            raise ValueError(f"images must be float32 of shape (N, C, H, W), got {images.dtype} of shape "
                             f"{tuple(images.shape)}.")
        if labels.shape != (images.shape[0],) or labels.dtype != torch.int64:
            raise ValueError(f"labels must be int64 of shape ({images.shape[0]},), got {labels.dtype} of shape "
                             f"{tuple(labels.shape)}.")
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"labels must lie in [0, {len(classes) - 1}] (one per class name; {len(classes)} "
                             f"classes), got values in [{labels.min().item()}, {labels.max().item()}]; pass every "
                             "class name in classes, or fix the labels.")
        if indices is not None:
            if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.dtype == torch.bool \
                    or indices.shape != (images.shape[0],):
                got = (f"{indices.dtype} of shape {tuple(indices.shape)}" if isinstance(indices, torch.Tensor)
                       else type(indices).__name__)
                raise ValueError(f"indices must be None (the whole split) or an integer tensor of shape "
                                 f"({images.shape[0]},), one index into the full split per image kept, got {got}.")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
        if images.numel() and not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
            raise ValueError(f"images must be finite and lie in [0, 1], got values in [{images.min().item():.3g}, "
                             f"{images.max().item():.3g}]; divide 0-255 images by 255.")
        self.images, self.labels = images, labels
        self.name, self.split, self.classes = name, split, list(classes)
        self.indices = indices
        if fingerprint is None:
            fingerprint = _fingerprint((images * 255).round().to(torch.uint8).numpy(), labels.numpy())
        self.fingerprint = fingerprint
        self.source_md5 = dict(source_md5 or {})

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The data as a pair of tensors.

        Returns:
            ``(images, labels)``: images (N, C, H, W) float32 in [0, 1] and labels (N,) int64.
        """
        return self.images, self.labels

    def __repr__(self) -> str:
        kept = "full split" if self.indices is None else "seeded subset"
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)} ({kept}), "
                f"image_shape={tuple(self.images.shape[1:])}, classes={len(self.classes)}, "
                f"fingerprint={self.fingerprint[:12]}...)")


def default_root() -> Path:
    """The folder where data sets are stored and extracted.

    Returns:
        ``$ATTRBOUND_DATA`` if set, else ``$XDG_CACHE_HOME/attrbound/data``, else ``~/.cache/attrbound/data``
        (``~`` expanded; the folder need not exist).
    """
    if os.environ.get("ATTRBOUND_DATA"):
        return Path(os.environ["ATTRBOUND_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "attrbound" / "data"


def default_mirror() -> Path | None:
    """The local mirror folder, from the environment.

    Returns:
        ``$ATTRBOUND_DATA_MIRROR`` as a path (``~`` expanded) if set and non-empty, else ``None``.
    """
    mirror = os.environ.get("ATTRBOUND_DATA_MIRROR")
    return Path(mirror).expanduser() if mirror else None


def fingerprint(images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> str:
    """The md5 fingerprint of a data set's exact contents.

    md5 of ``images`` as uint8 (N, C, H, W) C-order bytes followed by ``labels`` as little-endian int64
    bytes; float images in [0, 1] are first scaled back to 0..255 (exact for data from this module).

    Args:
        images: Images of shape (N, C, H, W): uint8, or floating point (a tensor or a numpy array) in [0, 1].
        labels: Labels of shape (N,) (any integer dtype).

    Returns:
        The md5 as a 32-character hex string.

    Raises:
        TypeError: If ``images`` is neither uint8 nor floating point, ``labels`` not integers, or either argument is
            not an array or tensor.
        ValueError: If float images leave [0, 1] or hold NaN, or ``labels`` is not (N,) for N images.
    """
    if not isinstance(images, (np.ndarray, torch.Tensor)) or not isinstance(labels, (np.ndarray, torch.Tensor)):
        raise TypeError(f"images and labels must be numpy arrays or tensors, got {type(images).__name__} and "
                        f"{type(labels).__name__}.")
    if images.ndim < 1 or tuple(labels.shape) != (images.shape[0],):
        raise ValueError(f"labels must have shape (N,) for N images, got images of shape {tuple(images.shape)} and "
                         f"labels of shape {tuple(labels.shape)}; pass one label per image.")
    if isinstance(labels, np.ndarray):
        integral = np.issubdtype(labels.dtype, np.integer)
    else:
        integral = not (labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool)
    if not integral:
        raise TypeError(f"labels must be integers (class indices), got {labels.dtype}; a float label would be "
                        "truncated: convert integral values with .astype(np.int64) or .long().")
    if isinstance(images, np.ndarray) and np.issubdtype(images.dtype, np.floating):
        images = torch.from_numpy(images)  # scaled exactly as a float tensor
    if isinstance(images, torch.Tensor):
        if images.is_floating_point():
            if images.numel() and not bool(((images >= 0) & (images <= 1)).all()):
                raise ValueError("float images must lie in [0, 1] and be finite (they are scaled by 255 into uint8); "
                                 "divide 0-255 images by 255 or pass them as uint8, and drop NaN images.")
            images = (images.detach().cpu() * 255).round().to(torch.uint8)
        images = images.cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 or float in [0, 1], got {images.dtype}.")
    return _fingerprint(images, labels)


def _fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    if images.size:  # (memoryview cannot cast an empty array; its bytes are none)
        digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    return digest.hexdigest()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _copy_verified(src: Path, dst: Path, md5: str) -> None:
    """Copy ``src`` to ``dst`` atomically, checking the md5 on the way; on a mismatch nothing is written."""
    with atomic_path(dst) as tmp:
        digest = hashlib.md5(usedforsecurity=False)
        with open(tmp, "wb") as out, open(src, "rb") as inp:
            while chunk := inp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise RuntimeError(
                f"{src} (in the data mirror) has md5 {digest.hexdigest()}, expected {md5}: the mirror's copy is "
                f"damaged or truncated, so it was not copied to {dst}. Replace it with a good copy of {src.name} "
                "or point ATTRBOUND_DATA_MIRROR / mirror= (--mirror) at another mirror.")


def _resolve_mirror(mirror) -> Path | None:
    source = "mirror= (--mirror)"
    if mirror is None:
        mirror, source = default_mirror(), "ATTRBOUND_DATA_MIRROR"
        if mirror is None:
            return None
    mirror = Path(mirror).expanduser()
    if not mirror.is_dir():
        raise FileNotFoundError(f"the data mirror {mirror} (from {source}) is not a folder; fix the path or "
                                f"{'unset ' + source if source.isupper() else 'give another'}.")
    return mirror


def _check_arguments(name: str, split: str, subset, seed) -> tuple[str, int | None]:
    if not isinstance(name, str) or name.lower().replace("_", "-") not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS} ('cifar10-subset' is a 5,000-image "
                         "subset of CIFAR-10, 'cifar10' the full set).")
    name = name.lower().replace("_", "-")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}.")
    size = DATASET_INFO[name]["sizes"][split]
    if subset is not None:
        try:
            if isinstance(subset, bool):
                raise TypeError
            subset = operator.index(subset)
        except TypeError:
            raise ValueError(f"subset must be None (all {size} samples) or an int in [1, {size}], got {subset!r}.") \
                from None
        if not 1 <= subset <= size:
            raise ValueError(f"subset must be None (all {size} samples) or an int in [1, {size}] (the size of the "
                             f"{name} {split} split), got {subset}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}.")
    return name, subset


def load_dataset(name: str, split: str = "train", root: str | os.PathLike | None = None, download: bool = True,
                 mirror: str | os.PathLike | None = None, subset: int | None = None, seed: int = 0) -> ImageDataset:
    """Load a data set split as an ``ImageDataset``.

    Sample counts are checked against the full split sizes, labels against the number of classes, and
    MNIST / Fashion-MNIST / the CIFAR-10 subset against the fingerprint of the canonical data.

    Args:
        name: ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"`` (full CIFAR-10, 50,000 + 10,000 images) or
            ``"cifar10-subset"`` (a 5,000-image subset of CIFAR-10, NOT the full set: 4,000 train images, the
            first 4,000 of the CIFAR-10 training set, and 1,000 test images, the first 1,000 of its test set).
            Case-insensitive; ``_`` may stand for ``-``.
        split: ``"train"`` or ``"test"``. Default ``"train"``.
        root: Where archives are stored and extracted. Default ``None``: ``default_root()``.
        download: Let torchvision download what neither ``root`` nor the mirror has (``False``: never touch
            the network). The CIFAR-10 subset is read from ``root`` or the mirror; where neither has it and
            ``download`` is True, the same images are taken from torchvision's CIFAR-10 (downloaded if need
            be) and checked against the subset's fingerprint, with a warning.
        mirror: A local folder laid out as torchvision expects (default ``None``: ``$ATTRBOUND_DATA_MIRROR``):
            missing archives are md5-checked there and copied into ``root``, so no network is needed.
        subset: ``None`` (the whole split) or n: n samples drawn without replacement with
            ``torch.Generator().manual_seed(seed)`` (``randperm``), kept in index order (recorded in
            ``indices``).
        seed: Seed of the ``subset`` draw. Default 0.

    Returns:
        The ``ImageDataset``: images (N, C, H, W) float32 in [0, 1], labels (N,) int64, with ``fingerprint``
        and ``source_md5``.

    Raises:
        ValueError: If ``name``, ``split``, ``subset`` or ``seed`` is invalid, or ``root`` / ``mirror`` empty.
        TypeError: If ``download`` is not a bool, or ``root`` / ``mirror`` not a folder path.
        FileNotFoundError: If the mirror is not a folder.
        SubsetMissingError: If the CIFAR-10 subset is missing and ``download`` is False (or the fallback
            failed).
        RuntimeError: If the data is unavailable, damaged, incomplete or differs from the canonical data.
    """
    name, subset = _check_arguments(name, split, subset, seed)
    download = check_flag(download, "download")
    for value, what in ((root, "root"), (mirror, "mirror")):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{what} must be a folder (a string or a pathlib.Path) or None, got "
                            f"{type(value).__name__} {value!r}.")
        if value is not None and not os.fspath(value).strip():
            raise ValueError(f"{what} is an empty path; name a folder, or pass None for the default "
                             f"({'default_root()' if what == 'root' else '$ATTRBOUND_DATA_MIRROR'}).")
    root = Path(root).expanduser() if root is not None else default_root()
    mirror = _resolve_mirror(mirror)
    if name == "cifar10-subset":
        try:
            images, labels, classes, source_md5 = _load_cifar10_subset(split, root, mirror)
            folder = root / CIFAR10_SUBSET_DIR
        except SubsetMissingError as missing:
            if not download:
                raise
            images, labels, classes, source_md5 = _cifar10_subset_from_torchvision(split, root, mirror, missing)
            folder = root / _EXTRACTED_FOLDER["cifar10"]
    else:
        images, labels, classes, source_md5 = _load_torchvision(name, split, root, mirror, download)
        folder = root / _EXTRACTED_FOLDER[name]
    expected_n = DATASET_INFO[name]["sizes"][split]
    expected_shape = DATASET_INFO[name]["shape"]
    if images.shape != (expected_n, *expected_shape) or labels.shape != (expected_n,):
        raise RuntimeError(f"{name} {split}: got images {images.shape} and labels {labels.shape}, expected "
                           f"({expected_n}, {', '.join(map(str, expected_shape))}) and ({expected_n},): the data is "
                           f"incomplete or damaged. Delete the folder {folder} and retry.")
    if labels.min() < 0 or labels.max() >= DATASET_INFO[name]["num_classes"]:
        raise RuntimeError(f"{name} {split}: labels outside [0, {DATASET_INFO[name]['num_classes'] - 1}]; the data "
                           f"is damaged. Delete the folder {folder} and retry.")

    full_print = _fingerprint(images, labels)
    known = _KNOWN_FINGERPRINTS.get((name, split))
    if known is not None and full_print != known:
        raise RuntimeError(f"{name} {split} read from {folder} differs from the canonical data (fingerprint "
                           f"{full_print}, expected {known}): the extracted files are damaged (torchvision does "
                           f"not checksum them). Delete the folder {folder} and retry.")

    indices = None
    if subset is not None:
        generator = torch.Generator().manual_seed(int(seed))
        indices = torch.randperm(len(labels), generator=generator)[:subset].sort().values
        images, labels = images[indices.numpy()], labels[indices.numpy()]
        full_print = _fingerprint(images, labels)
    return ImageDataset(torch.from_numpy(images).float().div_(255), torch.from_numpy(labels.astype(np.int64)),
                        name, split, classes, indices=indices, fingerprint=full_print, source_md5=source_md5)


def _load_torchvision(name: str, split: str, root: Path, mirror: Path | None, download: bool):
    """Full split through torchvision's class: uint8 images (N, C, H, W), int64 labels, class names, source md5s."""
    from torchvision import datasets

    cls = getattr(datasets, _TORCHVISION_CLASS[name])
    is_cifar = issubclass(cls, datasets.CIFAR10)
    if is_cifar:
        archives = [(cls.filename, cls.tgz_md5)]
        rel = Path(".")  # torchvision keeps the tarball in root and extracts root/cifar-10-batches-py
        data_dir = root / cls.base_folder
        extracted = [data_dir / f for f, _ in cls.train_list + cls.test_list] + [data_dir / cls.meta["filename"]]
        split_files = {f: m for f, m in (cls.train_list if split == "train" else cls.test_list)}
        source_md5 = {cls.filename: cls.tgz_md5, **{f"{cls.base_folder}/{f}": m for f, m in split_files.items()}}
    else:
        archives = [(os.path.basename(f), m) for f, m in cls.resources]
        rel = Path(cls.__name__) / "raw"
        data_dir = root / cls.__name__
        extracted = [root / rel / os.path.splitext(f)[0] for f, _ in archives]
        prefix = "train" if split == "train" else "t10k"
        source_md5 = {f: m for f, m in archives if f.startswith(prefix + "-")}
    archive_dir = root / rel
    listing = ", ".join(f"{f} (md5 {m})" for f, m in archives)

    # torchvision reads the extracted files when they all exist; otherwise it needs every archive in root.
    missing = []
    if not all(p.is_file() for p in extracted):
        for fname, md5 in archives:
            target = archive_dir / fname
            spare = mirror / rel / fname if mirror is not None else None
            if spare is not None and not spare.is_file():
                spare = None
            if target.is_file():
                actual = file_digest(target, "md5")
                if actual == md5:
                    continue
                if spare is None:
                    raise RuntimeError(
                        f"{target} has md5 {actual}, expected {md5} (torchvision's checksum): the file is damaged or "
                        f"truncated (an interrupted download?). Delete it and retry (download=True fetches it again), "
                        f"{_MIRROR_HINT}.")
                warnings.warn(f"{target} has md5 {actual}, expected {md5}: replacing it with the copy from the "
                              f"mirror {spare}.", UserWarning, stacklevel=3)
            if spare is not None:
                try:
                    _copy_verified(spare, target, md5)
                except OSError as exc:
                    raise RuntimeError(f"could not copy {spare} to {target} ({exc}); make root (now {root}) a "
                                       "writable folder: pass root= or set ATTRBOUND_DATA.") from exc
            else:
                missing.append(fname)

    def not_found(detail: str) -> RuntimeError:
        extra = (" A 5,000-image subset of CIFAR-10 (4,000 train, 1,000 test images, read from PNG files) is "
                 "available offline as load_dataset('cifar10-subset').") if is_cifar else ""
        return RuntimeError(
            f"{name} is not available: {detail}. Put {listing} into the folder {archive_dir}, {_MIRROR_HINT}, or "
            f"retry with network access and download=True.{extra}")

    if missing and not download:
        raise not_found(f"{', '.join(missing)} not found in {archive_dir}"
                        + (f" nor in the mirror {mirror / rel}" if mirror is not None else " and no mirror is set")
                        + " (download=False)")
    try:
        # With every archive in root and md5-correct torchvision's download step only extracts (no network),
        # and without it download=False would refuse archives that are present but not yet extracted.
        ds = cls(str(root), train=split == "train", download=download or not missing)
    except Exception as exc:
        if missing:
            raise not_found(f"{', '.join(missing)} not found in {archive_dir}"
                            + (f" nor in the mirror {mirror / rel}" if mirror is not None else " and no mirror is set")
                            + f", and torchvision's download failed ({type(exc).__name__}: {_one_line(exc)})") from exc
        hint = (" The folder is not writable: pass a writable root= or set ATTRBOUND_DATA (a read-only copy of the "
                "archives belongs in mirror=)." if isinstance(exc, PermissionError) else "")
        raise RuntimeError(f"torchvision could not read {name} {split} from {data_dir} ({type(exc).__name__}: "
                           f"{_one_line(exc)}). The extracted files are probably damaged (e.g. an interrupted "
                           f"extraction): delete the folder {data_dir} and retry.{hint}") from exc

    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    images = data[:, None] if data.ndim == 3 else np.ascontiguousarray(data.transpose(0, 3, 1, 2))
    labels = ds.targets.numpy() if isinstance(ds.targets, torch.Tensor) else np.asarray(ds.targets)
    return images, labels.astype(np.int64), list(ds.classes), source_md5


def _find_subset_file(fname: str, root: Path, mirror: Path | None) -> tuple[Path, bytes]:
    places = [root / CIFAR10_SUBSET_DIR] + ([mirror / CIFAR10_SUBSET_DIR] if mirror is not None else [])
    for place in places:
        path = place / fname
        if path.is_file():
            data = path.read_bytes()
            actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if actual != CIFAR10_SUBSET_MD5[fname]:
                raise RuntimeError(f"{path} has md5 {actual}, expected {CIFAR10_SUBSET_MD5[fname]}: the file is "
                                   f"damaged or truncated. Replace it with a good copy (or delete it if the mirror "
                                   f"has one).")
            return path, data
    raise SubsetMissingError(
        f"the CIFAR-10 subset file {fname} was not found in {' nor in '.join(map(str, places))}. Put the files "
        f"{', '.join(CIFAR10_SUBSET_MD5)} (md5s in attrbound_lite.data.CIFAR10_SUBSET_MD5) into the folder "
        f"{root / CIFAR10_SUBSET_DIR}, or set ATTRBOUND_DATA_MIRROR (or pass mirror=, --mirror on the command line) "
        f"to a folder containing {CIFAR10_SUBSET_DIR}/. This is a 5,000-image subset; the full CIFAR-10 (through "
        "torchvision) is load_dataset('cifar10').")


def _cifar10_subset_from_torchvision(split: str, root: Path, mirror: Path | None, missing: Exception):
    """The same images as the subset, taken from torchvision's CIFAR-10 (downloaded if need be).

    These are the first 4,000 training or 1,000 test images. ``load_dataset`` then checks them against the
    subset's fingerprint.
    """
    keep = DATASET_INFO["cifar10-subset"]["sizes"][split]
    try:
        images, labels, classes, source_md5 = _load_torchvision("cifar10", split, root, mirror, True)
    except Exception as err:
        raise SubsetMissingError(f"{missing} Taking the same {keep} images from torchvision's CIFAR-10 failed as "
                                 f"well: {_one_line(err)}") from None
    warnings.warn(f"the CIFAR-10 subset files are not at hand; using the first {keep} {split} images of "
                  "torchvision's CIFAR-10, which are the subset's images.", stacklevel=3)
    return images[:keep], labels[:keep], classes, source_md5


def _load_cifar10_subset(split: str, root: Path, mirror: Path | None):
    """The 5,000-image CIFAR-10 subset (ConvNetJS PNG batches): uint8 images (N, 3, 32, 32), int64 labels."""
    from PIL import Image

    source_md5 = {}
    path, text = _find_subset_file(_SUBSET_LABELS, root, mirror)
    source_md5[_SUBSET_LABELS] = CIFAR10_SUBSET_MD5[_SUBSET_LABELS]
    all_labels = np.array([int(x) for x in re.findall(r"\d+", text.decode("ascii"))], dtype=np.int64)
    if all_labels.shape != (51000,):
        raise RuntimeError(f"{path} holds {all_labels.size} labels, expected 51,000; replace it with a good copy.")
    images, labels = [], []
    for batch in _SUBSET_BATCHES[split]:
        fname = f"cifar10_batch_{batch}.png"
        path, data = _find_subset_file(fname, root, mirror)
        source_md5[fname] = CIFAR10_SUBSET_MD5[fname]
        try:
            with Image.open(io.BytesIO(data)) as img:
                pixels = np.asarray(img.convert("RGB"))
        except Exception as exc:
            raise RuntimeError(f"Pillow could not decode {path} ({exc}); replace it with a good copy.") from exc
        if pixels.shape != (1000, 1024, 3):
            raise RuntimeError(f"{path} decodes to shape {pixels.shape}, expected (1000, 1024, 3).")
        # Row k is image k of the batch: 32x32 pixels in row-major order, RGB in the pixel's channels.
        images.append(pixels.reshape(1000, 32, 32, 3).transpose(0, 3, 1, 2))
        first = batch * 1000  # global index: train image i is label i, test image j is label 50000 + j
        labels.append(all_labels[first:first + 1000])
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), list(_CIFAR10_CLASSES), source_md5


def as_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels as tensors from an ``ImageDataset``, a ``TensorDataset`` or a pair of tensors.

    Args:
        data: An ``ImageDataset``, a ``TensorDataset`` (its first two tensors) or a pair ``(images, labels)``.

    Returns:
        ``(images, labels)``: images (N, C, H, W) as given and labels (N,) as int64.

    Raises:
        TypeError: If ``data`` is none of the accepted kinds, its images or labels are not tensors (numpy arrays:
            convert them with ``torch.as_tensor``), or the labels are not integers (a float or bool label is refused
            rather than truncated to a class: convert integral values with ``labels.long()``).
        ValueError: If the images are not 4-D tensors, the labels do not have shape (N,), or there are no samples.
    """
    if hasattr(data, "images") and hasattr(data, "labels"):
        x, y = data.images, data.labels
    elif hasattr(data, "tensors") and isinstance(data.tensors, tuple):
        if len(data.tensors) < 2:
            raise ValueError(f"a TensorDataset must hold (images, labels); this one holds {len(data.tensors)} "
                             "tensor(s): TensorDataset(images, labels).")
        x, y = data.tensors[:2]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
    else:
        raise TypeError("data must be an ImageDataset (attrbound_lite.data.load_dataset), a TensorDataset or a "
                        f"pair (images, labels); got {type(data).__name__}.")
    for value, name in ((x, "images"), (y, "labels")):
        if not isinstance(value, torch.Tensor):
            hint = f"; convert them with torch.as_tensor({name})" if hasattr(value, "__array__") else ""
            raise TypeError(f"the {name} of data must be a torch.Tensor, got {type(value).__name__}{hint}.")
    if x.ndim != 4 or y.shape != x.shape[:1]:
        raise ValueError("data must hold images (N, C, H, W) and labels (N,); got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}.")
    if x.shape[0] == 0:
        raise ValueError(f"data holds no samples (images of shape {tuple(x.shape)}); pass at least one image.")
    check_labels(y, name="labels")  # integer classes: a float or bool label is refused, not truncated by .long()
    return x, y.long()
