"""attrbound_lite.data on the real data sets, read from the offline mirror with the network blocked.

The mirror is ``$ATTRBOUND_DATA_MIRROR`` or ``../shared/data`` next to the repository (see its README); it is
only read. Everything written (cache roots, damaged copies) goes to pytest's temporary folders. Expected values
(md5s, label counts, first labels, pixel means) come from the mirror's README, not from the code under test.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import shutil
import socket
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from attrbound_lite.data import (
    DATASET_INFO,
    DATASETS,
    ImageDataset,
    SubsetMissingError,
    default_root,
    fingerprint,
    load_dataset,
)

MIRROR = Path(os.environ.get("ATTRBOUND_DATA_MIRROR")
              or Path(__file__).resolve().parents[1].parent / "shared" / "data")

# From the mirror's README (= torchvision's checksums).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FMNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
SUBSET_FILES = ["cifar10_batch_0.png", "cifar10_batch_1.png", "cifar10_batch_2.png", "cifar10_batch_3.png",
                "cifar10_batch_50.png", "cifar10_labels.js"]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------- isolation

class NetworkGuard:
    """Replaces socket connections by an immediate OSError and records every attempt."""

    def __init__(self):
        self.attempts: list[tuple[str, str, bool]] = []  # (function, address, expected by the test)
        self.expected = False

    def refuse(self, where: str, address) -> None:
        self.attempts.append((where, repr(address), self.expected))
        raise OSError(f"network access blocked by tests/test_data.py ({where} {address!r})")

    def unexpected(self) -> list:
        return [a for a in self.attempts if not a[2]]


@pytest.fixture(scope="module", autouse=True)
def network(tmp_path_factory):
    """For the whole module: no network, no user data settings, and a throw-away home/cache folder."""
    guard = NetworkGuard()
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", lambda self, address: guard.refuse("socket.connect", address))
        mp.setattr(socket.socket, "connect_ex", lambda self, address: guard.refuse("socket.connect_ex", address))
        mp.setattr(socket, "create_connection", lambda address, *a, **k: guard.refuse("create_connection", address))
        mp.setattr(socket, "getaddrinfo", lambda host, *a, **k: guard.refuse("getaddrinfo", host))
        for var in ("ATTRBOUND_DATA", "ATTRBOUND_DATA_MIRROR"):
            mp.delenv(var, raising=False)
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_CACHE_HOME", str(home / ".cache"))
        yield guard
    assert not guard.unexpected(), f"unexpected network access: {guard.unexpected()}"


@pytest.fixture(autouse=True)
def no_unexpected_connection(network):
    before = len(network.attempts)
    yield
    new = [a for a in network.attempts[before:] if not a[2]]
    assert not new, f"this test attempted network connections: {new}"


@pytest.fixture
def expect_blocked_network(network):
    """The test lets torchvision try to download: its connection attempts are expected (and refused)."""
    network.expected = True
    yield network
    network.expected = False


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def mirror():
    """The real mirror; checked unchanged at the end (file permissions do not stop a test run as root)."""
    needed = ([f"MNIST/raw/{f}" for f in MNIST_MD5] + [f"FashionMNIST/raw/{f}" for f in FMNIST_MD5]
              + [f"cifar10-subset/{f}" for f in SUBSET_FILES])
    missing = [f for f in needed if not (MIRROR / f).is_file()]
    if missing:
        pytest.fail(f"the offline data mirror {MIRROR} lacks {missing}. These tests need it: set "
                    "ATTRBOUND_DATA_MIRROR to a folder laid out as described in shared/data/README.md "
                    "(MNIST/raw, FashionMNIST/raw, cifar10-subset).", pytrace=False)
    before = snapshot(MIRROR)
    yield MIRROR
    assert snapshot(MIRROR) == before, f"the tests modified the data mirror {MIRROR}"


def load_clean(network, *args, **kwargs) -> ImageDataset:
    before = len(network.attempts)
    ds = load_dataset(*args, **kwargs)
    assert network.attempts[before:] == [], "loading from the mirror must not touch the network"
    return ds


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist_root")


@pytest.fixture(scope="module")
def mnist_train(network, mirror, mnist_root):
    return load_clean(network, "mnist", "train", root=mnist_root, mirror=mirror, download=False)


@pytest.fixture(scope="module")
def mnist_test(network, mirror, mnist_root):
    return load_clean(network, "mnist", "test", root=mnist_root, mirror=mirror, download=False)


@pytest.fixture(scope="module")
def fmnist(network, mirror, tmp_path_factory):
    root = tmp_path_factory.mktemp("fmnist_root")
    # download=True (the default): with every archive in the mirror torchvision still needs no network.
    return {split: load_clean(network, "fashion-mnist", split, root=root, mirror=mirror) for split in ("train", "test")}


@pytest.fixture(scope="module")
def cifar_subset(network, mirror, tmp_path_factory):
    root = tmp_path_factory.mktemp("empty_root")
    return {split: load_clean(network, "cifar10-subset", split, root=root, mirror=mirror)
            for split in ("train", "test")}


def check_images(ds: ImageDataset, n: int, shape: tuple[int, ...]) -> None:
    assert len(ds) == n
    assert ds.images.shape == (n, *shape) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
    assert ds.images.min() >= 0 and ds.images.max() <= 1 and ds.images.max() == 1
    head = ds.images[:1000] * 255
    assert (head.round() - head).abs().max() < 1e-4, "pixels must be k/255"
    assert ds.indices is None
    assert re.fullmatch(r"[0-9a-f]{32}", ds.fingerprint)
    image, label = ds[3]
    assert torch.equal(image, ds.images[3]) and int(label) == int(ds.labels[3])
    images, labels = ds.tensors()
    assert images is ds.images and labels is ds.labels


# --------------------------------------------------------------------------------------------- MNIST, Fashion-MNIST

def test_mnist_train(mnist_train, mnist_root):
    check_images(mnist_train, 60000, (1, 28, 28))
    assert mnist_train.name == "mnist" and mnist_train.split == "train"
    assert torch.bincount(mnist_train.labels).tolist() == MNIST_TRAIN_COUNTS
    assert mnist_train.images.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert mnist_train.images.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert mnist_train.classes == DATASET_INFO["mnist"]["classes"]
    assert mnist_train.source_md5 == {f: m for f, m in MNIST_MD5.items() if f.startswith("train")}
    # The archives were copied (atomically: no temporary files left) and are md5-correct.
    raw = mnist_root / "MNIST" / "raw"
    assert {f: md5(raw / f) for f in MNIST_MD5} == MNIST_MD5
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]
    assert "mnist" in repr(mnist_train) and "60000" in repr(mnist_train)


def test_mnist_test(mnist_test):
    check_images(mnist_test, 10000, (1, 28, 28))
    assert mnist_test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert torch.bincount(mnist_test.labels).sum() == 10000 and mnist_test.labels.unique().tolist() == list(range(10))
    assert mnist_test.source_md5 == {f: m for f, m in MNIST_MD5.items() if f.startswith("t10k")}


def test_fingerprint_is_md5_of_the_returned_data(mnist_test, mirror):
    """Independent of torchvision: the md5 of the gunzipped IDX pixels and the labels as little-endian int64."""
    pixels = gzip.open(mirror / "MNIST/raw/t10k-images-idx3-ubyte.gz").read()[16:]
    labels = np.frombuffer(gzip.open(mirror / "MNIST/raw/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
    expected = hashlib.md5(pixels + labels.astype("<i8").tobytes()).hexdigest()
    assert mnist_test.fingerprint == expected
    assert fingerprint(mnist_test.images, mnist_test.labels) == expected
    assert torch.equal(mnist_test.labels, torch.from_numpy(labels.astype(np.int64)))


def test_second_load_reuses_the_cache_without_mirror(mnist_test, mnist_root, network):
    again = load_clean(network, "mnist", "test", root=mnist_root, mirror=None, download=False)
    assert again.fingerprint == mnist_test.fingerprint


def test_fashion_mnist(fmnist):
    train, test = fmnist["train"], fmnist["test"]
    check_images(train, 60000, (1, 28, 28))
    check_images(test, 10000, (1, 28, 28))
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.images.mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert train.images.std().item() == pytest.approx(0.3530, abs=1e-4)
    assert train.classes == DATASET_INFO["fashion-mnist"]["classes"]
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    assert test.source_md5 == {f: m for f, m in FMNIST_MD5.items() if f.startswith("t10k")}


def test_dataloader(mnist_test):
    images, labels = next(iter(torch.utils.data.DataLoader(mnist_test, batch_size=8)))
    assert images.shape == (8, 1, 28, 28) and labels.tolist() == [7, 2, 1, 0, 4, 1, 4, 9]


# --------------------------------------------------------------------------------------------- CIFAR-10 subset

def test_cifar10_subset(cifar_subset, mirror):
    train, test = cifar_subset["train"], cifar_subset["test"]
    check_images(train, 4000, (3, 32, 32))
    check_images(test, 1000, (3, 32, 32))
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    entries = [int(x) for x in re.findall(r"\d+", (mirror / "cifar10-subset/cifar10_labels.js").read_text())]
    assert len(entries) == 51000
    assert train.labels.tolist() == entries[:4000] and test.labels.tolist() == entries[50000:51000]
    # The subset is not class-balanced (396 to 422 per class); every class is present.
    assert torch.bincount(train.labels, minlength=10).min() > 300
    assert train.classes == DATASET_INFO["cifar10-subset"]["classes"] and train.classes[6] == "frog"
    assert set(train.source_md5) == {"cifar10_labels.js", *SUBSET_FILES[:4]}
    assert set(test.source_md5) == {"cifar10_labels.js", "cifar10_batch_50.png"}


def test_cifar10_subset_pixel_layout(cifar_subset, mirror):
    """Row k of a PNG batch is image k: 1024 RGB pixels in row-major order (decoded here independently)."""
    from PIL import Image
    for split, batch, rows in (("train", 0, (0, 999)), ("test", 50, (0, 500))):
        png = np.asarray(Image.open(mirror / f"cifar10-subset/cifar10_batch_{batch}.png").convert("RGB"))
        for k in rows:
            image = (cifar_subset[split].images[k] * 255).round().to(torch.uint8)  # (3, 32, 32)
            assert torch.equal(image.permute(1, 2, 0).reshape(1024, 3), torch.from_numpy(png[k].copy()))


def test_cifar10_subset_root_first_then_mirror(tmp_path, mirror, network, cifar_subset):
    root = tmp_path / "root"
    (root / "cifar10-subset").mkdir(parents=True)
    for f in ("cifar10_batch_50.png", "cifar10_labels.js"):
        os.symlink(mirror / "cifar10-subset" / f, root / "cifar10-subset" / f)
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    ds = load_clean(network, "CIFAR10_subset", "test", root=root, mirror=empty)
    assert ds.name == "cifar10-subset" and ds.fingerprint == cifar_subset["test"].fingerprint


def test_cifar10_subset_missing(tmp_path):
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    with pytest.raises(RuntimeError) as info:
        load_dataset("cifar10-subset", "train", root=tmp_path / "root", mirror=empty, download=False)
    message = str(info.value)
    assert str(tmp_path / "root" / "cifar10-subset") in message and "cifar10_batch_0.png" in message
    assert "ATTRBOUND_DATA_MIRROR" in message and "load_dataset('cifar10')" in message and "5,000" in message


def test_cifar10_subset_truncated_png_refused(tmp_path, mirror):
    bad = tmp_path / "mirror" / "cifar10-subset"
    bad.mkdir(parents=True)
    for f in SUBSET_FILES:
        os.symlink(mirror / "cifar10-subset" / f, bad / f)
    (bad / "cifar10_batch_50.png").unlink()
    (bad / "cifar10_batch_50.png").write_bytes((mirror / "cifar10-subset/cifar10_batch_50.png").read_bytes()[:100000])
    with pytest.raises(RuntimeError, match="md5") as info:
        load_dataset("cifar10-subset", "test", root=tmp_path / "root", mirror=tmp_path / "mirror")
    message = str(info.value)
    assert str(bad / "cifar10_batch_50.png") in message and "fc6b4e3450caf155c495dd8de98e47bf" in message


def test_cifar10_subset_damaged_root_file_not_skipped(tmp_path, mirror):
    """A damaged file in root is an error, even though the mirror has a good copy."""
    root = tmp_path / "root"
    (root / "cifar10-subset").mkdir(parents=True)
    text = (mirror / "cifar10-subset/cifar10_labels.js").read_text()
    (root / "cifar10-subset/cifar10_labels.js").write_text(text.replace("6", "7", 1))  # same size, one label off
    with pytest.raises(RuntimeError, match="md5") as info:
        load_dataset("cifar10-subset", "test", root=root, mirror=mirror)
    assert str(root / "cifar10-subset" / "cifar10_labels.js") in str(info.value)


# --------------------------------------------------------------------------------------------- damaged files

def make_mirror(tmp_path: Path, mirror: Path, damage: str, name: str = "t10k-labels-idx1-ubyte.gz") -> Path:
    """A mirror holding MNIST/raw with one archive damaged (the others link to the real mirror)."""
    raw = tmp_path / "bad_mirror" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_MD5:
        if f != name:
            os.symlink(mirror / "MNIST/raw" / f, raw / f)
    data = bytearray((mirror / "MNIST/raw" / name).read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    (raw / name).write_bytes(bytes(data))
    return raw / name


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_mirror_archive_refused(tmp_path, mirror, damage):
    bad = make_mirror(tmp_path, mirror, damage)
    root = tmp_path / "root"
    with pytest.raises(RuntimeError, match="md5") as info:
        load_dataset("mnist", "test", root=root, mirror=tmp_path / "bad_mirror", download=False)
    message = str(info.value)
    assert str(bad) in message and MNIST_MD5[bad.name] in message and md5(bad) in message
    assert "ATTRBOUND_DATA_MIRROR" in message
    # Nothing damaged (nor a temporary file) was left in root.
    raw = root / "MNIST" / "raw"
    assert not (raw / bad.name).exists()
    assert all(p.name in MNIST_MD5 and md5(p) == MNIST_MD5[p.name] for p in raw.iterdir())


def test_damaged_root_archive_without_mirror_is_an_error(tmp_path, mirror):
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_MD5:
        shutil.copy(mirror / "MNIST/raw" / f, raw / f)
    with open(raw / "t10k-images-idx3-ubyte.gz", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(RuntimeError, match="md5") as info:
        load_dataset("mnist", "test", root=tmp_path / "root", mirror=None, download=True)
    message = str(info.value)
    assert str(raw / "t10k-images-idx3-ubyte.gz") in message and MNIST_MD5["t10k-images-idx3-ubyte.gz"] in message
    assert "Delete it" in message


def test_damaged_root_archive_replaced_from_mirror(tmp_path, mirror, network, mnist_test):
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not a gzip file")
    with pytest.warns(UserWarning, match="md5"):
        ds = load_clean(network, "mnist", "test", root=tmp_path / "root", mirror=mirror, download=False)
    assert ds.fingerprint == mnist_test.fingerprint
    assert md5(raw / "t10k-labels-idx1-ubyte.gz") == MNIST_MD5["t10k-labels-idx1-ubyte.gz"]


def extracted_root(tmp_path: Path, mirror: Path) -> Path:
    """A root with extracted MNIST test files (the train files empty: loading the test split does not read
    them, but torchvision only uses extracted files when all four exist)."""
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in MNIST_MD5:
        data = gzip.open(mirror / "MNIST/raw" / f).read() if f.startswith("t10k") else b""
        (raw / f[:-3]).write_bytes(data)
    return raw


def test_truncated_extracted_file_refused(tmp_path, mirror):
    raw = extracted_root(tmp_path, mirror)
    with open(raw / "t10k-images-idx3-ubyte", "r+b") as f:
        f.truncate(5000)
    with pytest.raises(RuntimeError, match="delete the folder") as info:
        load_dataset("mnist", "test", root=tmp_path / "root", mirror=mirror, download=False)
    assert str(tmp_path / "root" / "MNIST") in str(info.value)


def test_altered_extracted_file_refused(tmp_path, mirror, mnist_test, network):
    raw = extracted_root(tmp_path, mirror)
    assert load_clean(network, "mnist", "test", root=tmp_path / "root", download=False).fingerprint \
        == mnist_test.fingerprint
    with open(raw / "t10k-images-idx3-ubyte", "r+b") as f:
        f.seek(16 + 5000)
        f.write(b"\x80")  # one pixel changed, same size: torchvision reads it without complaint
    with pytest.raises(RuntimeError, match="fingerprint") as info:
        load_dataset("mnist", "test", root=tmp_path / "root", mirror=mirror, download=False)
    assert str(tmp_path / "root" / "MNIST") in str(info.value)


# --------------------------------------------------------------------------------------------- no data, no network

def test_no_mirror_no_network(tmp_path, expect_blocked_network):
    root = tmp_path / "root"
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        load_dataset("mnist", "train", root=root, mirror=None, download=True)
    assert time.perf_counter() - start < 30, "a blocked download must fail fast"
    assert expect_blocked_network.attempts, "torchvision should have tried (and been refused) a download"
    message = str(info.value)
    assert str(root / "MNIST" / "raw") in message and "ATTRBOUND_DATA_MIRROR" in message and "mirror=" in message
    assert all(f in message for f in MNIST_MD5)


def test_no_mirror_download_false_never_connects(tmp_path, network):
    with pytest.raises(RuntimeError, match="ATTRBOUND_DATA_MIRROR") as info:
        load_dataset("fashion-mnist", "test", root=tmp_path / "root", mirror=None, download=False)
    assert str(tmp_path / "root" / "FashionMNIST" / "raw") in str(info.value)


def test_full_cifar10_missing_points_to_subset(tmp_path, mirror, expect_blocked_network):
    assert not (mirror / "cifar-10-python.tar.gz").exists(), "this test needs a mirror without full CIFAR-10"
    with pytest.raises(RuntimeError) as info:
        load_dataset("cifar10", "test", root=tmp_path / "root", mirror=mirror, download=True)
    message = str(info.value)
    assert "cifar10-subset" in message and "cifar-10-python.tar.gz" in message
    assert str(tmp_path / "root") in message and "ATTRBOUND_DATA_MIRROR" in message


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A synthetic cifar-10-python.tar.gz in a temporary mirror, torchvision's CIFAR10 checksums patched to match.

    test_batch holds 10,000 images where pixel (c, h, w) of image i is (i + 1024 c + 32 h + w) mod 256 (the
    CIFAR row layout: R plane, G plane, B plane); the five train batches hold 10 images each.
    """
    from torchvision.datasets import CIFAR10

    base = tmp_path / "src" / "cifar-10-batches-py"
    base.mkdir(parents=True)
    data = ((np.arange(10000)[:, None] + np.arange(3072)[None]) % 256).astype(np.uint8)
    labels = [i * 7 % 10 for i in range(10000)]
    batches = {"test_batch": (data, labels)}
    batches.update({f"data_batch_{k}": (data[:10], labels[:10]) for k in range(1, 6)})
    for name, (x, y) in batches.items():
        (base / name).write_bytes(pickle.dumps({"data": x, "labels": y}))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": DATASET_INFO["cifar10"]["classes"]}))
    tar = tmp_path / "fake_mirror" / "cifar-10-python.tar.gz"
    tar.parent.mkdir()
    with tarfile.open(tar, "w:gz", compresslevel=1) as archive:
        archive.add(base, arcname="cifar-10-batches-py")
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(tar))
    train_list = [[f"data_batch_{k}", md5(base / f"data_batch_{k}")] for k in range(1, 6)]
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(base / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5(base / "batches.meta")})
    return tar, data, labels


def test_full_cifar10_through_torchvision(fake_cifar10, tmp_path, network):
    tar, data, labels = fake_cifar10
    root = tmp_path / "root"
    ds = load_clean(network, "cifar10", "test", root=root, mirror=tar.parent, download=False)
    assert ds.images.shape == (10000, 3, 32, 32) and ds.labels.tolist() == labels
    assert torch.equal(ds.images, torch.from_numpy(data.reshape(10000, 3, 32, 32)).float() / 255)
    assert ds.classes == DATASET_INFO["cifar10"]["classes"]
    assert md5(root / "cifar-10-python.tar.gz") == md5(tar) == ds.source_md5["cifar-10-python.tar.gz"]
    assert ds.fingerprint == hashlib.md5(data.tobytes() + np.asarray(labels, "<i8").tobytes()).hexdigest()
    # The train batches hold 50 images instead of 50,000: never returned as a silently partial data set.
    with pytest.raises(RuntimeError, match="incomplete") as info:
        load_dataset("cifar10", "train", root=root, mirror=tar.parent, download=False)
    assert "50000" in str(info.value)


def test_missing_mirror_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="mirror"):
        load_dataset("mnist", "test", root=tmp_path, mirror=tmp_path / "no_such_folder")


# --------------------------------------------------------------------------------------------- subsets, arguments

def test_subset(mnist_test, mnist_root, network):
    def load(n, seed):
        return load_clean(network, "mnist", "test", root=mnist_root, download=False, subset=n, seed=seed)

    a, b, c = load(100, 0), load(100, 0), load(100, 1)
    assert len(a) == 100 and a.indices.shape == (100,) and a.indices.dtype == torch.int64
    assert torch.equal(a.indices, a.indices.sort().values) and a.indices.unique().numel() == 100
    assert torch.equal(a.indices, torch.randperm(10000, generator=torch.Generator().manual_seed(0))[:100].sort().values)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint
    assert not torch.equal(a.indices, c.indices) and a.fingerprint != c.fingerprint
    assert a.fingerprint != mnist_test.fingerprint
    assert torch.equal(a.images, mnist_test.images[a.indices]) and torch.equal(a.labels, mnist_test.labels[a.indices])
    assert a.fingerprint == fingerprint(a.images, a.labels)
    everything = load(10000, 3)
    assert torch.equal(everything.indices, torch.arange(10000)) and everything.fingerprint == mnist_test.fingerprint


def test_subset_of_cifar10_subset(cifar_subset, mirror, network, tmp_path):
    ds = load_clean(network, "cifar10-subset", "train", root=tmp_path, mirror=mirror, subset=10, seed=5)
    assert torch.equal(ds.labels, cifar_subset["train"].labels[ds.indices])


def test_bad_arguments(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet", root=root)
    assert all(repr(name) in str(info.value) for name in DATASETS)
    with pytest.raises(ValueError, match="'train', 'test'"):
        load_dataset("mnist", split="val", root=root)
    for bad in (0, -1, 10001, 2.5, "10", True):
        with pytest.raises(ValueError, match=r"None .*\[1, 10000\]"):
            load_dataset("mnist", split="test", root=root, subset=bad)
    with pytest.raises(ValueError, match="seed"):
        load_dataset("mnist", split="test", root=root, subset=5, seed=1.5)
    assert not root.exists(), "arguments must be checked before touching the disk"


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTRBOUND_DATA", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data"
    monkeypatch.delenv("ATTRBOUND_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "attrbound" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "attrbound" / "data"


def test_mirror_from_environment(monkeypatch, mirror, cifar_subset, network, tmp_path):
    monkeypatch.setenv("ATTRBOUND_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("ATTRBOUND_DATA", str(tmp_path / "data"))
    ds = load_clean(network, "cifar10-subset", "test")
    assert ds.fingerprint == cifar_subset["test"].fingerprint


def test_dataset_info():
    assert set(DATASET_INFO) == set(DATASETS)
    for name, info in DATASET_INFO.items():
        assert len(info["classes"]) == info["num_classes"] == 10
        assert info["shape"] == ((1, 28, 28) if "mnist" in name else (3, 32, 32))


def test_cifar10_subset_falls_back_to_the_same_images_of_torchvision(tmp_path, monkeypatch, cifar_subset):
    """Without the subset's files (and with download allowed) the first 4,000 / 1,000 images of torchvision's
    CIFAR-10 are taken: the subset's fingerprint proves they are the same images; other images are refused."""
    import attrbound_lite.data as data_module

    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    calls = []

    def fake_torchvision(name, split, root, mirror, download):  # stands in for the 163 MB download
        calls.append((name, split, download))
        subset = cifar_subset[split]
        n_full = DATASET_INFO["cifar10"]["sizes"][split]
        images = np.zeros((n_full, 3, 32, 32), np.uint8)
        images[:len(subset)] = (subset.images * 255).round().to(torch.uint8).numpy()
        labels = np.zeros(n_full, np.int64)
        labels[:len(subset)] = subset.labels.numpy()
        return images, labels, subset.classes, {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}

    monkeypatch.setattr(data_module, "_load_torchvision", fake_torchvision)
    for split in ("train", "test"):
        with pytest.warns(UserWarning, match="torchvision's CIFAR-10"):
            ds = load_dataset("cifar10-subset", split, root=tmp_path / "root", mirror=empty)
        assert ds.name == "cifar10-subset" and ds.fingerprint == cifar_subset[split].fingerprint
        assert torch.equal(ds.images, cifar_subset[split].images) and torch.equal(ds.labels, cifar_subset[split].labels)
    assert calls == [("cifar10", "train", True), ("cifar10", "test", True)]

    with pytest.raises(SubsetMissingError):  # download=False never falls back
        load_dataset("cifar10-subset", "test", root=tmp_path / "root", mirror=empty, download=False)

    def shifted(name, split, root, mirror, download):  # other images than the subset's: refused
        images, labels, classes, md5 = fake_torchvision(name, split, root, mirror, download)
        return np.roll(images, 1, axis=0), np.roll(labels, 1), classes, md5

    monkeypatch.setattr(data_module, "_load_torchvision", shifted)
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="differs from the canonical data"):
        load_dataset("cifar10-subset", "test", root=tmp_path / "root", mirror=empty)
