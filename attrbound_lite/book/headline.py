"""Chapter 7's headline evidence: IFIA at RAR's budget on every trained reference model, over seeds.

RAR (Wang & Kong's evaluation protocol) runs IFIA for 100 steps (50 on CIFAR-10) from 3 starts. That budget does not
fit the book's CI on a CPU (chapter 7's own runs use 20 x 1), so it is computed once, committed under ``results/``
and re-verified by CI on a sample of rows (``attrbound_lite.results``):

- every trained run (``zoo.SEEDS``, runs below ``zoo.accuracy_floor`` left out) of every reference recipe;
- per data set, the first ``N_IMAGES`` test images that every one of those runs classifies correctly, so that every
  comparison pairs by image, across methods and seeds;
- IFIA in the chapter's setting (``far_study.attack_settings``: RAR's radius and total step length, steered by IG of
  ``far_study.ATTACK_IG_STEPS`` points, the evaluated top-k) at RAR's steps and restarts, restarts nested as in
  chapter 7's budget grid (``budget.ifia_budget``: each image's starts come from its own random stream), so that a
  recomputed row equals the committed one whatever the batch;
- the random baseline on the same images: sign noise of the same radius (``evaluation.noise_per_image``).

Every row is one (run, image): the top-k intersection, Kendall's tau of the evaluated IG maps and whether the label
was kept, for the attack and for the noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import zoo
from ..data import load_dataset
from ..evaluation import noise_per_image
from ..results import ResultSpec, load_results
from .budget import ifia_budget, rar_budget
from .far_study import ATTACK_IG_STEPS, ATTACK_K, attack_settings, shared_images

__all__ = ["DATASETS", "METHODS", "N_IMAGES", "trained_runs", "rar_budget", "rar_attack", "SPEC", "load"]

DATASETS = ("mnist", "fashion-mnist", "cifar10-subset")
METHODS = ("natural", "pgd_at", "ig_norm", "aat", "advaat")
N_IMAGES = 256
EVAL_IG_STEPS = 100
SEED = 0
CHUNK = 32  # images attacked at once (x 3 restarts x the IG points of the steering map)
TOLERANCE = 0.03  # as the budget grid's: a sign step may turn a last-bit difference into another top-k pixel


def trained_runs(dataset: str) -> list[str]:
    """The zoo names of every training run of ``dataset``'s reference recipes that reached its accuracy floor."""
    names = [zoo.reference_name(dataset, m, seed=seed) for m in METHODS for seed in zoo.SEEDS]
    return [n for n in names
            if zoo.read_manifest(n)["evaluation"]["clean_accuracy"] >= zoo.accuracy_floor(zoo.REFERENCE[n])]


def rar_attack(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dataset: str, *, seed: int = SEED,
               chunk: int = CHUNK) -> pd.DataFrame:
    """IFIA at RAR's steps and restarts (chapter 7's setting), and sign noise of the same radius, image by image.

    Args:
        model: a smooth classifier of ``dataset``.
        x: (N, C, H, W) images in [0, 1] that ``model`` classifies correctly, on its device.
        y: (N,) their labels.
        dataset: the data set whose RAR settings apply.
        seed: seed of the attack's random starts and of the noise.
        chunk: images attacked at once (the result does not depend on it).

    Returns:
        One row per image: ``image`` (position in ``x``), ``topk_intersection``, ``kendall_tau`` and ``label_kept``
        of the attack (the best of RAR's restarts), and the same three of the noise (``noise_...``).
    """
    steps, restarts = rar_budget(dataset)
    settings = attack_settings(dataset, k=ATTACK_K)
    frames = []
    for start in range(0, len(y), chunk):
        part = slice(start, start + chunk)
        frame = ifia_budget(model, x[part], y[part], settings, [steps], [restarts], eval_ig_steps=EVAL_IG_STEPS,
                            steering_ig_steps=ATTACK_IG_STEPS, seed=seed, kendall=True)
        frames.append(frame.assign(image=frame["image"] + start))
    out = pd.concat(frames, ignore_index=True).drop(columns=["steps", "restarts"])
    noise = noise_per_image(model, x, y, None, ig_steps=EVAL_IG_STEPS, batch_size=chunk, seed=seed, **settings)
    for name in ("topk_intersection", "kendall_tau", "label_kept"):
        out[f"noise_{name}"] = noise[name].to_numpy()
    return out


VALUES = ("topk_intersection", "kendall_tau", "label_kept", "noise_topk_intersection", "noise_kendall_tau",
          "noise_label_kept")


def _config() -> dict:
    return {"runs": {ds: trained_runs(ds) for ds in DATASETS}, "n_images": N_IMAGES,
            "budget": {ds: list(rar_budget(ds)) for ds in DATASETS}, "eval_ig_steps": EVAL_IG_STEPS,
            "steering": f"integrated_gradients, {ATTACK_IG_STEPS} points", "seed": SEED, "nested_restarts": True,
            "settings": {ds: attack_settings(ds, k=ATTACK_K) for ds in DATASETS}}


CONFIG = _config()


def _dataset(unit: str) -> str:
    return next(ds for ds in DATASETS if unit in CONFIG["runs"][ds])


def _images(ds: str, device) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    models = [zoo.load_reference(name, device=device)[0] for name in CONFIG["runs"][ds]]
    x, y = load_dataset(ds, "test", subset=None).tensors()
    return shared_images(x, y, models, N_IMAGES, device)


def _run(unit: str, x, y, index, device) -> pd.DataFrame:
    ds = _dataset(unit)
    recipe = zoo.REFERENCE[unit]
    model = zoo.load_reference(unit, device=device)[0]
    frame = rar_attack(model, x.to(device), y.to(device), ds)
    frame["image"] = index[frame["image"].to_numpy()]
    return frame.assign(dataset=ds, method=recipe.method, seed=recipe.seed)


def _compute(unit: str, device, progress: bool) -> pd.DataFrame:
    return _run(unit, *_images(_dataset(unit), device), device)


def _recompute(rows: pd.DataFrame, device) -> pd.DataFrame:
    unit = rows["unit"].iloc[0]
    x, y = load_dataset(_dataset(unit), "test", subset=None).tensors()
    index = np.unique(rows["image"].to_numpy())
    return _run(unit, x[index], y[index], index, device)


SPEC = ResultSpec(
    name="ch7_ifia_rar", title="IFIA at RAR's budget and sign noise on every trained reference run (chapter 7)",
    config=CONFIG, keys=("dataset", "method", "seed", "image"), values=VALUES, tolerance=TOLERANCE,
    units=tuple(name for ds in DATASETS for name in CONFIG["runs"][ds]), compute=_compute, recompute=_recompute,
    modules=("attrbound_lite.book.headline", "attrbound_lite.book.budget", "attrbound_lite.attacks",
             "attrbound_lite.attributions", "attrbound_lite.metrics", "attrbound_lite.threat_models",
             "attrbound_lite.evaluation", "attrbound_lite.models"))


def load(root=None) -> pd.DataFrame:
    """The committed rows (``results.load_results(SPEC)``), checked against their manifest."""
    return load_results(SPEC, root)
