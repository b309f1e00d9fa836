"""Resumable, sharded bound-validation sweeps described by a YAML file.

    python -m attrbound_lite.sweep CONFIG --out DIR            # or: attrbound sweep CONFIG --out DIR
    torchrun --nproc_per_node=N -m attrbound_lite.sweep CONFIG --out DIR
    attrbound report DIR

The work is cut into shards: a shard is a block of ``shard_size`` consecutive samples of one model, with
every (attribution, norm, eps, attack, restart) of those samples inside (``experiments.validate_bounds``).
Shard k of model m draws its randomness from ``derive_seed(seed, m, k)``, so its rows do not depend on
which process runs it, nor when. Each finished shard is written atomically to
``DIR/shards/<model>/shard-<k>.parquet``; a shard file exists completely or not at all. Rerunning the same
command after any interruption (SIGKILL included) skips the finished shards and yields the same final
table, ``DIR/results.parquet`` (rows sorted by ``experiments.KEY_COLUMNS``; timing columns aside, equal to
an uninterrupted run's). ``DIR/manifest.json`` records the config's hash, the shards and their status; a
different config in an existing ``DIR`` is refused.

Under ``torchrun`` (``WORLD_SIZE > 1``: ``torch.distributed`` with gloo on CPU, nccl on CUDA) rank 0
checks the folder, trains the recipe models and writes the manifest; the ranks then take the pending
shards round-robin, each writing its own shard files, and after a barrier rank 0 merges them. Every rank
must see ``DIR`` (a shared file system across nodes).

Config (YAML; unknown keys and bad values are refused with their key path, e.g.
``attacks[1].steps: must be a positive integer, got 0``). An example; where it differs from the defaults,
these are ``shard_size: 64``, ``restarts: 1``, ``norms: [l2, linf]``, ``attributions: [saliency]``::

    seed: 0                        # base of every derived seed
    shard_size: 16                 # samples per shard
    batch_size: null               # samples per batch inside a shard (null: the whole shard)
    device: auto                   # auto (cuda if available, else cpu), cpu, cuda, cuda:N
    surrogate_beta: null           # softplus surrogate for ReLU / max-pool models
    data: {name: mnist, split: test, n_samples: 64, subset_seed: null, root: null, mirror: null, download: true}
    models:
      - {name: cnn, checkpoint: runs/cnn/model.safetensors}      # relative paths: from the config's folder
      - name: cnn-small                                          # or a recipe, trained once into DIR/models/
        model: {width: 0.25, activation: softplus, beta: 10.0, pool: avg}
        train: {subset: 2048, method: natural, epochs: 1}        # + any other train() option
    norms: [l2, linf]
    eps: {l2: [0.01, 0.1], linf: [0.001, 0.01]}                  # or one list for every norm
    attributions: [saliency, {name: integrated_gradients, n_steps: 16}]
    restarts: 2
    attacks:
      - {type: pgd, steps: 20, relative_alpha: 0.25}             # alpha = relative_alpha * eps
      - {type: pgd, objective: cosine, steps: 20}
      - {type: ifia, steps: 20, k: 78}
    bound: {method: lanczos, tol: 1.0e-4, max_iter: null, max_dense_n: 4096, sign_iters: 20}
    tolerance: {rtol: 0.01, cosine_atol: 1.0e-3}

``data.subset_seed: null`` takes the first ``n_samples`` of the split, an int a seeded random subset.
``data.root``, ``data.mirror``, ``data.download`` and ``device`` say where to read and run, not what to
compute: they are left out of the config hash (a sweep may resume elsewhere), except the device type
(CPU and CUDA draw different random streams: a CPU sweep does not resume on a GPU). A checkpoint enters the
hash by the sha256 of its weights, not by its path.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from ._io import atomic_path, write_json
from .attributions import ATTRIBUTIONS
from .bounds import MAX_EXACT_N
from .experiments import ATTACK_TYPES, KEY_COLUMNS, ROW_COLUMNS, AttackSpec, summarize, validate_bounds
from .data import DATASET_INFO, DATASETS
from .training import DISSIMILARITIES, METHODS, TrainConfig, derive_seed

__all__ = ["run_sweep", "report", "load_config", "plan_shards", "config_hash", "SweepConfigError", "SweepReport",
           "Shard", "add_subcommands", "cmd_sweep", "cmd_report", "main"]

FORMAT, FORMAT_VERSION = "attrbound-sweep", 1
PAPER_ATTACKS = 10_000_000
_TIMEOUT = datetime.timedelta(hours=24)  # how long a rank may wait at a barrier (the slowest rank's shards)
_REQUIRED = object()
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SPLIT_SIZES = {name: info["sizes"] for name, info in DATASET_INFO.items()}
_PIXELS = {name: info["shape"][1] * info["shape"][2] for name, info in DATASET_INFO.items()}  # of a saliency map

class SweepConfigError(ValueError):
    """An invalid sweep config; the message starts with the key path of the offending entry."""


# ----------------------------------------------------------------------------------------- validation
def _fail(path: str, problem: str):
    raise SweepConfigError(f"{path}: {problem}")


def _join(path: str, key) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def _keys(value, path: str, allowed: Mapping[str, Any]) -> dict:
    """The mapping ``value`` with defaults filled in; unknown or missing required keys are refused."""
    if not isinstance(value, Mapping):
        _fail(path or "config", f"must be a mapping, got {type(value).__name__} {value!r}")
    for key in value:
        if key not in allowed:
            _fail(_join(path, key), f"unknown key; allowed keys here: {', '.join(allowed)}")
    for key, default in allowed.items():
        if default is _REQUIRED and key not in value:
            _fail(_join(path, key), "missing (required)")
    return {key: value.get(key, default) for key, default in allowed.items()}


def _int(value, path: str, minimum: int = 1, none: bool = False):
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        _fail(path, f"must be {kind}{' or null' if none else ''}, got {value!r}")
    return value


def _float(value, path: str, positive: bool = True, none: bool = False):
    if value is None and none:
        return None
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or (positive and value == 0):
        kind = "a positive number" if positive else "a non-negative number"
        _fail(path, f"must be {kind}{' or null' if none else ''}, got {value!r}")
    return float(value)


def _choice(value, path: str, choices) -> str:
    if value not in choices:
        _fail(path, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def _list(value, path: str) -> list:
    if not isinstance(value, list) or not value:
        _fail(path, f"must be a non-empty list, got {value!r}")
    return value


def _path(value, path: str, base: Path, none: bool = True) -> str | None:
    if value is None and none:
        return None
    if not isinstance(value, str) or not value:
        _fail(path, f"must be a path (a string), got {value!r}")
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


_TRAIN_CHECKS: dict[str, Callable] = {
    "method": lambda v, p: _choice(v, p, METHODS),
    "epochs": _int, "batch_size": _int, "steps": _int, "ig_steps": _int,
    "lr": _float, "eps": lambda v, p: _float(v, p, none=True), "alpha": lambda v, p: _float(v, p, none=True),
    "surrogate_beta": lambda v, p: _float(v, p, none=True),
    "weight_decay": lambda v, p: _float(v, p, positive=False), "lam": lambda v, p: _float(v, p, positive=False),
    "optimizer": lambda v, p: _choice(v, p, ("adam", "sgd")), "norm": lambda v, p: _choice(v, p, ("l2", "linf")),
    "dissimilarity": lambda v, p: _choice(v, p, DISSIMILARITIES),
    "attribution": lambda v, p: _choice(v, p, tuple(ATTRIBUTIONS)), "seed": lambda v, p: _int(v, p, 0),
}


def _model_entry(value, path: str, cfg: dict, base: Path) -> dict:
    entry = _keys(value, path, {"name": _REQUIRED, "checkpoint": None, "train": None, "model": None})
    if not isinstance(entry["name"], str) or not _NAME.match(entry["name"]):
        _fail(_join(path, "name"), f"must be a name of letters, digits, '_', '-', '.' (a folder name), got "
              f"{entry['name']!r}")
    if (entry["checkpoint"] is None) == (entry["train"] is None):
        _fail(path, "give exactly one of checkpoint (a saved model) or train (a recipe, with model)")
    if entry["checkpoint"] is not None:
        if entry["model"] is not None:
            _fail(_join(path, "model"), "only with train (a checkpoint records its own architecture)")
        entry["checkpoint"] = _path(entry["checkpoint"], _join(path, "checkpoint"), base, none=False)
        from .checkpoints import checkpoint_paths
        weights, sidecar = checkpoint_paths(entry["checkpoint"])
        if not weights.is_file() or not sidecar.is_file():
            _fail(_join(path, "checkpoint"), f"no checkpoint at {weights} (with its sidecar {sidecar.name}); save "
                  "models with attrbound_lite.checkpoints.save_checkpoint or `attrbound train`")
        del entry["train"], entry["model"]
        return entry
    train_path = _join(path, "train")
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    defaults.update(seed=cfg["seed"], dataset=cfg["data"]["name"], subset=None)
    train = _keys(entry["train"], train_path, defaults)
    train["dataset"] = _choice(train["dataset"], _join(train_path, "dataset"), DATASETS)
    train["subset"] = _int(train["subset"], _join(train_path, "subset"), none=True)
    if train["subset"] is not None and train["subset"] > _SPLIT_SIZES[train["dataset"]]["train"]:
        _fail(_join(train_path, "subset"), f"must be at most {_SPLIT_SIZES[train['dataset']]['train']} (the "
              f"{train['dataset']} training split), got {train['subset']}")
    for key, check in _TRAIN_CHECKS.items():
        if key in train:
            train[key] = check(train[key], _join(train_path, key))
    options = {k: v for k, v in train.items() if k not in ("dataset", "subset")}
    try:
        TrainConfig(**options)
    except (TypeError, ValueError) as err:
        _fail(train_path, str(err))
    arch_path = _join(path, "model")
    arch = _keys(entry["model"] if entry["model"] is not None else {}, arch_path,
                 {"width": 1.0, "activation": "softplus", "beta": 10.0, "pool": "avg"})
    arch["width"] = _float(arch["width"], _join(arch_path, "width"))
    arch["beta"] = _float(arch["beta"], _join(arch_path, "beta"))
    arch["activation"] = _choice(arch["activation"], _join(arch_path, "activation"), ("softplus", "relu"))
    arch["pool"] = _choice(arch["pool"], _join(arch_path, "pool"), ("avg", "max"))
    from .models import model_for_dataset, nonsmooth_modules
    if cfg["surrogate_beta"] is None and nonsmooth_modules(model_for_dataset(train["dataset"], **arch)):
        _fail(arch_path, f"activation {arch['activation']!r} with pool {arch['pool']!r} is not smooth: its attribution "
              "Jacobian is zero or jumps, so the bounds refuse it. Use activation: softplus and pool: avg, or set "
              "surrogate_beta (e.g. 10.0) at the top level")
    if DATASET_INFO[train["dataset"]]["shape"] != DATASET_INFO[cfg["data"]["name"]]["shape"]:
        _fail(_join(train_path, "dataset"), f"{train['dataset']} images do not fit the evaluated data set "
              f"{cfg['data']['name']}")
    entry["train"], entry["model"] = train, arch
    del entry["checkpoint"]
    return entry


def _attack_entry(value, path: str, cfg: dict) -> dict:
    entry = _keys(value, path, {"type": _REQUIRED, "name": None, "steps": 20, "relative_alpha": None,
                                "objective": "euclidean", "k": None, "restarts": None})
    entry["type"] = _choice(entry["type"], _join(path, "type"), ATTACK_TYPES)
    if entry["name"] is not None and (not isinstance(entry["name"], str) or not _NAME.match(entry["name"])):
        _fail(_join(path, "name"), f"must be a label of letters, digits, '_', '-', '.', got {entry['name']!r}")
    entry["steps"] = _int(entry["steps"], _join(path, "steps"))
    entry["relative_alpha"] = _float(entry["relative_alpha"], _join(path, "relative_alpha"), none=True)
    entry["restarts"] = _int(entry["restarts"], _join(path, "restarts"), none=True)
    if entry["type"] == "pgd":
        entry["objective"] = _choice(entry["objective"], _join(path, "objective"), ("euclidean", "cosine"))
        if entry["k"] is not None:
            _fail(_join(path, "k"), "only for type ifia")
    else:
        if entry["objective"] != "euclidean":
            _fail(_join(path, "objective"), "only for type pgd (IFIA uses the top-k objective)")
        pixels = _PIXELS[cfg["data"]["name"]]
        entry["k"] = _int(entry["k"], _join(path, "k"), none=True)
        if entry["k"] is not None and entry["k"] > pixels:
            _fail(_join(path, "k"), f"must be at most {pixels} (the pixels of a {cfg['data']['name']} saliency map), "
                  f"got {entry['k']}")
        entry["k"] = entry["k"] or max(1, round(0.1 * pixels))
    # Defaults spelled out, so that equivalent configs have the same hash.
    entry["restarts"] = entry["restarts"] or cfg["restarts"]
    entry["relative_alpha"] = entry["relative_alpha"] or (0.25 if entry["type"] == "pgd" else 0.125)
    return entry


def load_config(source: str | os.PathLike | Mapping) -> dict:
    """The validated config with every default filled in (a plain, JSON-serialisable dict), from a YAML file
    or a mapping. Relative paths are taken from the YAML file's folder (from the working directory for a
    mapping). Raises ``SweepConfigError`` naming the key path of the first problem."""
    if isinstance(source, Mapping):
        raw, base, where = dict(source), Path.cwd(), "sweep config"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no sweep config at {path}.")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise SweepConfigError(f"{path} is not valid YAML: {err}") from None
        base, where = path.resolve().parent, str(path)
    try:
        return _validate(raw, base)
    except SweepConfigError as err:
        raise SweepConfigError(f"{where}: {err}") from None


def _validate(raw, base: Path) -> dict:
    cfg = _keys(raw, "", {"seed": 0, "shard_size": 64, "batch_size": None, "device": "auto", "surrogate_beta": None,
                          "data": _REQUIRED, "models": _REQUIRED, "norms": ["l2", "linf"], "eps": _REQUIRED,
                          "attributions": ["saliency"], "restarts": 1, "attacks": _REQUIRED, "bound": {},
                          "tolerance": {}})
    cfg["seed"] = _int(cfg["seed"], "seed", 0)
    cfg["shard_size"] = _int(cfg["shard_size"], "shard_size")
    cfg["batch_size"] = _int(cfg["batch_size"], "batch_size", none=True) or cfg["shard_size"]
    if not isinstance(cfg["device"], str) or not re.match(r"^(auto|cpu|cuda(:\d+)?)$", cfg["device"]):
        _fail("device", f"must be auto, cpu, cuda or cuda:N, got {cfg['device']!r}")
    cfg["surrogate_beta"] = _float(cfg["surrogate_beta"], "surrogate_beta", none=True)
    cfg["restarts"] = _int(cfg["restarts"], "restarts")

    data = _keys(cfg["data"], "data", {"name": _REQUIRED, "split": "test", "n_samples": _REQUIRED,
                                       "subset_seed": None, "root": None, "mirror": None, "download": True})
    data["name"] = _choice(data["name"], "data.name", DATASETS)
    data["split"] = _choice(data["split"], "data.split", ("train", "test"))
    size = _SPLIT_SIZES[data["name"]][data["split"]]
    data["n_samples"] = _int(data["n_samples"], "data.n_samples")
    if data["n_samples"] > size:
        _fail("data.n_samples", f"must be at most {size} (the {data['name']} {data['split']} split), got "
              f"{data['n_samples']}")
    data["subset_seed"] = _int(data["subset_seed"], "data.subset_seed", 0, none=True)
    data["root"] = _path(data["root"], "data.root", base)
    data["mirror"] = _path(data["mirror"], "data.mirror", base)
    if not isinstance(data["download"], bool):
        _fail("data.download", f"must be true or false, got {data['download']!r}")
    cfg["data"] = data

    norms = _list(cfg["norms"], "norms")
    for i, norm in enumerate(norms):
        _choice(norm, f"norms[{i}]", ("l2", "linf"))
    if len(set(norms)) != len(norms):
        _fail("norms", f"has repeats: {norms}")
    eps = cfg["eps"]
    if isinstance(eps, Mapping):
        eps = _keys(eps, "eps", {norm: _REQUIRED for norm in norms})
    else:
        eps = {norm: eps for norm in norms}
    for norm, values in eps.items():
        where = f"eps.{norm}" if isinstance(cfg["eps"], Mapping) else "eps"
        values = [_float(v, f"{where}[{i}]") for i, v in enumerate(_list(values, where))]
        if len(set(values)) != len(values):
            _fail(where, f"has repeats: {values}")
        eps[norm] = values
    cfg["eps"] = eps

    attributions = []
    for i, item in enumerate(_list(cfg["attributions"], "attributions")):
        path = f"attributions[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        entry = _keys(item, path, {"name": _REQUIRED, "n_steps": None, "baseline": None,
                                   "internal_batch_size": None})
        _choice(entry["name"], _join(path, "name"), tuple(ATTRIBUTIONS))
        if entry["name"] == "integrated_gradients":
            entry["n_steps"] = _int(entry["n_steps"] if entry["n_steps"] is not None else 50, _join(path, "n_steps"))
            entry["baseline"] = _float(entry["baseline"], _join(path, "baseline"), positive=False, none=True)
            entry["internal_batch_size"] = _int(entry["internal_batch_size"], _join(path, "internal_batch_size"),
                                                none=True)
        else:
            for key in ("n_steps", "baseline", "internal_batch_size"):
                if entry[key] is not None:
                    _fail(_join(path, key), "only for integrated_gradients")
            entry = {"name": entry["name"]}
        attributions.append(entry)
    names = [a["name"] for a in attributions]
    if len(set(names)) != len(names):
        _fail("attributions", f"has repeats: {names}")
    cfg["attributions"] = attributions

    attacks = [_attack_entry(item, f"attacks[{i}]", cfg) for i, item in enumerate(_list(cfg["attacks"], "attacks"))]
    labels = [AttackSpec(**a).label for a in attacks]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            _fail(f"attacks[{i}].name", f"duplicate attack name {label!r}; give each attack a distinct name")
    cfg["attacks"] = attacks

    models = []
    for i, item in enumerate(_list(cfg["models"], "models")):
        entry = _model_entry(item, f"models[{i}]", cfg, base)
        if entry["name"] in [m["name"] for m in models]:
            _fail(f"models[{i}].name", f"duplicate model name {entry['name']!r}")
        models.append(entry)
    cfg["models"] = models

    bound = _keys(cfg["bound"], "bound", {"method": "lanczos", "tol": 1e-4, "max_iter": None,
                                          "max_dense_n": MAX_EXACT_N, "sign_iters": 20})
    bound["method"] = _choice(bound["method"], "bound.method", ("lanczos", "power", "exact"))
    bound["tol"] = _float(bound["tol"], "bound.tol")
    bound["max_iter"] = _int(bound["max_iter"], "bound.max_iter", none=True)
    bound["max_dense_n"] = _int(bound["max_dense_n"], "bound.max_dense_n", 0)
    bound["sign_iters"] = _int(bound["sign_iters"], "bound.sign_iters")
    cfg["bound"] = bound
    tolerance = _keys(cfg["tolerance"], "tolerance", {"rtol": 0.01, "cosine_atol": 1e-3})
    cfg["tolerance"] = {k: _float(v, f"tolerance.{k}", positive=False) for k, v in tolerance.items()}
    return cfg


# ----------------------------------------------------------------------------------------- identity, plan
def _identity(cfg: dict) -> dict:
    """What determines the results: the config without where data is read and where it runs; checkpoints
    by the sha256 of their weights."""
    from .checkpoints import checkpoint_paths, sha256_file

    ident = json.loads(json.dumps(cfg))
    for key in ("root", "mirror", "download"):
        ident["data"].pop(key)
    ident.pop("device")
    for model in ident["models"]:
        if "checkpoint" in model:
            weights, sidecar = checkpoint_paths(model.pop("checkpoint"))
            model["checkpoint_sha256"] = sha256_file(weights)
            if sidecar.is_file():  # the architecture the weights are loaded into
                model["checkpoint_model"] = json.loads(sidecar.read_text()).get("model")
    return ident


def config_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Shard:
    """Samples ``start:stop`` (positions in the evaluated data) of model ``model``; ``attacks``: its rows."""
    model: str
    index: int
    start: int
    stop: int
    seed: int
    attacks: int

    @property
    def id(self) -> str:
        return f"{self.model}/{self.index:05d}"

    @property
    def file(self) -> str:
        return f"shards/{self.model}/shard-{self.index:05d}.parquet"


def plan_shards(cfg: dict) -> list[Shard]:
    """Every shard of the sweep, model by model; shard k of model m is seeded with ``derive_seed(seed, m, k)``."""
    n, size = cfg["data"]["n_samples"], cfg["shard_size"]
    per_sample = len(cfg["attributions"]) * sum(len(v) for v in cfg["eps"].values()) * sum(
        a["restarts"] or cfg["restarts"] for a in cfg["attacks"])
    return [Shard(m["name"], k, start, min(start + size, n), derive_seed(cfg["seed"], m["name"], k),
                  (min(start + size, n) - start) * per_sample)
            for m in cfg["models"] for k, start in enumerate(range(0, n, size))]


def _diff(old, new, path: str = "") -> list[str]:
    """Key paths where two JSON-like values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), _join(path, k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in _diff(a, b, _join(path, i))]
    return [] if old == new else [f"{path or 'config'} ({json.dumps(old)} -> {json.dumps(new)})"]


# ----------------------------------------------------------------------------------------- distributed
class _Ranks:
    """The process group from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a no-op
    for a single process. Joins an existing group rather than creating a second one."""

    def __init__(self, device_name: str):
        import torch.distributed as dist

        self.dist, self.owned = dist, False
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = local = int(os.environ.get("LOCAL_RANK", "0"))
        if device_name == "auto":
            device_name = "cuda" if torch.cuda.is_available() else "cpu"
        if device_name.startswith("cuda:") and self.world > 1:
            raise ValueError(f"device {device_name!r} would put every rank on the same GPU; use device: cuda (each "
                             "rank takes the GPU of its LOCAL_RANK) or run a single process.")
        self.device = torch.device(f"cuda:{local}" if device_name == "cuda" else device_name)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if dist.is_available() and dist.is_initialized():
            self.world, self.rank = dist.get_world_size(), dist.get_rank()
        elif self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo", timeout=_TIMEOUT)
            self.owned = True
        self.active = self.world > 1

    def barrier(self) -> None:
        if self.active:
            self.dist.barrier()

    def on_rank0(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on rank 0 and hand its result (or its error) to every rank."""
        result, error = None, None
        if self.rank == 0:
            try:
                result = fn()
            except Exception as err:  # re-raised below, on every rank
                error = err
        if self.active:
            box = [result, None if error is None else f"{type(error).__name__}: {error}"]
            self.dist.broadcast_object_list(box, src=0)
            result, message = box
            if message is not None and error is None:
                raise RuntimeError(f"rank 0 failed: {message}")
        if error is not None:
            raise error
        return result

    def close(self) -> None:
        if self.owned:
            self.dist.destroy_process_group()


# ----------------------------------------------------------------------------------------- the sweep
def _read_manifest(out: Path) -> dict | None:
    path = out / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); it is written atomically, so something else wrote it. "
                         "Delete the output folder to start over.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an attrbound sweep manifest; choose another output folder.")
    return manifest


def _prepare_folder(out: Path, cfg: dict, identity: dict, digest: str, shards: list[Shard], world: int) -> None:
    """Rank 0: refuse a folder holding another sweep, remove temporary files of interrupted writes, write the
    config and the manifest."""
    manifest = _read_manifest(out)
    if manifest is None and (out / "shards").exists():
        raise ValueError(f"{out} holds shard files but no manifest.json; it was not written by this version of "
                         "attrbound sweep. Choose another output folder.")
    if manifest is not None and manifest.get("config_hash") != digest:
        changes = _diff(manifest.get("identity", {}), identity)
        raise ValueError(f"{out} holds a sweep with a different config (hash {str(manifest.get('config_hash'))[:12]} "
                         f"there, {digest[:12]} now); differences: {'; '.join(changes[:8]) or 'unknown'}. Rerun with "
                         "the original config to resume, or pass another --out (or delete the folder) to start over.")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.rglob(".*.tmp"):  # temporary files of writes cut short by a kill
        stale.unlink(missing_ok=True)
    created = manifest.get("created") if manifest else None
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    _write_manifest(out, identity, digest, shards, world, "running", created)


def _write_manifest(out: Path, identity: dict, digest: str, shards: list[Shard], world: int, status: str,
                    created: str | None = None, run: dict | None = None) -> None:
    """The manifest, with every shard's status read from the folder; ``run`` (the record of a finished
    invocation: processes, shards and attacks run, compute seconds) is appended to ``runs``."""
    from . import __version__

    previous = _read_manifest(out) or {}
    runs = list(previous.get("runs", [])) + ([run] if run else [])
    rows = [{"id": s.id, "model": s.model, "index": s.index, "samples": [s.start, s.stop], "seed": s.seed,
             "attacks": s.attacks, "file": s.file, "status": "done" if (out / s.file).is_file() else "pending"}
            for s in shards]
    write_json(out / "manifest.json", {
        "format": FORMAT, "format_version": FORMAT_VERSION, "config_hash": digest, "identity": identity,
        "attrbound_version": __version__, "created": created or previous.get("created") or _now(),
        "updated": _now(), "status": status, "world_size": world, "n_shards": len(shards),
        "n_shards_done": sum(r["status"] == "done" for r in rows), "n_attacks_planned": sum(s.attacks for s in shards),
        "n_attacks_done": sum(r["attacks"] for r in rows if r["status"] == "done"), "runs": runs, "shards": rows})


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _load_data(cfg: dict):
    from .data import load_dataset

    d = cfg["data"]
    subset = d["n_samples"] if d["subset_seed"] is not None else None
    return load_dataset(d["name"], d["split"], root=d["root"], download=d["download"], mirror=d["mirror"],
                        subset=subset, seed=d["subset_seed"] or 0)


def _model_file(out: Path, entry: dict) -> Path:
    return Path(entry["checkpoint"]) if "checkpoint" in entry else out / "models" / entry["name"] / "model.safetensors"


def _train_recipes(out: Path, cfg: dict, device: torch.device, progress: bool) -> None:
    """Rank 0: train every recipe model that has no checkpoint in ``out/models/<name>/`` yet (resumable)."""
    from .checkpoints import checkpoint_paths, save_checkpoint
    from .data import load_dataset
    from .models import model_for_dataset
    from .training import train

    for entry in cfg["models"]:
        if "train" not in entry or all(p.is_file() for p in checkpoint_paths(_model_file(out, entry))):
            continue
        recipe = dict(entry["train"])
        dataset, subset = recipe.pop("dataset"), recipe.pop("subset")
        d = cfg["data"]
        data = load_dataset(dataset, "train", root=d["root"], download=d["download"], mirror=d["mirror"],
                            subset=subset, seed=recipe["seed"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg["seed"], "init", entry["name"]))
            model = model_for_dataset(dataset, **entry["model"])
        folder = _model_file(out, entry).parent
        method, epochs, batch_size, lr, eps = (recipe.pop(k) for k in ("method", "epochs", "batch_size", "lr", "eps"))
        history = train(model, data, method, epochs, batch_size, lr, eps, device=device, progress=progress,
                        checkpoint_dir=folder, **recipe)
        history.to_csv(folder / "history.csv", index=False)
        save_checkpoint(model, folder / "model.safetensors", {
            "training": history.attrs["config"], "sweep_recipe": entry,
            "data": {"name": data.name, "split": data.split, "size": len(data), "fingerprint": data.fingerprint}})


def _read_shard(out: Path, shard: Shard) -> pd.DataFrame:
    path = out / shard.file
    try:
        table = pd.read_parquet(path)
    except Exception as err:
        raise ValueError(f"cannot read shard file {path} ({err}); delete it and rerun to recompute that "
                         "shard.") from None
    if list(table.columns) != list(ROW_COLUMNS) or len(table) != shard.attacks:
        raise ValueError(f"shard file {path} has {len(table)} rows and columns {list(table.columns)[:4]}...; expected "
                         f"{shard.attacks} rows of the validate_bounds columns. Delete it and rerun to recompute it.")
    return table


def _merge(out: Path, shards: list[Shard]) -> pd.DataFrame:
    missing = [s.file for s in shards if not (out / s.file).is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} shard files are missing after every rank finished (e.g. {missing[0]}): "
                           "with several nodes, --out must be on a file system that every node shares.")
    table = pd.concat([_read_shard(out, s) for s in shards], ignore_index=True)
    return table.sort_values(list(KEY_COLUMNS), kind="mergesort", ignore_index=True)


def run_sweep(config: str | os.PathLike | Mapping, out_dir: str | os.PathLike, progress: bool = True
              ) -> pd.DataFrame | None:
    """Run (or resume) the sweep ``config`` (a YAML file or a mapping) into ``out_dir``; returns the merged
    table on rank 0 (``None`` on the other ranks). Works alone or under ``torchrun`` (see the module
    docstring); with ``progress`` rank 0 shows a progress bar with an ETA."""
    cfg = load_config(config)
    out = Path(out_dir)
    ranks = _Ranks(cfg["device"])
    try:
        return _run(cfg, out, ranks, progress and ranks.rank == 0)
    finally:
        ranks.close()


def _run(cfg: dict, out: Path, ranks: _Ranks, progress: bool) -> pd.DataFrame | None:
    from .checkpoints import load_checkpoint
    from .models import smooth_surrogate

    shards = plan_shards(cfg)
    loaded = []

    def setup():
        # CPU and CUDA draw different random streams: the device type is part of what a sweep computes.
        identity = {**_identity(cfg), "device_type": ranks.device.type}
        digest = config_hash(identity)
        _prepare_folder(out, cfg, identity, digest, shards, ranks.world)
        loaded.append(_load_data(cfg))  # fills the data cache once, before the other ranks read it
        _train_recipes(out, cfg, ranks.device, progress)
        pending = [i for i, s in enumerate(shards) if not (out / s.file).is_file()]
        return identity, digest, pending

    identity, digest, pending = ranks.on_rank0(setup)
    # One process per machine fills its data cache (rank 0 did already), then the others read it.
    data = loaded[0] if loaded else _load_data(cfg) if ranks.local_rank == 0 else None
    ranks.barrier()
    data = data if data is not None else _load_data(cfg)
    models = {}
    for entry in cfg["models"]:
        model, _ = load_checkpoint(_model_file(out, entry), device=ranks.device)
        try:
            smooth_surrogate(model, cfg["surrogate_beta"])
        except ValueError as err:
            raise ValueError(f"model {entry['name']!r}: {err}") from None
        models[entry["name"]] = model
    mine = [shards[i] for i in pending[ranks.rank::ranks.world]]
    if progress:
        done = len(shards) - len(pending)
        tqdm.write(f"sweep {out}: {len(shards)} shards, {done} already done, {len(pending)} to run on {ranks.world} "
                   f"process(es); {sum(s.attacks for s in shards):,} attacks in all")
    bar = tqdm(total=sum(s.attacks for s in mine), unit="attack", disable=not progress, dynamic_ncols=True,
               desc="sweep" if ranks.world == 1 else f"sweep (rank 0 of {ranks.world})")
    attributions = [(a["name"], {k: v for k, v in a.items() if k != "name"}) for a in cfg["attributions"]]
    ranks.barrier()  # every rank starts its shards together: the compute time below is the sweep's own
    started, t0 = _now(), time.perf_counter()
    try:
        for shard in mine:
            table = validate_bounds(
                models[shard.model], data, cfg["eps"], list(cfg["eps"]), attributions,
                [AttackSpec(**a) for a in cfg["attacks"]], restarts=cfg["restarts"],
                sample_ids=range(shard.start, shard.stop), surrogate_beta=cfg["surrogate_beta"],
                rtol=cfg["tolerance"]["rtol"], cosine_atol=cfg["tolerance"]["cosine_atol"],
                batch_size=cfg["batch_size"], seed=shard.seed, model_name=shard.model, bound_options=cfg["bound"],
                on_progress=bar.update)
            if len(table) != shard.attacks:
                raise RuntimeError(f"shard {shard.id} produced {len(table)} rows, {shard.attacks} planned.")
            with atomic_path(out / shard.file) as tmp:
                table.to_parquet(tmp, index=False)
            if ranks.rank == 0:
                _write_manifest(out, identity, digest, shards, ranks.world, "running")
    finally:
        bar.close()
    ranks.barrier()
    seconds = time.perf_counter() - t0
    if ranks.rank != 0:
        return None
    table = _merge(out, shards)
    with atomic_path(out / "results.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / "summary.csv") as tmp:
        summarize(table).to_csv(tmp, index=False)
    attacks = sum(shards[i].attacks for i in pending)
    _write_manifest(out, identity, digest, shards, ranks.world, "complete", run={
        "started": started, "world_size": ranks.world, "device": str(ranks.device), "shards_run": len(pending),
        "attacks_run": attacks, "compute_seconds": round(seconds, 3),
        "attacks_per_second": round(attacks / seconds, 2) if attacks else None})
    return table


# ----------------------------------------------------------------------------------------- report
@dataclass
class SweepReport:
    """What ``report`` found: the summary per group (``experiments.summarize``), the number of attacks
    run, and how much of the sweep is done."""
    summary: pd.DataFrame
    n_attacks: int
    n_attacks_planned: int
    shards_done: int
    shards_total: int
    complete: bool

    def __str__(self) -> str:
        state = "complete" if self.complete else "INCOMPLETE (rerun the sweep command to finish it)"
        head = (f"{state}: {self.shards_done} of {self.shards_total} shards, {self.n_attacks:,} of "
                f"{self.n_attacks_planned:,} attacks run ({self.n_attacks / PAPER_ATTACKS:.2%} of the paper's 10 "
                "million)")
        if self.summary.empty:
            return head
        columns = ["model", "attribution", "norm", "eps", "attack", "n_attacks", "n_kept", "violation_rate",
                   "ratio_euclidean_median", "ratio_euclidean_p95", "ratio_cosine_median", "ratio_cosine_p95"]
        table = self.summary[columns].rename(columns=lambda c: c.replace("ratio_", "").replace("euclidean", "euc")
                                             .replace("cosine", "cos").replace("violation_rate", "violations"))
        return (f"{head}\nviolation rate among attacks that kept the label; tightness = achieved / bound (Euclidean "
                f"distance; cosine: 1 - cos), median and 95th percentile\n"
                + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def report(out_dir: str | os.PathLike, *, quiet: bool = False, file: TextIO | None = None) -> SweepReport:
    """Summary tables and attack count of the sweep in ``out_dir``, printed (to ``file``, default stdout)
    unless ``quiet``. An unfinished sweep is summarised from its finished shards."""
    out = Path(out_dir)
    manifest = _read_manifest(out)
    if manifest is None:
        raise FileNotFoundError(f"{out} holds no sweep (no manifest.json); run `attrbound sweep CONFIG --out {out}`.")
    files = [out / s["file"] for s in manifest["shards"]]
    done = [f for f in files if f.is_file()]
    complete = manifest.get("status") == "complete" and (out / "results.parquet").is_file()
    if complete:
        table = pd.read_parquet(out / "results.parquet")
    elif done:
        table = pd.concat([pd.read_parquet(f) for f in done], ignore_index=True)
    else:
        table = pd.DataFrame(columns=list(ROW_COLUMNS))
    result = SweepReport(summarize(table) if len(table) else pd.DataFrame(), len(table),
                         int(manifest.get("n_attacks_planned", 0)), len(done), len(files), complete)
    if not quiet:
        print(f"sweep {out}: {result}", file=file or sys.stdout)
    return result


# ----------------------------------------------------------------------------------------- command line
def add_subcommands(subparsers) -> None:
    """Register ``sweep CONFIG --out DIR`` and ``report DIR`` on an argparse subparsers object."""
    s = subparsers.add_parser("sweep", help="validate the bounds against PGD and IFIA over a YAML-described grid "
                              "(resumable; runs under torchrun)")
    s.add_argument("config", type=Path, help="the sweep's YAML file")
    s.add_argument("--out", required=True, type=Path, help="output folder (rerun the same command to resume)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    r = subparsers.add_parser("report", help="print the summary tables and the attack count of a sweep")
    r.add_argument("out", type=Path, metavar="DIR", help="a sweep's output folder")


def cmd_sweep(args) -> int:
    table = run_sweep(args.config, args.out, progress=not args.no_progress)
    if table is not None:
        report(args.out)
    return 0


def cmd_report(args) -> int:
    report(args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attrbound_lite.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="the sweep's YAML file")
    parser.add_argument("--out", required=True, type=Path, help="output folder (rerun the same command to resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        return cmd_sweep(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"attrbound sweep: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
