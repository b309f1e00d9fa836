"""Atomic file writes: a result is either absent or complete, never half written."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


def make_dirs(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and its parents (``mkdir -p``); a file in the way is named in a ValueError."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise ValueError(f"cannot create the folder {str(folder)!r}: {str(part)!r} is an existing file; choose "
                             "another path or move the file.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a link to nothing: it exists as a name, not as a folder
        broken = next((p for p in (folder, *folder.parents) if p.is_symlink() and not p.exists()), folder)
        raise ValueError(f"cannot create the folder {str(folder)!r}: {str(broken)!r} is a broken symbolic link (to "
                         f"{os.readlink(broken) if broken.is_symlink() else '?'!r}); create its target or remove the "
                         "link.") from None
    except OSError as err:  # a read-only or virtual file system (/proc), no permission
        raise ValueError(f"cannot create the folder {str(folder)!r} ({err.strerror or err}); choose a folder you can "
                         "write to.") from None
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager yielding a temporary path that replaces ``path`` atomically on success.

    The temporary file lies in the target's folder (created if need be); on success it is fsynced and
    renamed onto ``path`` (``os.replace`` is atomic on POSIX and Windows); on error it is deleted and
    ``path`` is left untouched.

    Raises:
        ValueError: If ``path`` is an existing folder, or a folder on its way is an existing file.
    """
    path = Path(path)
    make_dirs(path.parent)
    if path.is_dir():
        raise ValueError(f"cannot write the file {str(path)!r}: a folder of that name exists; choose another path.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # the temporary file's name says nothing to the user: name the file asked for
        raise ValueError(f"cannot write the file {str(path)!r} ({err.strerror or err}); choose a folder you can "
                         "write to.") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def json_default(value):
    """JSON for numpy scalars (``np.float32(0.5)`` -> 0.5): ``json.dumps(..., default=json_default)``."""
    if hasattr(value, "dtype") and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON (numpy scalars as numbers), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=True, default=json_default)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``"sha256"``, ``"md5"``, ...), read in blocks.

    Raises:
        TypeError: ``path`` is not a string or path.
        ValueError: ``path`` is a folder.
        FileNotFoundError: nothing exists at ``path`` (the message names it).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a string or path, got {type(path).__name__}.")
    if os.path.isdir(path):
        raise ValueError(f"{str(path)!r} is a folder; pass the file to hash (e.g. its model.safetensors).")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no file {str(path)!r} to hash: it does not exist; check the path (a checkpoint's "
                                "weights are <folder>/model.safetensors).")
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()


def output_folder(text: str) -> Path:
    """An argparse ``type``: a folder to write into (created if missing); a path through an existing file is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name the output folder (created if missing).")
    path = Path(text)
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is an existing file" if folder == path else f"lies inside {str(folder)!r}, an existing file"
                raise argparse.ArgumentTypeError(f"{text!r} {what}, not a folder; pass a folder (created if missing).")
            break
    return path
