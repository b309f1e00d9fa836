"""Safe checkpoints: weights in safetensors plus a JSON sidecar; nothing is ever unpickled.

``save_checkpoint(model, "run/model.safetensors", metadata)`` writes

- ``run/model.safetensors``: the state dict (no code, no pickle);
- ``run/model.json``: the sidecar ``{"format", "format_version", "model": {"name", "config"},
  "weights": {"file", "sha256"}, "attrbound_version", "torch_version", "metadata": {...}}``, where
  ``metadata`` holds what the caller records (training method and hyperparameters, data set and its
  fingerprint, seed, final metrics).

``load_checkpoint(path)`` rebuilds the model from the registry (``attrbound_lite.models.MODELS``), checks
the weights against the sidecar's sha256 and loads them strictly. Both files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save_file
from torch import nn

from ._checks import json_leaves
from ._io import atomic_path, file_digest, json_default, write_json
from .models import build_model, model_spec
from .runtime import resolve_device

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_paths", "sha256_file"]

FORMAT, FORMAT_VERSION = "attrbound-checkpoint", 1
# The safetensors header's one metadata key (one: safetensors writes several in an arbitrary order, and the bytes
# identify a checkpoint): the format and the model the weights were saved as, as canonical JSON.
HEADER_KEY = "attrbound"


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 digest of a file's bytes.

    Args:
        path: The file to hash (read in blocks).

    Returns:
        The digest as a 64-character lowercase hex string.

    Raises:
        TypeError: ``path`` is not a string or path.
        ValueError: ``path`` is a folder.
        FileNotFoundError: nothing exists at ``path`` (the message names it and what to check).
    """
    return file_digest(path, "sha256")


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(weights, sidecar)`` file paths of a checkpoint.

    Args:
        path: The checkpoint's weights file (``.safetensors``), its sidecar (``.json``), or a folder holding
            ``model.safetensors`` (a path without a suffix that does not exist yet names a folder).

    Returns:
        ``(weights, sidecar)``: the weights path and the sidecar path (the weights path with suffix ``.json``).
        Neither needs to exist.

    Raises:
        TypeError: If ``path`` is not a string or path.
        ValueError: If ``path`` is empty (it would name the current folder).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a checkpoint path must be a string or a pathlib.Path, got {type(path).__name__} {path!r}.")
    if not os.fspath(path):
        raise ValueError("a checkpoint path is empty; pass the weights file (e.g. 'run/model.safetensors') or its "
                         "folder ('.' for the current one).")
    path = Path(path)
    if path.is_dir() or (path.suffix == "" and not path.exists()):  # a folder, or one to create ('runs/new_run')
        path = path / "model.safetensors"
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    return path, path.with_suffix(".json")


def save_checkpoint(model: nn.Module, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save a registered model and its metadata as safetensors weights plus a JSON sidecar.

    The sidecar is written after the weights and carries their sha256, so an interrupted save is detected
    at load time. Both files are written atomically.

    Args:
        model: A model of a registered architecture (``attrbound_lite.models.MODELS``) with a ``.config``.
        path: The weights file (must end in ``.safetensors``) or a folder (``<folder>/model.safetensors``).
        metadata: JSON-serialisable record of the run (training method and hyperparameters, data set and
            fingerprint, seed, final metrics). Default ``None`` stores ``{}``.

    Returns:
        The path of the weights file written.

    Raises:
        ValueError: If ``path`` is empty, does not end in ``.safetensors`` (and is not a folder) or cannot be written,
            ``model`` is not a registered architecture, has weights on the meta device or NaN or infinite weights.
        TypeError: If ``metadata`` is not a JSON-serialisable dict, or ``path`` not a string or path.
    """
    weights, sidecar = checkpoint_paths(path)
    if weights.suffix != ".safetensors":
        raise ValueError(f"checkpoint path {str(path)!r} must end in .safetensors (or name a folder).")
    spec = model_spec(model)
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"checkpoint metadata must be a dict (a JSON object) or None, got {type(metadata).__name__}.")
    _check_metadata(metadata or {})
    state = model.state_dict()
    if any(v.is_meta for v in state.values()):
        raise ValueError("the model has weights on the meta device (no values: built under torch.device('meta') or "
                         "loaded lazily); materialise them (model.to_empty(device='cpu') and load a state_dict) "
                         "before saving.")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    _check_finite(state, "the model's weights hold", "not saved: train it again (a lower lr?) or load a sound copy.")
    try:
        with atomic_path(weights) as tmp:
            # one metadata key: safetensors writes a header map in an arbitrary order, so two keys would make the
            # bytes (and the sha256 a sweep identifies a checkpoint by) differ between saves of the same weights
            save_file(state, str(tmp), metadata={HEADER_KEY: _canonical(
                {"format": FORMAT, "model": spec, "metadata_sha256": _metadata_sha256(metadata or {})})})
            digest = sha256_file(tmp)  # of the bytes this call wrote (another save to the same path may land first)
        write_json(sidecar, {
            "format": FORMAT, "format_version": FORMAT_VERSION, "model": spec,
            "weights": {"file": weights.name, "sha256": digest},
            "attrbound_version": _version(), "torch_version": torch.__version__, "metadata": metadata or {},
        })
    except OSError as err:
        raise ValueError(f"cannot write the checkpoint {weights} ({err.strerror or err}); save it into a folder you "
                         "can write to.") from None
    return weights


def _canonical(value) -> str:
    """``value`` as canonical JSON (sorted keys, no spaces): equal values, equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _metadata_sha256(metadata: dict) -> str:
    """The sha256 of the run's metadata as canonical JSON (what the header records of the sidecar's ``metadata``)."""
    text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_header(blob: bytes, model: dict, weights: Path, sidecar: Path, metadata: dict | None = None) -> None:
    """The model the weights were saved as (their safetensors header, ``HEADER_KEY``) is the one the sidecar describes.

    The sha256 ties the weights to the sidecar, not the sidecar's architecture (an edited ``beta`` or ``activation``
    would build another network around the same weights). Files written before the header carried the model (the
    committed zoo) have no such key: there the sidecar is checked against the sha256 a ``manifest.json`` beside it
    records (a zoo folder's), where there is one.
    """
    try:
        size = int.from_bytes(blob[:8], "little")
        saved = json.loads(blob[8:8 + size]).get("__metadata__", {}).get(HEADER_KEY)
    except (ValueError, AttributeError):
        return  # not a readable header: safetensors' own reader names the problem next
    if saved is None:  # an older file: a zoo folder's manifest.json still records the sidecar's sha256
        manifest = weights.parent / "manifest.json"
        try:
            recorded = json.loads(manifest.read_text()).get("sidecar_sha256") if manifest.is_file() else None
        except (ValueError, OSError, AttributeError):
            recorded = None
        if isinstance(recorded, str) and sha256_file(sidecar) != recorded:
            raise ValueError(f"sidecar {sidecar} does not match the sha256 that {manifest} records: it was edited. "
                             f"Restore it (git checkout -- {sidecar}), or build the model you want, load the weights "
                             "into it (load_state_dict) and save it with save_checkpoint.")
        return
    try:
        header = json.loads(saved)
        saved_model, saved_metadata = header.get("model"), header.get("metadata_sha256")
    except (ValueError, AttributeError):
        raise ValueError(f"the header of {weights.name} is corrupt ({HEADER_KEY!r} is not JSON); re-create the "
                         "checkpoint.") from None
    if saved_metadata is not None and metadata is not None and _metadata_sha256(metadata) != saved_metadata:
        raise ValueError(f"the 'metadata' section of sidecar {sidecar} was edited after {weights.name} was saved (its "
                         "sha256 differs from the one the weights' header records): the run's data set, training "
                         "method and settings can no longer be trusted. Restore the sidecar, or load the weights "
                         "into a model and save it again with the metadata you mean (save_checkpoint).")
    if _canonical(saved_model) != _canonical(model):
        now, was = _fields(model), _fields(saved_model)
        changed = "; ".join(f"{key}: {now.get(key)!r} in the sidecar, {was.get(key)!r} saved"
                            for key in sorted(set(now) | set(was)) if _canonical(now.get(key)) != _canonical(
                                was.get(key)))
        raise ValueError(f"sidecar {sidecar} does not describe the model {weights.name} was saved as ({changed}): "
                         "it was edited or belongs to other weights. Restore it, or build the model you want, load "
                         "the weights into it (load_state_dict) and save it with save_checkpoint.")


def _fields(spec) -> dict:
    """A model spec's name and config entries in one flat dict (what an edit of the sidecar can change)."""
    spec = spec if isinstance(spec, dict) else {}
    config = spec.get("config")
    return {"name": spec.get("name"), **(config if isinstance(config, dict) else {})}


def _check_finite(state: dict, what: str, fix: str) -> None:
    """Refuse a state dict with NaN or infinite floating-point values, naming the tensors."""
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise ValueError(f"{what} NaN or infinite values in {bad[:4]}{' ...' if len(bad) > 4 else ''}; {fix}")


def _check_metadata(value, where: str = "metadata") -> None:
    """Metadata that round-trips through standard JSON: string keys, finite numbers, serialisable values."""
    for place, leaf in json_leaves(value, where, "checkpoint"):
        try:
            json.dumps(leaf, allow_nan=False, default=json_default)
        except TypeError as err:
            raise TypeError(f"checkpoint {place} must be JSON-serialisable: {err}.") from None
        except ValueError:
            raise ValueError(f"checkpoint {place} is {leaf!r}, which standard JSON cannot hold; store a finite "
                             "number, None or a string such as 'nan'.") from None


def _version() -> str:
    from . import __version__
    return __version__


def _refuse_non_safetensors(weights: Path) -> None:
    with open(weights, "rb") as fh:
        head = fh.read(9)
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        raise ValueError(f"{weights} is a pickle (a torch.save archive), not safetensors. attrbound never "
                         "unpickles checkpoints: loading a pickle can run arbitrary code. Convert it where you "
                         "trust it: model.load_state_dict(torch.load(f, weights_only=True)); "
                         "attrbound_lite.checkpoints.save_checkpoint(model, 'model.safetensors', metadata).")
    if len(head) < 9 or head[8:9] != b"{":
        raise ValueError(f"{weights} is not a safetensors file (corrupt or truncated?); re-create the checkpoint.")


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load a checkpoint written by ``save_checkpoint``: rebuild the model and load its weights strictly.

    Nothing is ever unpickled. Refuses pickles, a missing or foreign sidecar, weights that do not match the
    sidecar's sha256, and weights that do not fit the recorded architecture.

    Args:
        path: The weights file, the sidecar, or a folder holding ``model.safetensors`` (see
            ``checkpoint_paths``).
        device: Where to put the model (``runtime.resolve_device``: ``None`` or ``"auto"``, CUDA when available).
            Default ``"cpu"``.

    Returns:
        ``(model, sidecar)``: the model in eval mode on ``device``, in the floating-point dtype of the saved weights
        (a float64 model comes back float64, bit for bit), and the sidecar as a dict (``"metadata"``
        holds what ``save_checkpoint`` recorded).

    Raises:
        FileNotFoundError: If the weights file or its sidecar is missing.
        ValueError: If the weights are a pickle or not safetensors, the sidecar is invalid, foreign or of a
            newer format version or describes a model that cannot be built, the sha256 does not match, the weights do
            not fit the architecture, or the device is unknown.
    """
    weights, sidecar = checkpoint_paths(path)
    if not weights.is_file():
        raise FileNotFoundError(f"no checkpoint weights at {weights}.")
    _refuse_non_safetensors(weights)
    if not sidecar.is_file():
        raise FileNotFoundError(f"{weights} has no sidecar {sidecar.name}: attrbound needs it to rebuild the model "
                                "(name and config); save checkpoints with save_checkpoint.")
    try:
        meta = json.loads(sidecar.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"sidecar {sidecar} is not valid JSON ({err}); the checkpoint is corrupt.") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{sidecar} is not an attrbound checkpoint sidecar (format {FORMAT!r} expected).")
    if not isinstance(meta.get("format_version"), int) or isinstance(meta.get("format_version"), bool):
        raise ValueError(f"{sidecar} has no integer format_version; the checkpoint is corrupt.")
    if not 1 <= meta["format_version"]:
        raise ValueError(f"{sidecar} has format version {meta['format_version']}; versions start at 1, so the "
                         "checkpoint is corrupt.")
    if meta["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{sidecar} has format version {meta['format_version']}; this attrbound reads up to "
                         f"{FORMAT_VERSION}. Upgrade attrbound_lite.")
    for key in ("model", "weights", "metadata"):
        if not isinstance(meta.get(key), dict):
            raise ValueError(f"sidecar {sidecar} lacks the {key!r} section (a JSON object); the checkpoint is "
                             "corrupt.")
    if not isinstance(meta["model"].get("config", {}), dict):
        raise ValueError(f"sidecar {sidecar}: model.config must be a JSON object; the checkpoint is corrupt.")
    blob = weights.read_bytes()  # hashed and parsed from the same bytes
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta["weights"].get("sha256"):
        raise ValueError(f"{weights.name} does not match its sidecar (sha256 {digest[:12]}..., sidecar records "
                         f"{str(meta['weights'].get('sha256'))[:12]}...): the weights were changed or the save was "
                         "interrupted. Re-create the checkpoint.")
    _check_header(blob, meta["model"], weights, sidecar, meta["metadata"])
    device = resolve_device(device)  # an unknown device is refused before the model is built
    if not isinstance(meta["model"].get("name"), str):
        raise ValueError(f"sidecar {sidecar}: model.name must be a string, got {meta['model'].get('name')!r}; the "
                         "checkpoint is corrupt.")
    try:
        model = build_model(meta["model"].get("name"), **meta["model"].get("config", {}))
    except ValueError as err:
        raise ValueError(f"sidecar {sidecar} does not describe a model this attrbound builds: {err} The checkpoint "
                         "is corrupt or of another version; re-create it.") from None
    try:
        state = safetensors_load(blob)
    except SafetensorError as err:
        raise ValueError(f"cannot read {weights}: {err}.") from None
    wrong = sorted(name for name, t in state.items() if not t.is_floating_point())
    if wrong:  # load_state_dict would cast integers into the float model silently
        raise ValueError(f"the weights in {weights.name} hold tensors that are not floating point ({wrong[:4]}): "
                         "they are not the weights of an attrbound model; re-create the checkpoint.")
    _check_finite(state, f"the weights in {weights.name} hold", "the checkpoint is corrupt or from a diverged run; "
                  "re-create it.")
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(dtypes) == 1:  # the saved precision (a float64 model stays float64: load_state_dict would cast it)
        model = model.to(dtypes.pop())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"the weights in {weights.name} do not fit model {meta['model']['name']!r} with config "
                         f"{meta['model'].get('config')}: {err}") from None
    _check_normalisation(model, sidecar)
    return model.to(device).eval(), meta


def _check_normalisation(model: nn.Module, sidecar: Path) -> None:
    """The sidecar's mean and std are the ``Normalize`` buffers the weights hold (an edited sidecar would disagree)."""
    config, first = getattr(model, "config", {}), next(iter(model.children()), None)
    if "mean" not in config or not hasattr(first, "mean"):
        return
    for name in ("mean", "std"):
        buffer = getattr(first, name).detach()
        stored = buffer.double().cpu().reshape(-1)
        # built in float32, then maybe rounded to the model's dtype (float16, bfloat16) or widened (float64)
        rtol = 2 * max(torch.finfo(buffer.dtype).eps, torch.finfo(torch.float32).eps)
        if not torch.allclose(stored, torch.tensor(config[name], dtype=torch.float64), rtol=rtol, atol=0):
            raise ValueError(f"sidecar {sidecar} says {name}={config[name]} but the weights hold the normalisation "
                             f"{stored.tolist()}: the sidecar was edited; re-create the checkpoint with "
                             "save_checkpoint.")
