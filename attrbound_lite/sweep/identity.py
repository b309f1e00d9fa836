"""What a sweep computes, as JSON, and its hash: the key of a sweep folder (``manifest.json``)."""

from __future__ import annotations

import hashlib
import json

__all__ = ["config_identity", "config_hash"]

# Training options added after sweep folders existed (the radius warm-up and augmentation of the reference zoo):
# at their defaults they change nothing, so they stay out of the identity and older sweeps keep their hash.
_ADDED_TRAINING_OPTIONS = {"warmup_epochs": 0.0, "augment": "none"}


def _identity(cfg: dict) -> dict:
    """What determines the results: the config without where data is read and where it runs.

    Checkpoints enter by the sha256 of their weights (and the architecture their sidecar records).
    """
    from ..checkpoints import checkpoint_paths, sha256_file

    ident = json.loads(json.dumps(cfg))
    for key in ("root", "mirror", "download"):
        ident["data"].pop(key)
    ident.pop("device")
    for key in ("chunk_size", "compile"):  # added later: left out at their defaults, so older sweeps keep their hash
        if ident[key] in (None, False):
            ident.pop(key)
    for model in ident["models"]:
        for key, default in _ADDED_TRAINING_OPTIONS.items():  # left out at their defaults: old hashes stay valid
            if key in model.get("train", {}) and model["train"][key] == default:
                del model["train"][key]
        if "checkpoint" in model:
            weights, sidecar = checkpoint_paths(model.pop("checkpoint"))
            model["checkpoint_sha256"] = sha256_file(weights)
            if sidecar.is_file():  # the architecture the weights are loaded into
                model["checkpoint_model"] = json.loads(sidecar.read_text()).get("model")
    return ident


def config_identity(cfg: dict, device_type: str) -> dict:
    """What a sweep hashes: its config without the data's location and the device, plus the device type.

    CPU and CUDA draw different random streams, so the device type is part of what a sweep computes; which
    device of that type runs it, and where the data is read from, are not (a sweep resumes elsewhere).

    Args:
        cfg: a config of ``load_config`` (every default filled in; the YAML file's own mapping is refused).
        device_type: ``"cpu"`` or ``"cuda"`` (``torch.device.type``).

    Returns:
        A JSON-serialisable dict; ``config_hash`` of it is the sweep's ``config_hash`` in its manifest.

    Raises:
        TypeError: ``cfg`` is not a config of ``load_config``.
    """
    from .config import check_loaded

    check_loaded(cfg, "config_identity")
    return {**_identity(cfg), "device_type": device_type}


def config_hash(identity: dict) -> str:
    """The sha256 of ``identity`` as canonical JSON: ``sha256(json.dumps(identity, sort_keys=True))``.

    Args:
        identity: the result of ``config_identity``.

    Returns:
        64 hex digits.
    """
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _join(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def _diff(old, new, path: str = "") -> list[str]:
    """Key paths where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), _join(path, k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in _diff(a, b, _join(path, i))]
    return [] if old == new else [f"{path or 'config'} ({json.dumps(old)} -> {json.dumps(new)})"]
