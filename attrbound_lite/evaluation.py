"""Evaluation in RAR's protocol (Chen et al. 2019, REFERENCE section 6): natural accuracy, PGD accuracy,
and attributional robustness under IFIA (top-k intersection, Kendall's tau and Spearman's rho between the
saliency maps ``S = saliency_map(A)`` of the clean and the attacked image).

The IFIA top-k attack runs on the ``n_attribution`` first correctly classified test samples (the attack
must keep their label); the evaluated map is IG with ``ig_steps`` points (100 in RAR) on the real model;
the attack itself steers with IG of ``attack_ig_steps`` points (fewer, for speed: a reproduction choice)
or with saliency. Where no iterate keeps the label the sample counts as not attacked (intersection 1,
correlations 1), and ``ifia_label_kept`` reports the fraction of samples where the attack found an iterate.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import metrics
from ._checks import eval_mode, full_precision
from .attacks import IFIA, PGD
from .attributions import get_explainer
from .training import as_tensors

__all__ = ["evaluate", "ifia_by_ig_steps", "PROTOCOLS", "protocol"]

# RAR's settings (REFERENCE section 6); l-infinity eps on the [0, 1] scale.
PROTOCOLS = {
    "mnist": dict(eps=0.3, pgd_steps=40, pgd_alpha=0.01, ifia_k=200, eval_k=100, ifia_steps=100, ifia_alpha=0.01,
                  restarts=3),
    "fashion-mnist": dict(eps=0.1, pgd_steps=20, pgd_alpha=0.01, ifia_k=100, eval_k=100, ifia_steps=100,
                          ifia_alpha=0.01, restarts=3),
    "cifar10": dict(eps=8 / 255, pgd_steps=10, pgd_alpha=2 / 255, ifia_k=100, eval_k=100, ifia_steps=50,
                    ifia_alpha=1 / 255, restarts=3),
}
PROTOCOLS["cifar10-subset"] = PROTOCOLS["cifar10"]


def protocol(dataset: str) -> dict:
    """RAR's evaluation settings for ``dataset`` (a copy)."""
    if dataset not in PROTOCOLS:
        raise ValueError(f"no evaluation protocol for {dataset!r}; choose one of {sorted(PROTOCOLS)} or pass "
                         "every setting explicitly.")
    return dict(PROTOCOLS[dataset])


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
    return cfg


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    return torch.cat([model(x[s].to(device)).argmax(1).cpu() for s in _batches(x.shape[0], batch_size)])


def evaluate(model: nn.Module, test_data, dataset: str | None = None, *, n_pgd: int | None = 1000,
             n_attribution: int = 100, attribution: str = "integrated_gradients", ig_steps: int = 100,
             attack_ig_steps: int = 10, surrogate_beta: float | None = None, batch_size: int = 256,
             attack_batch_size: int = 50, seed: int = 0, device: str | torch.device | None = None,
             progress: bool = True, **settings) -> dict:
    """Clean accuracy (all samples), PGD accuracy (first ``n_pgd``; None: all) and IFIA robustness (first
    ``n_attribution`` correctly classified samples) of ``model``.

    ``settings`` override the data set's protocol (``PROTOCOLS``): ``eps, pgd_steps, pgd_alpha, ifia_k,
    eval_k, ifia_steps, ifia_alpha, restarts``. ``attribution`` is ``"integrated_gradients"`` (RAR) or
    ``"saliency"``. ReLU models need ``surrogate_beta`` for IFIA's directions.
    Returns a dict of floats and counts (one row of a results table).
    """
    cfg = _settings(dataset, settings)
    x_all, y_all = as_tensors(test_data)
    y_all = y_all.cpu()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
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
        out.update(eps=cfg["eps"])

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
    """One IFIA attack per sample; the evaluated map (IG: one per number of steps) compared before and after."""
    ig = attribution == "integrated_gradients"
    grid = list(ig_steps_grid) if ig else [None]
    evaluated = [get_explainer(attribution, model, **({"n_steps": m} if ig else {})) for m in grid]
    steering = get_explainer(attribution, model, **({"n_steps": attack_ig_steps} if ig else {}))
    attack = IFIA(model, steering, eps=cfg["eps"], alpha=cfg["ifia_alpha"], steps=cfg["ifia_steps"], k=cfg["ifia_k"],
                  kind="topk", restarts=cfg["restarts"], surrogate_beta=surrogate_beta, seed=seed)
    rows = [{"topk": [], "kendall": [], "spearman": []} for _ in grid]
    kept = []
    for s in tqdm(list(_batches(len(y_all), batch_size)), desc="IFIA", disable=not progress, leave=False):
        x, y = x_all[s].to(device), y_all[s].to(device)
        result = attack(x, y)
        kept.append(result.label_kept.cpu())
        for explainer, row in zip(evaluated, rows):
            clean = metrics.saliency_map(explainer.attribute(x, target=y))
            adv = metrics.saliency_map(explainer.attribute(result.x_adv, target=y))
            row["topk"].append(metrics.topk_intersection(clean, adv, cfg["eval_k"]).cpu())
            row["kendall"].append(metrics.kendall_tau(clean, adv).cpu())
            row["spearman"].append(metrics.spearman(clean, adv).cpu())

    def mean(parts):
        return torch.cat(parts).double().nanmean().item()

    return [dict(topk_intersection=mean(row["topk"]), kendall_tau=mean(row["kendall"]),
                 spearman=mean(row["spearman"]), ifia_label_kept=mean(kept), n_attribution=len(y_all),
                 eval_k=cfg["eval_k"], attribution=attribution, **({"ig_steps": m} if ig else {}))
            for m, row in zip(grid, rows)]


def ifia_by_ig_steps(model: nn.Module, test_data, dataset: str | None, ig_steps_grid, *, n_attribution: int = 100,
                     attack_ig_steps: int = 10, surrogate_beta: float | None = None, attack_batch_size: int = 50,
                     seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
                     **settings) -> pd.DataFrame:
    """IFIA robustness of Integrated Gradients as a function of its estimation parameter: one IFIA attack
    (steered by IG with ``attack_ig_steps`` points) on each of the first ``n_attribution`` correctly classified
    samples, then the top-k intersection, Kendall's tau and Spearman of the IG maps computed with each number
    of steps in ``ig_steps_grid``: a DataFrame, one row per number of steps. ``settings`` as in ``evaluate``."""
    cfg = _settings(dataset, settings)
    x_all, y_all = as_tensors(test_data)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    with eval_mode(model), full_precision():
        correct = _predict(model, x_all, 256, device) == y_all.cpu()
        chosen = correct.nonzero().flatten()[:n_attribution]
        if len(chosen) == 0:
            raise ValueError("the model classifies none of the samples correctly; IFIA needs correct samples.")
        rows = _ifia_by_steps(model, x_all[chosen], y_all.cpu()[chosen], cfg, "integrated_gradients", ig_steps_grid,
                              attack_ig_steps, surrogate_beta, attack_batch_size, seed, device, progress)
    return pd.DataFrame(rows)
