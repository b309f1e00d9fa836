"""Evaluation in RAR's protocol (Chen et al. 2019, REFERENCE section 6).

Natural accuracy, PGD accuracy and attributional robustness under IFIA (top-k intersection, Kendall's tau
and Spearman's rho between the saliency maps ``S = saliency_map(A)`` of the clean and the attacked image).

The IFIA top-k attack runs on the ``n_attribution`` first correctly classified test samples (the attack
must keep their label); the evaluated map is IG with ``ig_steps`` points (100 in RAR) on the real model;
the attack itself steers with IG of ``attack_ig_steps`` points (fewer, for speed: a reproduction choice)
or with saliency. Where no iterate keeps the label the sample counts as not attacked (intersection 1,
correlations 1), and ``ifia_label_kept`` reports the fraction of samples where the attack found an iterate.
"""

from __future__ import annotations

import numbers

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import metrics
from ._checks import (
    as_numpy,
    check_choice,
    check_eps,
    check_flag,
    check_inputs,
    check_labels,
    check_model,
    check_model_inputs,
    check_positive_int,
    check_seed,
    eval_mode,
    full_precision,
    model_classes,
    model_dtype_device,
)
from .attacks import IFIA, PGD
from .attributions import get_explainer
from .data import DATASET_INFO, DATASETS, as_tensors
from .models import smooth_surrogate
from .protocols import rar_protocol
from .runtime import resolve_device, sample_generators

__all__ = ["evaluate", "ifia_per_image", "noise_per_image", "sign_noise", "ifia_by_ig_steps", "PROTOCOLS", "protocol"]

# RAR's evaluation settings per data set (defined in attrbound_lite.protocols).
PROTOCOLS = {name: rar_protocol(name, "evaluation") for name in DATASETS}


def protocol(dataset: str) -> dict:
    """RAR's evaluation settings for a data set.

    Args:
        dataset: A data set name of ``PROTOCOLS`` (``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``,
            ``"cifar10-subset"``).

    Returns:
        A copy of the settings dict (``eps, pgd_steps, pgd_alpha, ifia_k, eval_k, ifia_steps, ifia_alpha,
        restarts``).

    Raises:
        ValueError: If ``dataset`` has no protocol.
    """
    dataset = _canonical(dataset)
    if not isinstance(dataset, str) or dataset not in PROTOCOLS:
        raise ValueError(f"no evaluation protocol for {dataset!r}; choose one of {sorted(PROTOCOLS)} or pass "
                         "every setting explicitly.")
    return dict(PROTOCOLS[dataset])


def _canonical(dataset):
    """A data set's name as ``load_dataset`` reads it (``"MNIST"``, ``"fashion_mnist"``: ``"mnist"``, ...)."""
    return dataset.lower().replace("_", "-") if isinstance(dataset, str) else dataset


_RADII = ("eps", "pgd_alpha", "ifia_alpha")  # the settings that are positive finite numbers; the others are counts


def _settings(dataset: str | None, settings: dict) -> dict:
    cfg = protocol(dataset) if dataset is not None else {}
    unknown = set(settings) - set(PROTOCOLS["mnist"])
    if unknown:
        raise ValueError(f"unknown evaluation settings {sorted(unknown)}; known: {sorted(PROTOCOLS['mnist'])}.")
    cfg.update(settings)
    missing = set(PROTOCOLS["mnist"]) - set(cfg)
    if missing:
        raise ValueError(f"evaluation settings {sorted(missing)} are missing: pass dataset= for RAR's protocol "
                         "or give them explicitly.")
    for name in sorted(settings):
        if name in _RADII:
            try:
                check_eps(settings[name])
            except ValueError:
                raise ValueError(f"{name} must be a positive finite number, got {settings[name]!r}.") from None
        else:
            check_positive_int(settings[name], name)
    return cfg


def _check_counts(**counts) -> None:
    """Refuse sample counts below 0 (``n_pgd`` may also be ``None``: all) and batch sizes or IG steps below 1."""
    for name, value in counts.items():
        if name in ("n_pgd", "n_attribution"):
            if (value is None and name == "n_pgd") or (not isinstance(value, bool)
                                                       and isinstance(value, numbers.Integral) and value >= 0):
                continue
            allowed = "None or a non-negative integer" if name == "n_pgd" else "a non-negative integer"
            raise ValueError(f"{name} must be {allowed}, got {value!r} (0 skips that part of the evaluation).")
        check_positive_int(value, name)


def _device(model: nn.Module, device) -> torch.device:
    """``device`` resolved (``runtime.resolve_device``), or the device of the model's parameters for ``None``."""
    check_model(model)
    return resolve_device(device) if device is not None else (model_dtype_device(model)[1] or torch.device("cpu"))


def _check_model_data(model: nn.Module, test_data, dataset: str | None, device, fix: str | None = None,
                      labels: torch.Tensor | None = None) -> None:
    """The data against the model and the protocol's data set, before any work is done.

    The first batch of images against the model (``_checks.check_model_inputs``), the image shape against that of
    ``dataset`` (``data.DATASET_INFO``: the protocol's radii are that data set's), and the labels (those of
    ``test_data``, or ``labels`` when ``test_data`` is the images) against the model's classes.

    ``fix``: the sentence that ends the message of a model that does not take the images (default: that the model
    does not match the data set, to be evaluated on its own).

    Raises:
        ValueError: images the model does not take (an MNIST model given CIFAR-10 images, ...): the message says
            that the model does not match the data set; images of another shape than ``dataset``'s (MNIST images
            in CIFAR-10's protocol); images that are not in [0, 1] or hold NaN; labels outside the model's classes
            or not one per image.
        TypeError: images that are not floating point, or of another dtype than the model's; data or labels that are
            not tensors (numpy arrays included) or labels that are not integers.
    """
    if isinstance(test_data, torch.Tensor):
        images = test_data
    else:
        images, labels = as_tensors(test_data)
    name = f"the {dataset} images" if dataset is not None else "the images"
    check_inputs(images, name, box=True)  # every image, not only the first batch: NaN or 0-255 anywhere is refused
    batch = images[:256].to(_device(model, device))
    try:
        check_model_inputs(model, batch, name)
    except ValueError as err:
        data = f"the {dataset} data set" if dataset is not None else "these images"
        fix = fix or f"The model does not match {data}: evaluate a model on the data set it was trained on."
        raise ValueError(f"{err} {fix}") from None
    expected = DATASET_INFO[dataset]["shape"] if dataset in DATASET_INFO else None
    if expected is not None and tuple(images.shape[1:]) != tuple(expected):
        shape = tuple(images.shape[1:])
        matching = [n for n, info in DATASET_INFO.items() if tuple(info["shape"]) == shape]
        which = (f"dataset={' or '.join(map(repr, matching))}" if matching else
                 "dataset=None with every setting (eps, pgd_steps, ...) given")
        raise ValueError(f"the images have shape (B, {', '.join(map(str, shape))}) but dataset={dataset!r} is the "
                         f"protocol of {dataset} images (B, {', '.join(map(str, expected))}): its radii and attack "
                         f"settings are that data set's; pass the data set the images come from ({which}).")
    if labels is not None:
        check_labels(labels, model_classes(model, batch[:1]), batch=images.shape[0], name="labels")


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    return torch.cat([model(x[s].to(device)).argmax(1).cpu() for s in _batches(x.shape[0], batch_size)])


def evaluate(model: nn.Module, test_data, dataset: str | None = None, *, n_pgd: int | None = 1000,
             n_attribution: int = 100, attribution: str = "integrated_gradients", ig_steps: int | None = None,
             attack_ig_steps: int | None = None, surrogate_beta: float | None = None, batch_size: int = 256,
             attack_batch_size: int = 50, seed: int = 0, device: str | torch.device | None = None,
             progress: bool = True, **settings) -> dict:
    """Evaluate a model in RAR's protocol: clean accuracy, PGD accuracy and IFIA attributional robustness.

    Clean accuracy is taken over all samples, PGD accuracy over the first ``n_pgd``, and IFIA robustness
    (top-k intersection, Kendall's tau, Spearman between ``saliency_map`` of the clean and attacked
    attributions) over the first ``n_attribution`` correctly classified samples. ``settings`` override the
    data set's protocol (``PROTOCOLS``): ``eps, pgd_steps, pgd_alpha, ifia_k, eval_k, ifia_steps, ifia_alpha,
    restarts``.

    Args:
        model: Classifier taking images in [0, 1] of shape (B, C, H, W) and returning logits (B, classes).
        test_data: An ``ImageDataset``, a ``TensorDataset`` or a pair ``(images (N, C, H, W), labels (N,))``.
        dataset: Data set whose protocol supplies the settings; ``None``: every setting must be passed.
        n_pgd: Samples attacked with PGD (the first ones); ``None``: all; 0 skips PGD. Default 1000.
        n_attribution: Correctly classified samples attacked with IFIA. Default 100.
        attribution: ``"integrated_gradients"`` (RAR) or ``"saliency"``.
        ig_steps: IG points of the evaluated maps (``None``: 100, RAR's); only with integrated gradients.
        attack_ig_steps: IG points of the maps that steer the IFIA attack (``None``: 10, fewer for speed); only with
            integrated gradients.
        surrogate_beta: Softplus beta of the smooth surrogate for IFIA's directions; needed by ReLU models.
            ``None``: the model itself.
        batch_size: Batch size of prediction and PGD.
        attack_batch_size: Batch size of the IFIA attack.
        seed: Seed of the attacks.
        device: Where to evaluate; ``None``: the device of the model's parameters.
        progress: Show tqdm progress bars.
        **settings: Overrides of the protocol's settings (see above).

    Returns:
        A dict of floats and counts (one row of a results table): ``clean_accuracy, n_clean, eps`` and, where
        computed, ``pgd_accuracy, n_pgd`` and ``topk_intersection, kendall_tau, spearman, ifia_label_kept,
        n_attribution, eval_k, attribution`` (``ig_steps`` for IG).

    Raises:
        ValueError: If ``dataset`` has no protocol, a setting is unknown, missing or out of range, a count is
            negative (a batch size or a number of IG steps below 1), the device is unknown, the model does not take
            the images (a model of another data set), the images are not of ``dataset``'s shape (MNIST images in
            CIFAR-10's protocol), the data is empty, a label is outside the model's classes, or IFIA would attack a
            ReLU / max-pool model without ``surrogate_beta``.
        TypeError: If the model is not a ``torch.nn.Module``, the data is not tensors (numpy arrays: convert them
            with ``torch.as_tensor``), the images are not floating point, the labels are not integers, or ``seed`` is
            not an integer >= 0.
    """
    dataset = _canonical(dataset)
    cfg = _settings(dataset, settings)
    progress = check_flag(progress, "progress")
    attribution = check_choice(attribution, ("integrated_gradients", "saliency"), "attribution (RAR's protocol)")
    if attribution != "integrated_gradients":
        given = [name for name, value in (("ig_steps", ig_steps), ("attack_ig_steps", attack_ig_steps))
                 if value is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} ignored with "
                             f"attribution={attribution!r} (the evaluated and the steering maps are {attribution} "
                             "maps); drop it, or pass attribution='integrated_gradients'.")
    ig_steps = 100 if ig_steps is None else ig_steps
    attack_ig_steps = 10 if attack_ig_steps is None else attack_ig_steps
    _check_counts(n_pgd=n_pgd, n_attribution=n_attribution, ig_steps=ig_steps, attack_ig_steps=attack_ig_steps,
                  batch_size=batch_size, attack_batch_size=attack_batch_size)
    seed = check_seed(seed)
    check_model(model, second_order=n_attribution > 0)  # IFIA differentiates gradients: refused now, not after PGD
    x_all, y_all = as_tensors(test_data)
    y_all = y_all.cpu()
    device = _device(model, device)
    model.to(device)
    _check_model_data(model, x_all, dataset, device, labels=y_all)
    if n_attribution > 0:
        smooth_surrogate(model, surrogate_beta)  # a ReLU model without surrogate_beta: refused now, not after PGD
        pixels = x_all.shape[-2] * x_all.shape[-1]  # the saliency map's (channels summed): checked before PGD runs
        for name in ("ifia_k", "eval_k"):
            if cfg[name] > pixels:
                raise ValueError(f"{name} = {cfg[name]} exceeds the {pixels} pixels of a {x_all.shape[-2]}x"
                                 f"{x_all.shape[-1]} saliency map; give at most {pixels} (--{name.replace('_', '-')} "
                                 "on the command line).")
    out: dict = {}
    with eval_mode(model), full_precision():
        pred = _predict(model, x_all, batch_size, device)
        correct = pred == y_all
        out.update(clean_accuracy=correct.double().mean().item(), n_clean=len(y_all))

        n_pgd = len(y_all) if n_pgd is None else min(n_pgd, len(y_all))
        if n_pgd > 0:
            pgd = PGD(model, eps=cfg["eps"], alpha=cfg["pgd_alpha"], steps=cfg["pgd_steps"], seed=seed)
            hits = 0
            for s in tqdm(list(_batches(n_pgd, batch_size)), desc="PGD", disable=not progress, leave=False):
                x, y = x_all[s].to(device), y_all[s].to(device)
                with torch.no_grad():
                    hits += (model(pgd(x, y)).argmax(1) == y).sum().item()
            out.update(pgd_accuracy=hits / n_pgd, n_pgd=n_pgd)
        out.update(eps=float(cfg["eps"]))  # a row of floats and counts, also for a 0-d tensor radius

        chosen = correct.nonzero().flatten()[:n_attribution]
        if len(chosen) > 0:
            out.update(_ifia_robustness(model, x_all[chosen], y_all[chosen], cfg, attribution, ig_steps,
                                        attack_ig_steps, surrogate_beta, attack_batch_size, seed, device, progress))
    return out


def _ifia_robustness(model, x_all, y_all, cfg, attribution, ig_steps, attack_ig_steps, surrogate_beta,
                     batch_size, seed, device, progress) -> dict:
    return _ifia_by_steps(model, x_all, y_all, cfg, attribution, [ig_steps], attack_ig_steps, surrogate_beta,
                          batch_size, seed, device, progress)[0]


def _ifia_by_steps(model, x_all, y_all, cfg, attribution, ig_steps_grid, attack_ig_steps, surrogate_beta,
                   batch_size, seed, device, progress) -> list[dict]:
    """The per-sample results of ``_ifia_per_sample`` averaged, one dict per evaluated map."""
    grid = list(ig_steps_grid) if attribution == "integrated_gradients" else [None]
    frames = _ifia_per_sample(model, x_all, y_all, cfg, attribution, grid, None, attack_ig_steps, surrogate_beta,
                              batch_size, seed, device, progress)
    return [dict(**{name: float(frame[name].mean()) for name in ("topk_intersection", "kendall_tau", "spearman")},
                 ifia_label_kept=float(frame["label_kept"].mean()), n_attribution=len(frame), eval_k=cfg["eval_k"],
                 attribution=attribution, **({"ig_steps": m} if m is not None else {}))
            for m, frame in zip(grid, frames, strict=True)]


def _ifia_per_sample(model, x_all, y_all, cfg, attribution, grid, attack_attribution, attack_ig_steps, surrogate_beta,
                     batch_size, seed, device, progress) -> list[pd.DataFrame]:
    """One IFIA attack per sample; the evaluated map (IG: one per number of steps in ``grid``) before and after.

    The attack steers with ``attack_attribution`` (``None``: the evaluated attribution; IG with ``attack_ig_steps``
    points). Returns one frame per entry of ``grid``, one row per sample.
    """
    def explainer(name, steps):
        return get_explainer(name, model, **({"n_steps": steps} if name == "integrated_gradients" else {}))

    evaluated = [explainer(attribution, m) for m in grid]
    steering = explainer(attack_attribution or attribution, attack_ig_steps)
    attack = IFIA(model, steering, eps=cfg["eps"], alpha=cfg["ifia_alpha"], steps=cfg["ifia_steps"], k=cfg["ifia_k"],
                  kind="topk", restarts=cfg["restarts"], surrogate_beta=surrogate_beta, seed=seed)
    rows = [{"topk_intersection": [], "kendall_tau": [], "spearman": []} for _ in grid]
    kept = []
    for s in tqdm(list(_batches(len(y_all), batch_size)), desc="IFIA", disable=not progress, leave=False):
        x, y = x_all[s].to(device), y_all[s].to(device)
        result = attack(x, y)
        kept.append(result.label_kept.cpu())
        for evaluate_map, row in zip(evaluated, rows, strict=True):
            for name, value in _map_change(evaluate_map, x, result.x_adv, y, cfg["eval_k"]).items():
                row[name].append(value)
    label_kept = torch.cat(kept).numpy()
    return [pd.DataFrame({**{name: torch.cat(parts).double().numpy() for name, parts in row.items()},
                          "label_kept": label_kept}) for row in rows]


def _map_change(explainer, x: torch.Tensor, x_new: torch.Tensor, y: torch.Tensor, k: int) -> dict:
    """RAR's similarities (B,) of the maps of ``x`` and ``x_new``: top-k intersection, Kendall's tau, Spearman."""
    clean = metrics.saliency_map(explainer.attribute(x, target=y))
    moved = metrics.saliency_map(explainer.attribute(x_new, target=y))
    return {"topk_intersection": metrics.topk_intersection(clean, moved, k).cpu(),
            "kendall_tau": metrics.kendall_tau(clean, moved).cpu(), "spearman": metrics.spearman(clean, moved).cpu()}


def sign_noise(x: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """``clip(x + eps * s, 0, 1)``, ``s`` uniform on {-1, 1}^n: a random vertex of the l-infinity ball of radius eps.

    Each sample's signs come from its own stream (``runtime.sample_generators``): the same in any batch.

    Args:
        x: (B, ...) inputs in [0, 1].
        eps: the radius (a number).
        seed: the seed of the streams.

    Returns:
        The noisy inputs, shaped like ``x``.
    """
    check_inputs(x, "x", box=True)
    eps, seed = check_eps(eps), check_seed(seed)
    signs = torch.stack([torch.randint(0, 2, row.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1
                         for row, gen in zip(x, sample_generators(x, seed, "sign noise"), strict=True)])
    return (x + eps * signs).clamp(0, 1)


def noise_per_image(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, dataset: str | None = None, *,
                    attribution: str = "integrated_gradients", ig_steps: int = 100, batch_size: int = 50,
                    seed: int = 0, device: str | torch.device | None = None, **settings) -> pd.DataFrame:
    """The baseline of ``ifia_per_image``: random sign noise of IFIA's radius, scored by the same similarities.

    An attack shows that a map is fragile only where it moves the map more than a random perturbation of the same
    size does. Each image is moved to a random vertex of its l-infinity ball of radius ``eps`` (``sign_noise``; IFIA
    moves each pixel by at most as much), clipped to [0, 1], and its map compared with the clean one. Unlike
    ``ifia_per_image``, every image counts as it is (``label_kept`` says whether the noisy image is still classified
    as its label ``y``, as IFIA's does).

    Args:
        model: Classifier taking images in [0, 1] of shape (B, C, H, W) and returning logits (B, classes).
        images: (N, C, H, W) images in [0, 1].
        labels: (N,) their labels (the class whose map is compared).
        dataset: Data set whose protocol supplies ``eps`` and ``eval_k``; ``None``: every setting must be passed.
        attribution: The evaluated map, ``"integrated_gradients"`` (RAR) or ``"saliency"``.
        ig_steps: IG points of the evaluated maps.
        batch_size: Images per batch.
        seed: Seed of the noise.
        device: Where to evaluate; ``None``: the device of the model's parameters.
        **settings: Overrides of the protocol's settings, as in ``evaluate``.

    Returns:
        One row per image: ``topk_intersection``, ``kendall_tau``, ``spearman`` and ``label_kept``.

    Raises:
        ValueError: If the settings, counts, device, images or labels are invalid (as in ``evaluate``).
        TypeError: If the model, images, labels or seed are of the wrong type (as in ``evaluate``).
    """
    dataset = _canonical(dataset)
    cfg = _settings(dataset, settings)
    attribution = check_choice(attribution, ("integrated_gradients", "saliency"), "attribution (RAR's protocol)")
    _check_counts(ig_steps=ig_steps, batch_size=batch_size)
    seed, device = check_seed(seed), _device(model, device)
    model.to(device)
    check_inputs(images, "images")
    _check_model_data(model, images, dataset, device, labels=check_labels(labels, name="labels"))
    explainer = get_explainer(attribution, model, **({"n_steps": ig_steps} if attribution == "integrated_gradients"
                                                     else {}))
    rows: dict[str, list] = {"topk_intersection": [], "kendall_tau": [], "spearman": [], "label_kept": []}
    with eval_mode(model), full_precision():
        for s in _batches(len(labels), batch_size):
            x, y = images[s].to(device), labels[s].to(device)
            noisy = sign_noise(x, cfg["eps"], seed)
            for name, value in _map_change(explainer, x, noisy, y, cfg["eval_k"]).items():
                rows[name].append(value)
            with torch.no_grad():
                rows["label_kept"].append((model(noisy).argmax(1) == y).cpu())
    return pd.DataFrame({name: as_numpy(torch.cat(parts)).astype(bool if name == "label_kept" else float)
                         for name, parts in rows.items()})


def ifia_per_image(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, dataset: str | None = None, *,
                   attribution: str = "integrated_gradients", ig_steps: int = 100,
                   attack_attribution: str | None = None, attack_ig_steps: int = 10,
                   surrogate_beta: float | None = None, attack_batch_size: int = 50, seed: int = 0,
                   device: str | torch.device | None = None, progress: bool = False, **settings) -> pd.DataFrame:
    """IFIA robustness in RAR's protocol on the given images, one row per image (for paired comparisons).

    Unlike ``evaluate``, which picks the first correctly classified samples of a model, the caller chooses the
    images (e.g. those correctly classified by every model compared, so that differences pair by image). An image
    whose label no iterate keeps counts as not attacked (intersection 1, correlations 1; ``label_kept`` False).

    Args:
        model: Classifier taking images in [0, 1] of shape (B, C, H, W) and returning logits (B, classes).
        images: (N, C, H, W) images in [0, 1], classified correctly by ``model``.
        labels: (N,) their labels.
        dataset: Data set whose protocol supplies the settings; ``None``: every setting must be passed.
        attribution: The evaluated map, ``"integrated_gradients"`` (RAR) or ``"saliency"``.
        ig_steps: IG points of the evaluated maps (100 in RAR).
        attack_attribution: The attribution that steers the attack; ``None``: ``attribution``.
        attack_ig_steps: IG points of the steering maps when they are IG.
        surrogate_beta: Softplus beta of the smooth surrogate for IFIA's directions; needed by ReLU models.
        attack_batch_size: Images attacked at once.
        seed: Seed of the attack.
        device: Where to evaluate; ``None``: the device of the model's parameters.
        progress: Show a tqdm progress bar.
        **settings: Overrides of the protocol's settings, as in ``evaluate``.

    Returns:
        A DataFrame with one row per image: ``topk_intersection`` (over ``eval_k`` pixels), ``kendall_tau``,
        ``spearman`` and ``label_kept``.

    Raises:
        ValueError: If the settings, counts, device, images or labels are invalid (as in ``evaluate``).
        TypeError: If the model, images, labels or seed are of the wrong type (as in ``evaluate``).
    """
    dataset = _canonical(dataset)
    cfg = _settings(dataset, settings)
    attribution = check_choice(attribution, ("integrated_gradients", "saliency"), "attribution (RAR's protocol)")
    if attack_attribution is not None:
        check_choice(attack_attribution, ("integrated_gradients", "saliency"), "attack_attribution")
    progress = check_flag(progress, "progress")
    _check_counts(ig_steps=ig_steps, attack_ig_steps=attack_ig_steps, attack_batch_size=attack_batch_size)
    seed = check_seed(seed)
    device = _device(model, device)
    model.to(device)
    check_inputs(images, "images")
    _check_model_data(model, images, dataset, device, labels=check_labels(labels, name="labels"))
    smooth_surrogate(model, surrogate_beta)
    grid = [ig_steps if attribution == "integrated_gradients" else None]
    with eval_mode(model), full_precision():
        return _ifia_per_sample(model, images, labels.cpu(), cfg, attribution, grid, attack_attribution,
                                attack_ig_steps, surrogate_beta, attack_batch_size, seed, device, progress)[0]


def ifia_by_ig_steps(model: nn.Module, test_data, dataset: str | None, ig_steps_grid, *, n_attribution: int = 100,
                     attack_ig_steps: int = 10, surrogate_beta: float | None = None, attack_batch_size: int = 50,
                     seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
                     **settings) -> pd.DataFrame:
    """IFIA robustness of Integrated Gradients as a function of its number of steps.

    One IFIA attack (steered by IG with ``attack_ig_steps`` points) on each of the first ``n_attribution``
    correctly classified samples, then the top-k intersection, Kendall's tau and Spearman of the IG maps
    computed with each number of steps in ``ig_steps_grid``.

    Args:
        model: Classifier taking images in [0, 1] of shape (B, C, H, W) and returning logits (B, classes).
        test_data: An ``ImageDataset``, a ``TensorDataset`` or a pair ``(images (N, C, H, W), labels (N,))``.
        dataset: Data set whose protocol supplies the settings; ``None``: every setting must be passed.
        ig_steps_grid: Numbers of IG steps of the evaluated maps (iterable of ints).
        n_attribution: Correctly classified samples attacked. Default 100.
        attack_ig_steps: IG points of the maps that steer the attack.
        surrogate_beta: Softplus beta of the smooth surrogate for IFIA's directions; needed by ReLU models.
        attack_batch_size: Batch size of the attack.
        seed: Seed of the attack.
        device: Where to evaluate; ``None``: the device of the model's parameters.
        progress: Show tqdm progress bars.
        **settings: Overrides of the protocol's settings, as in ``evaluate``.

    Returns:
        A DataFrame, one row per number of steps, with columns ``topk_intersection, kendall_tau, spearman,
        ifia_label_kept, n_attribution, eval_k, attribution, ig_steps``.

    Raises:
        ValueError: If the settings, counts, device, images or labels are invalid (as in ``evaluate``) or no sample is
            classified correctly.
        TypeError: If the model, data or seed are of the wrong type (as in ``evaluate``).
    """
    dataset = _canonical(dataset)
    cfg = _settings(dataset, settings)
    progress = check_flag(progress, "progress")
    if isinstance(ig_steps_grid, (str, numbers.Number)) or not hasattr(ig_steps_grid, "__iter__") \
            or getattr(ig_steps_grid, "ndim", 1) == 0:
        raise TypeError(f"ig_steps_grid must be a list of IG step counts (e.g. [10, 50, 100]), got {ig_steps_grid!r}.")
    ig_steps_grid = list(ig_steps_grid)
    if not ig_steps_grid:
        raise ValueError("ig_steps_grid is empty; give at least one number of IG steps.")
    _check_counts(n_attribution=n_attribution, attack_ig_steps=attack_ig_steps, attack_batch_size=attack_batch_size,
                  **{f"ig_steps_grid[{i}]": m for i, m in enumerate(ig_steps_grid)})
    repeated = sorted({m for m in ig_steps_grid if ig_steps_grid.count(m) > 1})
    if repeated:
        raise ValueError(f"ig_steps_grid repeats {repeated} (the rows would be identical); give each number of IG "
                         f"steps once, e.g. {sorted(set(ig_steps_grid))}.")
    seed = check_seed(seed)
    x_all, y_all = as_tensors(test_data)
    device = _device(model, device)
    model.to(device)
    _check_model_data(model, x_all, dataset, device, labels=y_all)
    if n_attribution > 0:
        smooth_surrogate(model, surrogate_beta)
    with eval_mode(model), full_precision():
        correct = _predict(model, x_all, 256, device) == y_all.cpu()
        chosen = correct.nonzero().flatten()[:n_attribution]
        if len(chosen) == 0:
            raise ValueError("the model classifies none of the samples correctly; IFIA needs correct samples.")
        rows = _ifia_by_steps(model, x_all[chosen], y_all.cpu()[chosen], cfg, "integrated_gradients", ig_steps_grid,
                              attack_ig_steps, surrogate_beta, attack_batch_size, seed, device, progress)
    return pd.DataFrame(rows)
