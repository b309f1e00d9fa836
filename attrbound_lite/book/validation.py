"""Chapter 6 (validating the bounds against PGD and IFIA): sweeps, attack examples, values and verdicts.

The sweeps run with ``attrbound_lite.sweep``; the values and verdicts are those the chapter's prose quotes
(``overview_values``, ``eps_values``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..attacks import AttributionPGD
from ..attributions import Saliency
from ..bounds import attribution_bound
from ..experiments import AttackSpec
from ..metrics import saliency_map
from ..sweep import config_hash, config_identity, load_config, run_sweep
from ..zoo import get_model, model_folder

__all__ = ["EPS_COLUMNS", "sweep_config", "sweep_folder", "run_validation", "counts_table", "overview_values",
           "eps_values", "trend", "per_model_tables", "attack_examples"]

# The columns of the chapter's table of rates by radius.
EPS_COLUMNS = ["norm", "eps", "n_attacks", "n_kept", "violation_rate", "violation_rate_euclidean",
               "violation_rate_cosine", "sample_violation_rate", "ratio_euclidean_median", "ratio_euclidean_p95",
               "ratio_euclidean_max", "cosine_bound_vacuous"]


def sweep_config(dataset: str, checkpoints: dict, *, n_samples: int, eps_l2, eps_linf, ig_steps: int, restarts: int,
                 steps: int, shard_size: int, seed: int) -> dict:
    """The chapter's sweep of one data set.

    The models ``checkpoints`` (``{name: model.safetensors}``) on its first ``n_samples`` test images, both norms,
    saliency and IG, attribution PGD and IFIA with ``AttackSpec``'s defaults (steps of 0.25 eps and 0.125 eps; IFIA's
    top-k over 10 % of the pixels), Lanczos at ``BoundOptions``' tolerance; l-infinity bounds skip ``|| |J| 1 ||_2``.
    """
    return {
        "seed": seed, "shard_size": shard_size, "device": "auto",
        "data": {"name": dataset, "split": "test", "n_samples": n_samples},
        "models": [{"name": name, "checkpoint": str(path)} for name, path in checkpoints.items()],
        "norms": ["l2", "linf"], "eps": {"l2": list(eps_l2), "linf": list(eps_linf)},
        "attributions": ["saliency", {"name": "integrated_gradients", "n_steps": ig_steps}],
        "restarts": restarts,
        "attacks": [{"type": "pgd", "steps": steps}, {"type": "ifia", "steps": steps}],
        "bound": {"max_dense_n": 0},
    }


def sweep_folder(sweep_dir: str | Path, dataset: str, config: dict, device_type: str) -> Path:
    """The sweep's folder: ``sweep_dir/<dataset>-<the first 12 hex digits of the sweep's config hash>``.

    One folder per config (a sweep folder refuses another config), so rerunning with other parameters starts a new sweep
    and rerunning with the same ones resumes or reloads it. The hash is the one the sweep records in its manifest
    (``attrbound_lite.sweep.config_identity``: checkpoints by the sha256 of their weights, and the device type
    ``device_type``, "cpu" or "cuda").
    """
    digest = config_hash(config_identity(load_config(config), device_type))
    return Path(sweep_dir) / f"{dataset}-{digest[:12]}"


def run_validation(s, methods) -> pd.DataFrame:
    """Every sweep of the chapter (``s``: its settings), one per data set, with a ``dataset`` column.

    The models are loaded from ``s.model_dir`` (trained in chapter 4), or trained now if this chapter runs alone.
    """
    tables = []
    for ds in s.datasets:
        recipes = {m: s.recipe(ds, m) for m in methods}
        for recipe in recipes.values():
            get_model(recipe, s.model_dir, device=s.device, progress=False)
        config = sweep_config(ds, {m: model_folder(r, s.model_dir) / "model.safetensors" for m, r in recipes.items()},
                              n_samples=s.n_samples, eps_l2=s.eps_l2, eps_linf=s.eps_linf, ig_steps=s.ig_steps,
                              restarts=s.restarts, steps=s.steps, shard_size=s.shard_size, seed=s.seed)
        folder = sweep_folder(s.sweep_dir, ds, config, s.device.type)
        tables.append(run_sweep(config, folder, progress=False).assign(dataset=ds))
    return pd.concat(tables, ignore_index=True)


def counts_table(table: pd.DataFrame, datasets) -> pd.DataFrame:
    """Per data set: attacks, samples, share of attacks that kept the label, attack seconds."""
    return table.groupby("dataset").agg(attacks=("sample", "size"), samples=("sample", "nunique"),
                                        label_kept=("label_kept", "mean"),
                                        attack_seconds=("attack_seconds", "sum")).loc[list(datasets)]


def overview_values(table: pd.DataFrame) -> dict:
    """The overview values the chapter's prose quotes.

    Args:
        table: the chapter's sweeps (``run_validation``).

    Returns:
        ``{glue name: value}``: the number of attacks and of groups, and the share of attacks that kept the label.
    """
    return {"ch6_n_attacks": f"{len(table):,}",
            "ch6_n_groups": table.groupby(["dataset", "model", "norm", "eps", "attribution", "attack"]).ngroups,
            "ch6_label_kept": float(table["label_kept"].mean())}


def trend(by_eps: pd.DataFrame) -> str:
    """How the violation rate moves with the radius, per norm, as a clause.

    For example: "in l2 it grows with the radius; ..." (``by_eps``: ``summarize(table, by=["norm", "eps"])``).
    """
    words = []
    for norm, rates in by_eps.sort_values("eps").groupby("norm")["violation_rate"]:
        r = rates.to_numpy()
        word = ("grows with the radius" if r[-1] > r[0] and (r[1:] >= r[:-1] - 1e-12).all() else
                "is zero at every radius" if (r == 0).all() else "does not grow steadily with the radius")
        words.append(f"in {norm} it {word}")
    return "; ".join(words)


def eps_values(by_eps: pd.DataFrame) -> dict:
    """The chapter's verdicts on ``by_eps`` (``summarize(table, by=["norm", "eps"])``).

    The violation rate at the smallest radius of each norm and whether any attack beat the bound there, the trend with
    the radius, and the rates and median tightness at the largest radii.
    """
    smallest = by_eps.loc[by_eps.groupby("norm")["eps"].idxmin()]
    largest = by_eps.loc[by_eps.groupby("norm")["eps"].idxmax()]
    return {
        "ch6_violation_smallest_eps": float(smallest["violation_rate"].max()),
        "ch6_smallest_verdict": "no attack beat the bound" if smallest["violations"].sum() == 0 else
                                f"{int(smallest['violations'].sum())} of {int(smallest['n_kept'].sum())} "
                                "label-keeping attacks beat it",
        "ch6_smallest_eps": " and ".join(f"{r.eps:g} ({r.norm})" for r in smallest.itertuples()),
        "ch6_violation_largest_eps": ", ".join(f"{r.violation_rate:.2f} at {r.eps:g} ({r.norm})"
                                               for r in largest.itertuples()),
        "ch6_trend": trend(by_eps),
        "ch6_tightness_largest": ", ".join(f"{r.ratio_euclidean_median:.2f} ({r.norm})" for r in largest.itertuples()),
    }


def per_model_tables(per_model: pd.DataFrame, methods) -> tuple:
    """Two styled tables (violation rate; median achieved / bound) by (dataset, norm, eps, attack) and model.

    From ``summarize(table, by=["dataset", "norm", "eps", "attack", "model"])``.
    """
    index = ["dataset", "norm", "eps", "attack"]
    return tuple(per_model.pivot_table(index=index, columns="model", values=value)[list(methods)].round(3)
                 .style.format("{:.3f}", na_rep="-").set_caption(caption)
                 for value, caption in (("violation_rate", "violation rate"),
                                        ("ratio_euclidean_median", "median achieved / bound (Euclidean)")))


def attack_examples(model, x, eps: float, steps: int, seed: int) -> list[dict]:
    """Attribution PGD (l2, ``eps``, two restarts) on the images ``x``, with the maps before and after.

    Per image: the image, the attacked image, the saliency maps before and after, and a title with the achieved
    deviation and the bound.
    """
    with torch.no_grad():
        label = model(x).argmax(1)
    alpha = AttackSpec.RELATIVE_ALPHA["pgd"] * eps
    attack = AttributionPGD(model, "saliency", eps=eps, alpha=alpha, steps=steps, norm="l2", restarts=2, seed=seed)
    result = attack(x, label)
    bound = attribution_bound(model, x, eps, "l2", "saliency", seed=seed)
    before = saliency_map(Saliency(model).attribute(x, target=label)).detach()
    after = saliency_map(Saliency(model).attribute(result.x_adv, target=label)).detach()
    return [{"image": x[i], "adversarial": result.x_adv[i], "map": before[i], "adversarial_map": after[i],
             "title": f"achieved {float(result.deviation.euclidean[i]):.3g}\nbound {float(bound.euclidean[i]):.3g}"}
            for i in range(len(x))]
