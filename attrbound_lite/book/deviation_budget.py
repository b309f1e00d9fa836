"""Chapter 6's attack-budget evidence: the deviation attribution PGD and IFIA reach against their steps and restarts.

Chapter 6 compares what attacks reach with what the bounds allow; a violation rate or a ratio achieved / bound is only
as large as the attacks made it. For every (steps, restarts) of a grid, each of the chapter's two attacks (attribution
PGD and IFIA, with the chapter's step sizes as fractions of the radius and their total length kept) attacks the
saliency map of each image at two radii, RAR's l-infinity radius of the data set and l2 1.0, keeping the model's
predicted class, and the result is the relative deviation ``||A(x') - A(x)||_2 / ||A(x)||_2`` (largest over the first
``r`` restarts, as chapter 6 keeps its best attack) and the cosine ``cos(A(x'), A(x))`` (smallest).

Restarts are nested as in chapter 7's grid (``budget.nested_starts``): restart ``r`` of an image starts at the same
point whatever the batch or the number of restarts (PGD: every restart at a random point of the ball, since its
objective has zero gradient at the image; IFIA: restart 0 at the image), so the best of the first 1, 3 and 5 restarts
comes from one run of 5. A unit none of whose iterates keeps the class is not attacked (deviation 0, cosine 1).

The grid on the 15 seed-0 reference models does not fit the CI's time: it is computed once, committed under
``results/`` and re-verified by CI on a sample of rows (``attrbound_lite.results``).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .._checks import check_positive_int
from ..attributions import get_explainer
from ..data import load_dataset
from ..experiments import AttackSpec
from ..results import ResultSpec, load_results
from ..stats import bootstrap, bootstrap_mean
from ..zoo import load_reference, reference_name
from .budget import DATASETS, METHODS, RESTARTS, STEPS, _move, _of, _unit, check_grid, nested_starts
from .tables import DATASET_NAMES, METHOD_NAMES, NORM_NAMES, radius_label
from .validation import rar_eps

__all__ = ["deviation_budget", "SPEC", "load", "summary", "budget_table", "budget_values", "budget_figure",
           "budget_text_table"]

ATTACKS = ("pgd", "ifia")
L2_RADIUS = 1.0
CHAPTER_STEPS = 10  # chapter 6's steps: the total length steps * alpha every budget of the grid keeps
N_IMAGES = 32
SEED = 0
# Relative deviations and cosines of float32 attacks: a recomputation on another CPU may round the last bits
# differently, and a sign step can then go another way.
TOLERANCE = 0.03


def deviation_budget(model: torch.nn.Module, x: torch.Tensor, attack: str, norm: str, eps: float,
                     steps: Sequence[int], restarts: Sequence[int], *, seed: int = 0,
                     chapter_steps: int = CHAPTER_STEPS) -> pd.DataFrame:
    """The relative deviation and cosine one of chapter 6's attacks reaches on ``x`` for every (steps, restarts).

    Args:
        model: the classifier (smooth: the attacks differentiate its saliency map).
        x: (B, C, H, W) images in [0, 1] on the model's device; the attack keeps the model's predicted class.
        attack: ``"pgd"`` (attribution PGD, euclidean objective) or ``"ifia"`` (top-k over 10 % of the pixels).
        norm: ``"l2"`` or ``"linf"``.
        eps: the radius.
        steps: the steps of the grid, each a run of its own with step ``AttackSpec.RELATIVE_ALPHA[attack] * eps *
            chapter_steps / steps`` (the chapter's total length).
        restarts: the restarts of the grid (the best of the first ``r`` of one run of ``max(restarts)``).
        seed: seed of the random starts.
        chapter_steps: the chapter's steps, which fix the total length.

    Returns:
        One row per (image, steps, restarts): ``image`` (position in ``x``), ``steps``, ``restarts``,
        ``relative_deviation`` (largest over the label-keeping restarts; 0 where none kept the class), ``cosine``
        (smallest; 1 where none) and ``label_kept``.
    """
    steps, restarts = _budgets(steps, "steps"), _budgets(restarts, "restarts")
    chapter_steps = check_positive_int(chapter_steps, "chapter_steps")
    explainer = get_explainer("saliency", model)
    with torch.no_grad():
        y = model(x).argmax(1)
    clean_norm = explainer.attribute(x, target=y).detach().flatten(1).norm(dim=1)
    pixels = int(np.prod(x.shape[2:]))
    relative_alpha = AttackSpec(type=attack).resolved(pixels).relative_alpha
    most, batch = max(restarts), len(x)
    rows = []
    for n in steps:
        atk = AttackSpec(type=attack, steps=n).build(model, explainer, eps, norm, most, None, seed, pixels,
                                                     alpha=relative_alpha * eps * chapter_steps / n)
        result = atk(x, y.clone(), start=nested_starts(atk, x, most, seed, clean_first=attack == "ifia"))
        kept = result.label_kept.view(most, batch)
        deviation = (result.deviation.euclidean.view(most, batch) / clean_norm).masked_fill(~kept, float("-inf"))
        cosine = result.deviation.cosine.view(most, batch).masked_fill(~kept, float("inf"))
        for r in restarts:
            any_kept = kept[:r].any(0)
            rows.append(pd.DataFrame({
                "image": np.arange(batch), "steps": int(n), "restarts": int(r),
                "relative_deviation": deviation[:r].max(0).values.masked_fill(~any_kept, 0.0).cpu().double().numpy(),
                "cosine": cosine[:r].min(0).values.masked_fill(~any_kept, 1.0).cpu().double().numpy(),
                "label_kept": any_kept.cpu().numpy()}))
    return pd.concat(rows, ignore_index=True)


def _budgets(values, what: str) -> list[int]:
    """``values`` as a list of distinct positive integers (a grid's steps or restarts), else a ValueError."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{what} must be a sequence of positive integers, got {values!r}.")
    out = [check_positive_int(v, f"each of {what}") for v in values]
    if not out or len(set(out)) < len(out):
        raise ValueError(f"{what} must be distinct positive integers, at least one, got {list(values)!r}.")
    return out


def _radii(ds: str) -> dict[str, float]:
    return {"linf": rar_eps(ds), "l2": L2_RADIUS}


def _config() -> dict:
    return {"datasets": list(DATASETS), "methods": list(METHODS), "attribution": "saliency",
            "models": {ds: [reference_name(ds, m) for m in METHODS] for ds in DATASETS},
            "attacks": {a: {"relative_alpha": AttackSpec.RELATIVE_ALPHA[a]} for a in ATTACKS},
            "ifia_k_fraction": AttackSpec.K_FRACTION,
            "radii": {ds: _radii(ds) for ds in DATASETS}, "n_images": N_IMAGES, "steps": list(STEPS),
            "restarts": list(RESTARTS), "chapter_steps": CHAPTER_STEPS, "seed": SEED}


def _run(unit: str, x: torch.Tensor, index: np.ndarray, steps, device) -> pd.DataFrame:
    ds, method = _unit(unit)
    model = load_reference(reference_name(ds, method), device=device)[0]
    frames = []
    for attack in ATTACKS:
        for norm, eps in _radii(ds).items():
            frame = deviation_budget(model, x.to(device), attack, norm, eps, steps, RESTARTS, seed=SEED)
            frames.append(frame.assign(attack=attack, norm=norm, eps=eps))
    out = pd.concat(frames, ignore_index=True)
    out["image"] = index[out["image"].to_numpy()]
    return out.assign(dataset=ds, method=method)


def _compute(unit: str, device, progress: bool) -> pd.DataFrame:
    ds, _ = _unit(unit)
    x, _ = load_dataset(ds, "test", subset=None).tensors()
    return _run(unit, x[:N_IMAGES], np.arange(N_IMAGES), STEPS, device)


def _recompute(rows: pd.DataFrame, device) -> pd.DataFrame:
    ds, _ = _unit(rows["unit"].iloc[0])
    x, _ = load_dataset(ds, "test", subset=None).tensors()
    frames = []
    for steps, part in rows.groupby("steps"):
        index = np.unique(part["image"].to_numpy())
        frames.append(_run(rows["unit"].iloc[0], x[index], index, [int(steps)], device))
    return pd.concat(frames, ignore_index=True)


SPEC = ResultSpec(
    name="ch6_attack_budget",
    title="The relative deviation and cosine attribution PGD and IFIA reach against their steps and restarts "
          "(chapter 6)",
    config=_config(), keys=("dataset", "method", "attack", "norm", "image", "steps", "restarts"),
    values=("relative_deviation", "cosine", "label_kept"), tolerance=TOLERANCE,
    units=tuple(f"{ds}-{m}" for ds in DATASETS for m in METHODS), compute=_compute, recompute=_recompute,
    modules=("attrbound_lite.book.deviation_budget", "attrbound_lite.attacks", "attrbound_lite.attributions",
             "attrbound_lite.experiments",
             "attrbound_lite.experiment_specs", "attrbound_lite.threat_models", "attrbound_lite.models"))


def load(root=None) -> pd.DataFrame:
    """The committed grid (``results.load_results(SPEC)``), checked against its manifest."""
    return load_results(SPEC, root)


def summary(rows: pd.DataFrame, statistic: str = "relative_deviation") -> pd.DataFrame:
    """The mean ``statistic`` of every (data set, method, attack, norm, steps, restarts), with its bootstrap interval.

    Returns:
        One row per budget, model, attack and norm: those keys, ``statistic`` (an ``Interval`` over the images) and
        ``mean``.
    """
    keys = ["dataset", "method", "attack", "norm", "steps", "restarts"]
    out = rows.groupby(keys, sort=False)[statistic].agg(bootstrap_mean).rename(statistic).reset_index()
    out["mean"] = out[statistic].map(lambda i: i.estimate)
    return out


def budget_table(rows: pd.DataFrame, chapter: tuple[int, int], statistic: str = "relative_deviation"
                 ) -> pd.DataFrame:
    """Per model, attack and norm: the chapter's budget against the best of the grid, and what one doubling moves.

    The reference is the best of the grid per image: the largest relative deviation (the smallest cosine) any budget
    reached on it.

    Args:
        rows: the committed grid (``load``).
        chapter: the chapter's (steps, restarts), a budget of the grid.
        statistic: ``"relative_deviation"`` or ``"cosine"``.

    Returns:
        One row per (data set, method, attack, norm): ``chapter`` and ``best`` (means over the images, bootstrap
        intervals), ``chapter_gap`` (best minus the chapter's, paired by image, signed so that above zero the chapter's
        budget falls short), ``more_steps`` and ``more_restarts`` (the signed relative change of the mean at the
        chapter's budget when its steps double and when its restarts grow to the grid's most).
    """
    check_grid(rows, statistic, ("dataset", "method", "attack", "norm", "image", "steps", "restarts"),
               [tuple(chapter)])
    sign = 1.0 if statistic == "relative_deviation" else -1.0  # larger deviations, smaller cosines: stronger
    out = []
    for key, frame in rows.groupby(["dataset", "method", "attack", "norm"], sort=False):
        table = frame.pivot(index="image", columns=["steps", "restarts"], values=statistic)
        means, restarts = table.mean(), sorted({r for _, r in table.columns})
        best = (table.max(axis=1) if sign > 0 else table.min(axis=1)).to_numpy(float)
        own = table[chapter].to_numpy(float)
        out.append({**dict(zip(("dataset", "method", "attack", "norm"), key, strict=True)),
                    "chapter": bootstrap_mean(own), "best": bootstrap_mean(best),
                    "chapter_gap": bootstrap(lambda a, b: sign * np.mean(a - b), best, own),
                    "more_steps": _move(means, chapter, (2 * chapter[0], chapter[1])),
                    "more_restarts": _move(means, chapter, (chapter[0], restarts[-1]))})
    return pd.DataFrame(out)


def _model(row) -> str:
    return (f"{DATASET_NAMES.get(row['dataset'], row['dataset'])} {METHOD_NAMES.get(row['method'], row['method'])}, "
            f"{'PGD' if row['attack'] == 'pgd' else 'IFIA'} in {NORM_NAMES.get(row['norm'], row['norm'])}")


def budget_values(rows: pd.DataFrame, table: pd.DataFrame, manifest: dict, chapter: tuple[int, int],
                  tolerance: float = 0.02) -> dict:
    """Chapter 6's sentences on the attack budget, read off ``budget_table`` (relative deviation).

    Every interval is a 95 % bootstrap interval over the images, one per (model, attack, norm), not corrected for
    their number: the sentences say how far the attacks converged, they declare no comparison of the Findings family.

    Returns:
        ``ch6_budget_n`` (images per data set), ``ch6_budget_grid`` (the grid in words), ``ch6_budget_cost``,
        ``ch6_budget_chapter`` (the chapter's budget against the best of the grid), ``ch6_budget_converged`` (in how
        many cases one more doubling moves the mean by less than ``tolerance``, and whether steps or restarts matter
        more), ``ch6_budget_short`` (one clause for the Findings page), ``ch6_budget_answer`` (the section's
        question answered in one sentence), ``ch6_budget_caveat`` (what the shortfall means for the violation rows
        of the Findings page; empty without one) and ``ch6_budget_cosine`` (the cosine's shortfall).
    """
    config, n = manifest["config"], len(table)
    short_of = table[table["chapter_gap"].map(lambda i: i.sign > 0)]
    worst = table.loc[table["chapter_gap"].map(lambda i: i.estimate).idxmax()]
    words = f"{chapter[0]} steps and {chapter[1]} restart{'' if chapter[1] == 1 else 's'}"
    said = (f"with the chapter's budget ({words}) the mean relative deviation falls short of the best of the grid on "
            f"{_of(len(short_of), n)} (model, attack, norm) cases")
    if len(short_of):
        said += f", by up to {worst['chapter_gap']} ({_model(worst)}, where the best reaches {worst['best']})"
    moves = table[["more_steps", "more_restarts"]].abs().max(axis=1, skipna=True)
    unsettled = table[moves >= tolerance]
    most = int(rows["restarts"].max())
    converged = (f"doubling the steps, or raising the restarts to {most}, moves the mean by less than {tolerance:.0%} "
                 f"in {_of(n - len(unsettled), n)} cases")
    by_steps, by_restarts = table["more_steps"].abs().mean(), table["more_restarts"].abs().mean()
    if max(by_steps, by_restarts) > 2 * min(by_steps, by_restarts):
        converged += (f"; {'more restarts' if by_restarts > by_steps else 'more steps'} matter more (on average "
                      f"{by_restarts:.1%} for {most} restarts against {by_steps:.1%} for twice the steps)")
    hardware = manifest["hardware"]
    cost = (f"{manifest['seconds']['total'] / 3600:.1f} hours on {hardware.get('cpu_count', '?')} cores of "
            f"{hardware.get('processor', 'an unnamed CPU')}")
    short = (f"the chapter's budget reaches a relative deviation up to {worst['chapter_gap'].estimate:.3g} below the "
             f"best of a grid of budgets (distinguishable, uncorrected, in {_of(len(short_of), n)} cases)")
    answer = (f"{'No' if len(unsettled) > n / 2 else 'Mostly' if not unsettled.empty else 'Yes'}: in "
              f"{_of(len(unsettled), n)} (model, attack, norm) cases, doubling the steps or raising the restarts to "
              f"{most} still moves the mean relative deviation by {tolerance:.0%} or more")
    caveat = ("from attacks that fall short of stronger budgets (chapter 6): rates are lower estimates, onsets upper "
              "estimates (the budgets were compared at RAR's ℓ∞ radius and ℓ2 radius 1, not at the onset radii)"
              if len(short_of) else "")
    cosine = budget_table(rows, chapter, "cosine") if "cosine" in rows.columns else None
    cosine_words = ""
    if cosine is not None and len(cosine):
        short_cos = cosine[cosine["chapter_gap"].map(lambda i: i.sign > 0)]
        worst_cos = cosine.loc[cosine["chapter_gap"].map(lambda i: i.estimate).idxmax()]
        cosine_words = (f"the lowest cosine the chapter's budget reaches lies above the grid's best in "
                        f"{_of(len(short_cos), len(cosine))} cases, by up to {worst_cos['chapter_gap']} "
                        f"({_model(worst_cos)})")
    return {"ch6_budget_n": config["n_images"], "ch6_budget_cost": cost, "ch6_budget_chapter": said,
            "ch6_budget_answer": answer, "ch6_budget_caveat": caveat, "ch6_budget_cosine": cosine_words,
            "ch6_budget_converged": converged, "ch6_budget_short": short,
            "ch6_budget_grid": (f"{', '.join(map(str, config['steps']))} steps and "
                                f"{', '.join(map(str, config['restarts']))} restarts")}


def budget_figure(summary_rows: pd.DataFrame, restarts: int | None = None,
                  chapter: tuple[int, int] | None = None):
    """The mean relative deviation against the attacks' steps (``summary``'s rows).

    One row of panels per norm, one panel per data set; one colour per training method, solid lines for attribution
    PGD and dashed for IFIA, at ``restarts`` (default the grid's most). With ``chapter`` (its steps and restarts, a
    budget of the grid), the chapter's own budget is marked on every line by an open circle.
    """
    from .style import method_color

    restarts = int(summary_rows["restarts"].max()) if restarts is None else restarts
    grid = set(zip(summary_rows["steps"], summary_rows["restarts"], strict=True))
    if chapter is not None and tuple(chapter) not in grid:
        raise ValueError(f"chapter's budget {tuple(chapter)} is not one of the grid's (steps, restarts) "
                         f"{sorted(grid)}.")
    means = summary_rows.set_index(["dataset", "norm", "method", "attack", "steps", "restarts"])["mean"]
    part = summary_rows[summary_rows["restarts"] == restarts]
    datasets, norms = list(dict.fromkeys(part["dataset"])), list(dict.fromkeys(part["norm"]))
    fig, axes = plt.subplots(len(norms), len(datasets), figsize=(4.2 * len(datasets), 3.0 * len(norms)),
                             squeeze=False, sharex=True)
    for i, norm in enumerate(norms):
        for ax, ds in zip(axes[i], datasets, strict=True):
            panel = part[(part["dataset"] == ds) & (part["norm"] == norm)]
            for (method, attack), line in panel.groupby(["method", "attack"], sort=False):
                ax.plot(line["steps"], line["mean"], "-" if attack == "pgd" else "--", marker="o", ms=3,
                        color=method_color(method), label=METHOD_NAMES.get(method, method) if attack == "pgd" else None)
                if chapter is not None:
                    own = means[(ds, norm, method, attack, *chapter)]
                    ax.plot([chapter[0]], [own], "o", ms=8, mfc="none", color=method_color(method))
            ax.set_xscale("log")
            ax.set_xticks(sorted(panel["steps"].unique()), labels=map(str, sorted(panel["steps"].unique())))
            ax.minorticks_off()
            eps = _radii(ds)[norm] if ds in DATASETS else None  # the grid's radius of that data set and norm
            ax.set_title(f"{DATASET_NAMES.get(ds, ds)}, {NORM_NAMES.get(norm, norm)}"
                         + (f" ε = {radius_label(eps)}" if eps is not None else ""))
        axes[i][0].set_ylabel("relative deviation (mean)")
    for ax in axes[-1]:
        ax.set_xlabel("attack steps (same total length)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [plt.Line2D([], [], color="0.3", ls=ls) for ls in ("-", "--")]
    labels += ["attribution PGD", "IFIA"]
    if chapter is not None:
        handles.append(plt.Line2D([], [], color="0.3", ls="", marker="o", ms=8, mfc="none"))
        labels.append(f"this chapter's budget ({chapter[0]} steps, "
                      f"{chapter[1]} restart{'' if chapter[1] == 1 else 's'})")
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, -0.06))
    fig.tight_layout()
    return fig


def budget_text_table(table: pd.DataFrame) -> pd.DataFrame:
    """``budget_table`` for the page: means as numbers, the chapter's shortfall with its interval, moves in percent."""
    def percent(v):
        return "–" if pd.isna(v) else "0.0%" if abs(v) < 5e-4 else f"{v:+.1%}"

    return pd.DataFrame({
        "data set": table["dataset"].map(lambda d: DATASET_NAMES.get(d, d)),
        "method": table["method"].map(lambda m: METHOD_NAMES.get(m, m)),
        "attack": table["attack"].map({"pgd": "PGD", "ifia": "IFIA"}),
        "norm": table["norm"].map(lambda n: NORM_NAMES.get(n, n)),
        "chapter's budget": table["chapter"].map(lambda i: i.estimate),
        "best of the grid": table["best"].map(lambda i: i.estimate),
        "best minus chapter's": table["chapter_gap"].map(str),
        "change with 2× steps": table["more_steps"].map(percent),
        "change with 5 restarts": table["more_restarts"].map(percent)})
