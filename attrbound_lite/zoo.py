"""The book's models: a training recipe is trained once, cached under a content key, and loaded afterwards.

    recipe = Recipe("mnist", "advaat", eps=0.1, epochs=2, n_train=4096)
    model, meta = get_model(recipe, "_build/models")      # trains (resumable) or loads the cached checkpoint

A ``Recipe`` names everything that determines the weights: data set, training subset and seed, the
architecture (the project's CNN for the data set, by default smooth: softplus, average pooling) and every
``TrainConfig`` field. Its ``key`` (``<dataset>-<method>[-eps<eps>]-<12 hex digits>``, a sha256 of the recipe
and of the source of the modules that determine the weights) names the folder ``root/<key>/`` holding
``model.safetensors`` and its sidecar (``checkpoints``; the recipe and the per-epoch history are in its
metadata). Training goes through ``training.train(checkpoint_dir=...)``, so an interrupted run resumes at its
last finished epoch. Chapters 4 to 7 of the book share one root (``book_store``), so a model is trained once
and reused by later chapters and later builds into the same folder, until its recipe or the training code
changes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .checkpoints import checkpoint_paths, load_checkpoint, save_checkpoint
from .training import TRAINING_PROTOCOLS, TrainConfig, derive_seed, train

__all__ = ["Recipe", "get_model", "model_folder", "training_history", "BOOK_PROFILES", "book_recipe", "book_store"]

# The book's training settings per profile (reproduction choices, stated in chapter 4).
#   ci:   CPU-sized: 2,048 training images, 2 epochs, a quarter-width smooth CNN, 5 inner steps, smaller eps
#         than RAR (its radii need long schedules), 4 IG points inside IG-NORM.
#   full: paper scale (meant for a GPU): the whole training split (CIFAR-10: all 50,000 images), RAR's eps
#         and inner PGD (TRAINING_PROTOCOLS), the full-width CNN.
BOOK_PROFILES = {
    "ci": dict(datasets=("mnist", "fashion-mnist", "cifar10-subset"), n_train=2048,
               epochs={"mnist": 2, "fashion-mnist": 2, "cifar10-subset": 2},
               eps={"mnist": 0.1, "fashion-mnist": 0.05, "cifar10-subset": 4 / 255},
               width=0.25, steps=5, ig_steps=4),
    "full": dict(datasets=("mnist", "fashion-mnist", "cifar10"), n_train=None,
                 epochs={"mnist": 20, "fashion-mnist": 20, "cifar10": 40},
                 eps={name: TRAINING_PROTOCOLS[name]["eps"] for name in ("mnist", "fashion-mnist", "cifar10")},
                 width=1.0, steps=None, ig_steps=10),
}


@dataclass(frozen=True)
class Recipe:
    """A training run. ``eps=None`` takes RAR's training radius of the data set (``TRAINING_PROTOCOLS``);
    ``n_train=None`` the whole training split, else a seeded subset of that size; ``model`` the keyword
    arguments of the data set's architecture (``models.model_for_dataset``); ``options`` other
    ``TrainConfig`` fields (``steps``, ``alpha``, ``lam``, ``ig_steps``, ``dissimilarity``, ...)."""

    dataset: str
    method: str = "natural"
    eps: float | None = None
    epochs: int = 1
    n_train: int | None = None
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    model: dict = field(default_factory=lambda: dict(width=0.25, activation="softplus", beta=10.0, pool="avg"))
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.dataset not in TRAINING_PROTOCOLS:
            raise ValueError(f"unknown data set {self.dataset!r} in a recipe; choose one of "
                             f"{sorted(TRAINING_PROTOCOLS)}.")
        unknown = set(self.options) - {f.name for f in dataclasses.fields(TrainConfig)}
        reserved = set(self.options) & {"method", "epochs", "batch_size", "lr", "eps", "seed"}
        if unknown or reserved:
            raise ValueError(f"recipe options {sorted(unknown | reserved)} are not TrainConfig fields (or are "
                             "recipe fields: give those directly); see attrbound_lite.training.TrainConfig.")
        self.train_config()  # validates method, eps, steps, ... with TrainConfig's own messages

    @property
    def train_eps(self) -> float | None:
        """The training radius (None for natural training)."""
        if self.method == "natural":
            return None
        return TRAINING_PROTOCOLS[self.dataset]["eps"] if self.eps is None else float(self.eps)

    def train_config(self) -> TrainConfig:
        return TrainConfig(method=self.method, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                           eps=self.train_eps, seed=self.seed, **self.options)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def key(self) -> str:
        """``<dataset>-<method>[-eps<eps>]-<hash>``; the hash covers the recipe and the source of the modules
        that determine the weights (``_CODE_FILES``), so a change of the training code retrains."""
        content = json.dumps({"recipe": self.to_dict(), "code": _code_digest()}, sort_keys=True)
        digest = hashlib.sha256(content.encode()).hexdigest()[:12]
        radius = "" if self.train_eps is None else f"-eps{self.train_eps:.4g}"
        return f"{self.dataset}-{self.method}{radius}-{digest}"


_CODE_FILES = ("zoo.py", "training.py", "models.py", "threat_models.py", "attributions.py", "data.py", "_checks.py")


@functools.cache
def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in _CODE_FILES)).hexdigest()


def book_recipe(profile: str, dataset: str, method: str, eps: float | None = None, **changes) -> Recipe:
    """The book's recipe for ``(dataset, method)`` in ``profile`` (``BOOK_PROFILES``); ``eps`` overrides the
    profile's training radius (chapter 7 varies it), ``changes`` other ``Recipe`` fields. Natural training
    ignores eps, so every chapter shares one natural model per data set."""
    if profile not in BOOK_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(BOOK_PROFILES)}.")
    p = BOOK_PROFILES[profile]
    if dataset not in p["datasets"]:
        raise ValueError(f"the {profile} profile trains on {p['datasets']}, not {dataset!r}.")
    options = {}
    if method != "natural":
        eps = p["eps"][dataset] if eps is None else eps
        protocol = TRAINING_PROTOCOLS[dataset]
        steps = p["steps"] or protocol["steps"]
        # RAR's step size scaled with the radius (full), or Madry's 2.5 eps / steps (ci)
        alpha = protocol["alpha"] * eps / protocol["eps"] if p["steps"] is None else 2.5 * eps / steps
        options = dict(steps=steps, alpha=alpha)
        if method == "ig_norm":
            options["ig_steps"] = p["ig_steps"]
    else:
        eps = None
    recipe = dict(dataset=dataset, method=method, eps=eps, epochs=p["epochs"][dataset], n_train=p["n_train"],
                  model=dict(width=p["width"], activation="softplus", beta=10.0, pool="avg"), options=options)
    recipe.update(changes)
    return Recipe(**recipe)


def book_store(kind: str, profile: str) -> Path:
    """Where the book keeps ``kind`` ("models", "sweeps", ...) for ``profile``: ``$ATTRBOUND_BOOK_OUT/<kind>/<profile>``
    while ``attrbound book`` runs, else ``<project>/_build/<kind>/<profile>`` (a notebook opened by hand
    reuses the models of the last build)."""
    base = os.environ.get("ATTRBOUND_BOOK_OUT") or Path(__file__).resolve().parents[1] / "_build"
    return Path(base) / kind / profile


def model_folder(recipe: Recipe, root: str | os.PathLike) -> Path:
    """``root/<recipe.key>``: where the recipe's checkpoint, history and training state live."""
    return Path(root) / recipe.key


def _train_data(recipe: Recipe, data_root, mirror):
    from .data import load_dataset

    return load_dataset(recipe.dataset, "train", root=data_root, mirror=mirror, subset=recipe.n_train,
                        seed=recipe.seed)


def get_model(recipe: Recipe, root: str | os.PathLike, *, device: str | torch.device | None = None,
              progress: bool = True, data_root: str | os.PathLike | None = None,
              mirror: str | os.PathLike | None = None) -> tuple[nn.Module, dict]:
    """``(model, sidecar)`` for ``recipe``: loaded from ``root/<key>/`` if trained before, else trained now
    (resuming an interrupted run) and saved there. The model is in eval mode on ``device`` (default: CUDA
    when available); ``sidecar["metadata"]`` holds the recipe, the training config, the per-epoch history
    (``training_history``) and the data set's fingerprint."""
    from .models import model_for_dataset

    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    folder = model_folder(recipe, root)
    weights, _ = checkpoint_paths(folder)
    if weights.is_file():
        model, meta = load_checkpoint(weights, device=device)
        if meta["metadata"].get("recipe") != recipe.to_dict():
            raise ValueError(f"{folder} holds a model of another recipe ({meta['metadata'].get('recipe')}); "
                             "delete the folder to retrain it.")
        return model, meta
    data = _train_data(recipe, data_root, mirror)
    with torch.random.fork_rng(devices=[]):
        # the initial weights follow the recipe alone (not the code digest of the key)
        torch.manual_seed(derive_seed(recipe.seed, "init", json.dumps(recipe.to_dict(), sort_keys=True)))
        model = model_for_dataset(recipe.dataset, **recipe.model)
    cfg = recipe.train_config().to_dict()
    method, epochs, batch_size, lr, eps = (cfg.pop(k) for k in ("method", "epochs", "batch_size", "lr", "eps"))
    history = train(model, data, method, epochs, batch_size, lr, eps, device=device, progress=progress,
                    checkpoint_dir=folder, **cfg)
    save_checkpoint(model, weights, {
        "recipe": recipe.to_dict(), "training": history.attrs["config"],
        "history": history.to_dict(orient="list"),
        "data": {"name": data.name, "split": data.split, "size": len(data), "fingerprint": data.fingerprint}})
    return load_checkpoint(weights, device=device)


def training_history(meta: dict) -> pd.DataFrame:
    """The per-epoch training history recorded in a zoo checkpoint's sidecar."""
    return pd.DataFrame(meta["metadata"]["history"])
