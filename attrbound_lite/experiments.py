"""Bound validation: the bounds of ``attrbound_lite.bounds`` next to the deviations that attacks achieve.

``validate_bounds`` returns a tidy table, one row per (sample, attribution, norm, eps, attack, restart):
the bound on the Euclidean deviation ``r = ||A(x') - A(x)||_2`` and on the cosine similarity
``cos(A(x), A(x'))`` of the attribution, next to what the attack achieved on the real model at its best
label-preserving iterate ``x'`` of that restart. The target class is the model's prediction at ``x``
(the class the attacks must keep); the true label is recorded beside it.

Every bound is linear in eps (``eps * sigma_max`` for l2, ``eps * min(sqrt(n) sigma_max, || |J| 1 ||_2)``
for l-infinity), so the bound is computed once per batch and attribution, at eps = 1 and for the
l-infinity ball when it is asked for (its ``sigma_max`` also gives the l2 bound), then scaled; the cosine
bound is ``cosine_bound(eps * r_1, ||A(x)||_2)``. The attacks (``"pgd"``: ``AttributionPGD``, Euclidean
or cosine objective; ``"ifia"``: ``IFIA(kind="topk")``) advance every (radius, restart, sample) instance of a
batch and a norm together, as the rows of one attack batch with a radius per row (cut into chunks that fit
the device, ``runtime.run_in_chunks``); each radius's rows start where a separate attack at that radius
would, so the rows equal the per-radius calls (``per_restart=True``: one best iterate per (restart, sample)).

A row is a violation (``exceeded``) when the attack kept the label and

- Euclidean: ``achieved_euclidean > (1 + rtol) * bound_euclidean``, or
- cosine:    ``achieved_cosine < bound_cosine - cosine_atol``,

first in the model's precision (``exceeded_model_dtype``), then again in float64 for the rows that counted one: the
label, the deviation at the attack's point and the bound recomputed on a float64 copy of the model, so that a
float32 artefact (an argmax tie, a cancellation in the deviation, a Lanczos estimate) is not counted.

Tightness: ``ratio_euclidean = achieved_euclidean / bound_euclidean`` and ``ratio_cosine = (1 -
achieved_cosine) / (1 - bound_cosine)`` (cosine distances), NaN where the attack failed. ``summarize``
gives per group (model, eps, norm, attribution, attack) the number of attacks (rows), the violation rate
among the attacks that kept the label, and the median and 95th percentile of the ratios.
"""

from __future__ import annotations

import copy
import numbers
import time
from typing import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import metrics
from ._checks import (
    check_choice,
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
from .attacks import AttackResult, Deviation
from .attributions import ATTRIBUTIONS, get_explainer
from .bounds import BoundOptions, attribution_bound, cosine_bound
from .data import as_tensors
from .experiment_specs import (
    ATTACK_TYPES,
    AttackSpec,
    Tolerance,
    _attack_specs,
    _attribution_specs,
    _bound_options,
    _eps_grid,
)
from .runtime import derive_seed, run_in_chunks

__all__ = ["validate_bounds", "Tolerance", "bound_table", "bound_seed", "summarize", "AttackSpec", "ATTACK_TYPES",
           "KEY_COLUMNS", "GROUP_COLUMNS", "UNIT_COLUMNS", "TIMING_COLUMNS", "ROW_COLUMNS"]

# A row's identity (the table is sorted by it) and the groups of ``summarize``.
KEY_COLUMNS = ("model", "sample", "attribution", "norm", "eps", "attack", "restart")
GROUP_COLUMNS = ("model", "eps", "norm", "attribution", "attack")
# The unit of a per-sample statistic: one image of one model of one data set (those of the columns a table has).
UNIT_COLUMNS = ("dataset", "model", "sample")
TIMING_COLUMNS = ("bound_seconds", "attack_seconds")
ROW_COLUMNS = (
    "model", "sample", "label", "predicted", "correct", "attribution", "norm", "eps", "attack", "restart",
    "steps", "sigma_max", "attribution_norm", "bound_euclidean", "bound_euclidean_lower", "bound_cosine",
    "bound_converged", "achieved_euclidean", "achieved_cosine", "label_kept", "topk_intersection",
    "exceeded_euclidean", "exceeded_cosine", "exceeded", "exceeded_model_dtype", "ratio_euclidean", "ratio_cosine",
    *TIMING_COLUMNS)
"""Columns of the ``validate_bounds`` table, in order. ``sample``: index of the sample in its split (from
``data.indices`` for a seeded subset, else its position in ``data``); ``bound_euclidean_lower``: a lower
estimate of the linearised worst case (``eps * sigma_max`` for l2, exact there; the sign-iteration value
for l-infinity); timings are per row, in seconds (the bound's time is shared by the rows of a sample).
``exceeded_model_dtype``: the violation as counted in the model's precision; ``exceeded`` and its two parts are that
count confirmed in float64 (deviation, label and bound recomputed at the attack's point; the same for a float64
model)."""


def validate_bounds(model: nn.Module, data, eps_grid, norms: Sequence[str] = ("l2", "linf"),
                    attributions=("saliency",), attacks=("pgd", "ifia"), n_samples: int | None = None,
                    restarts: int = 1, *, sample_ids: Iterable[int] | None = None,
                    surrogate_beta: float | None = None, rtol: float = Tolerance.model_fields["rtol"].default,
                    cosine_atol: float = Tolerance.model_fields["cosine_atol"].default,
                    batch_size: int | None = None, seed: int = 0, model_name: str = "model",
                    bound_options: Mapping | BoundOptions | None = None,
                    on_progress: Callable[[int], None] | None = None, chunk_size: int | None = None,
                    compile: bool | str = False) -> pd.DataFrame:
    """The bounds next to what PGD and IFIA achieve: one row per (sample, attribution, norm, eps, attack, restart).

    Every bound is linear in eps, so each (batch, attribution) is bounded once at eps = 1 and scaled. A row is a
    violation when the attack kept the label and ``achieved_euclidean > (1 + rtol) * bound_euclidean`` or
    ``achieved_cosine < bound_cosine - cosine_atol``. Runs on the model's device, in the model's dtype; the rows that
    count a violation are recomputed in float64 (``_confirm_in_float64``) and keep it only if it holds there
    (``exceeded_model_dtype`` keeps the first count).

    Args:
        model: the model (smooth, or with ``surrogate_beta``).
        data: an ``ImageDataset``, a ``TensorDataset`` or a pair ``(images (N, C, H, W) in [0, 1], labels (N,))``.
        eps_grid: a list of radii for every norm, or ``{norm: [eps, ...]}``.
        norms: ``"l2"`` and/or ``"linf"``.
        attributions: names, ``(name, options)`` pairs or ``{"name": ..., **options}`` (e.g. IG's ``n_steps``).
        attacks: ``"pgd"``, ``"ifia"``, mappings of ``AttackSpec`` fields or ``AttackSpec``s, with distinct labels.
        n_samples: the first n samples (default all); or give ``sample_ids``.
        restarts: random restarts of every attack (an ``AttackSpec`` may set its own).
        sample_ids: positions in ``data``.
        surrogate_beta: softplus surrogate for the Jacobians and gradients of ReLU / max-pool models.
        rtol: relative tolerance of the Euclidean bound.
        cosine_atol: absolute tolerance of the cosine bound.
        batch_size: samples per batch (default all): each batch is bounded once per attribution, and each attack
            then runs every (radius, restart, sample) instance of the batch and a norm as rows of one attack
            batch, each row with its own radius (``batch_size * restarts * radii`` rows).
        seed: every bound and attack draws its own stream, derived from (seed, attribution, norm, eps, attack,
            first sample of the batch): results depend on the batches but not on their order, and a radius's
            starting points are those a separate call at that radius would draw.
        model_name: the ``model`` column.
        bound_options: a ``bounds.BoundOptions`` or a mapping of its fields (``method, tol, max_iter, max_dense_n,
            sign_iters``), validated; ``max_dense_n=0`` keeps the l-infinity bound to ``eps sqrt(n) sigma_max``,
            skipping ``|| |J| 1 ||_2`` (n Hessian-vector products per sample).
        on_progress: called after every attack batch with the number of rows it produced.
        chunk_size: rows per attack batch, a positive integer; ``None`` (default): ``runtime.run_in_chunks``'s: on
            CUDA as many as memory allows (learnt once from out-of-memory errors), on a CPU ``runtime.CPU_CHUNK``. A
            row's result does not depend on it beyond the last bits of float rounding (none at all in the CI sweep).
        compile: compile the attack step (``True`` or a ``torch.compile`` mode; ``AttributionAttack``).

    Returns:
        A DataFrame with the columns ``ROW_COLUMNS``, sorted by ``KEY_COLUMNS``.

    Raises:
        TypeError: a model that is not a ``torch.nn.Module``; data that is not tensors (numpy arrays: convert them
            with ``torch.as_tensor``), images that are not floating point, labels that are not integers; ``norms``
            given as a single string (``"l2"``: write ``["l2"]``); a seed that is not an integer >= 0.
        ValueError: images outside [0, 1] or of a shape the model does not take; labels outside the model's
            classes; an unknown norm, attribution or attack; a bad radius, count, sample id, tolerance or
            ``chunk_size``.
    """
    check_model(model, second_order=True)
    x_all, y_all = as_tensors(data)
    check_inputs(x_all, "the images of data", box=True)
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    if chunk_size is not None:
        check_positive_int(chunk_size, "chunk_size (rows per attack batch; None: as many as fit)")
    seed = check_seed(seed)
    if sample_ids is not None and n_samples is not None:
        raise ValueError("pass n_samples (the first n samples) or sample_ids (positions in data), not both.")
    if sample_ids is not None:
        if isinstance(sample_ids, str) or not hasattr(sample_ids, "__iter__"):
            raise TypeError(f"sample_ids must be a list of positions in data, got {sample_ids!r}.")
        if isinstance(sample_ids, torch.Tensor):
            if sample_ids.is_floating_point() or sample_ids.is_complex() or sample_ids.ndim != 1:
                raise TypeError(f"sample_ids must be integer positions in data (a 1-d integer tensor, list or "
                                f"array), got a {sample_ids.dtype} tensor of shape {tuple(sample_ids.shape)}.")
            sample_ids = sample_ids.tolist()
        sample_ids = list(sample_ids)
        if any(isinstance(i, bool) or not isinstance(i, numbers.Integral) for i in sample_ids):
            raise TypeError(f"sample_ids must be integer positions in data, got {sample_ids[:8]!r}.")
        ids = torch.as_tensor([int(i) for i in sample_ids], dtype=torch.long)
        if ids.unique().numel() != ids.numel():
            raise ValueError(f"sample_ids holds a position twice ({sample_ids[:8]!r}...): each sample would count "
                             "twice in every statistic; pass distinct positions.")
    else:
        if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral)
                                      or not 1 <= n_samples <= len(y_all)):
            raise ValueError(f"n_samples must be an int in [1, {len(y_all)}] (the size of data), got {n_samples!r}.")
        ids = torch.arange(n_samples or len(y_all))
    if ids.numel() == 0 or ids.min() < 0 or ids.max() >= len(y_all):
        raise ValueError(f"sample_ids must be non-empty positions in [0, {len(y_all) - 1}].")
    indices = getattr(data, "indices", None)
    split_index = (torch.as_tensor(indices) if indices is not None else torch.arange(len(y_all)))[ids]
    grid = _eps_grid(eps_grid, norms)
    attr_specs = _attribution_specs(attributions)
    specs = _attack_specs(attacks)
    restarts = check_positive_int(restarts, "restarts")
    if on_progress is not None and not callable(on_progress):
        raise TypeError(f"on_progress must be a function of the number of rows done, or None, got {on_progress!r}.")
    Tolerance(rtol=rtol, cosine_atol=cosine_atol)  # validates both
    batch_size = batch_size or ids.numel()
    dtype, device = model_dtype_device(model)  # a model's parameters, or its buffers where it has none
    dtype, device = dtype or x_all.dtype, device or torch.device("cpu")
    check_model_inputs(model, x_all[:1].to(device=device, dtype=dtype), "the images of data")
    check_labels(y_all, model_classes(model, x_all[:1].to(device=device, dtype=dtype)), name="the labels of data")
    bound_options = _bound_options(bound_options)
    bound_norm = "linf" if "linf" in grid else "l2"

    frames = []
    # a violation counted in a lower precision is recomputed in float64 (_confirm_in_float64)
    model64 = None  # its float64 copy, made when a first violation needs it (none on most models: no extra memory)
    with eval_mode(model), full_precision():
        for start in range(0, ids.numel(), batch_size):
            rows = ids[start:start + batch_size]
            x = x_all[rows].to(device=device, dtype=dtype)
            predicted, sample = _batch(model, x, y_all[rows], split_index[start:start + batch_size], model_name)
            for attr_name, options in attr_specs:
                t0 = time.perf_counter()
                first = int(split_index[start])  # streams differ per batch (identified by its first sample)
                bound, unit = _unit_bounds(model, x, predicted, bound_norm, attr_name, options, surrogate_beta,
                                           bound_seed(seed, attr_name, first), bound_options)
                bound_seconds = (time.perf_counter() - t0) / len(rows)
                sigma, a_norm = unit["l2"][0], bound.attribution_norm.detach().double().cpu()
                explainer = get_explainer(attr_name, model, **options)
                flagged = []  # (rows, their adversarial points) of every attack that counted a violation
                for norm, eps_values in grid.items():
                    per_radius = []
                    for eps in eps_values:
                        euclid_bound = eps * unit[norm][0]
                        per_radius.append(dict(sample, attribution=attr_name, norm=norm, eps=eps,
                                               sigma_max=sigma.numpy(), attribution_norm=a_norm.numpy(),
                                               bound_euclidean=euclid_bound.numpy(),
                                               bound_euclidean_lower=(eps * unit[norm][1]).numpy(),
                                               bound_cosine=cosine_bound(euclid_bound, a_norm).numpy(),
                                               bound_converged=bound.converged.cpu().numpy(),
                                               bound_seconds=bound_seconds))
                    for spec in specs:
                        reps = spec.restarts or restarts
                        seeds = [derive_seed(seed, "attack", attr_name, norm, eps, spec.label, first)
                                 for eps in eps_values]
                        t0 = time.perf_counter()
                        result = _attack_radii(model, explainer, x, predicted, spec, norm, eps_values, reps, seeds,
                                               surrogate_beta, chunk_size, compile, on_progress,
                                               key=(id(model), attr_name, repr(sorted(options.items()))))
                        attack_seconds = (time.perf_counter() - t0) / (reps * len(rows) * len(eps_values))
                        block = reps * len(rows)
                        for j, per_sample in enumerate(per_radius):
                            part = _slice(result, j * block, (j + 1) * block)
                            frame = _rows(per_sample, spec, reps, part, attack_seconds, rtol, cosine_atol)
                            frames.append(frame)
                            if frame["exceeded"].any():
                                rows_at = torch.as_tensor(np.flatnonzero(frame["exceeded"]), device=x.device)
                                flagged.append((frame, part.x_adv[rows_at]))
                if flagged and dtype != torch.float64:
                    if model64 is None:
                        model64 = copy.deepcopy(model).double().eval()
                    _confirm_in_float64(model64, x, predicted, attr_name, options, flagged, surrogate_beta,
                                        bound_seed(seed, attr_name, first), bound_options, bound_norm, rtol,
                                        cosine_atol)
    table = pd.concat(frames, ignore_index=True)[list(ROW_COLUMNS)]
    return table.sort_values(list(KEY_COLUMNS), kind="mergesort", ignore_index=True)


def _confirm_in_float64(model64: nn.Module, x: torch.Tensor, predicted: torch.Tensor, attr_name: str, options: dict,
                        flagged: list, surrogate_beta, seed: int, bound_options, bound_norm: str, rtol: float,
                        cosine_atol: float) -> None:
    """Recompute in float64 the rows that counted a violation in the model's precision; keep those that still do.

    For every flagged row: the label (``model64`` at the attack's point), the deviation ``A(x') - A(x)`` and the bound
    at ``x`` (``attribution_bound`` on ``model64``, with the batch's bound seed), all in float64, and the same rule as
    ``_rows``. ``exceeded_euclidean``, ``exceeded_cosine`` and ``exceeded`` of those rows become the float64 verdicts;
    rows that did not count a violation are not recomputed. Edits the frames of ``flagged`` in place.

    ``model64`` is a float64 copy of the model on its device; ``x`` (B, ...) the batch and ``predicted`` (B,) its
    predicted classes (the attacks' targets); ``flagged`` holds ``(frame, x_adv)`` pairs: the rows of one attack call
    (restart-major, ``len(frame) = R B``) and the adversarial points of its rows with ``exceeded``, in order; the
    other arguments are the batch's bound (``_unit_bounds``) and the tolerances of ``_rows``.
    """
    batch = len(x)
    positions = [np.tile(np.arange(batch), len(frame) // batch)[frame["exceeded"].to_numpy()] for frame, _ in flagged]
    need = np.unique(np.concatenate(positions))
    index = torch.as_tensor(need, device=x.device)
    x64, target = x[index].double(), predicted[index]
    # a per-sample option (an IG baseline of shape (B, ...)) follows the samples recomputed
    options = {k: v[index].double() if torch.is_tensor(v) and v.ndim == x.ndim and len(v) == batch else v
               for k, v in options.items()}
    bound, unit = _unit_bounds(model64, x64, target, bound_norm, attr_name, options, surrogate_beta, seed,
                               bound_options)
    a_norm = bound.attribution_norm.detach().double().cpu()
    explainer = get_explainer(attr_name, model64, **options).for_batch(x64)
    reference = explainer.attribute(x64, target=target).detach()
    where = {int(p): i for i, p in enumerate(need)}
    for (frame, x_adv), pos in zip(flagged, positions, strict=True):
        rows = torch.as_tensor([where[int(p)] for p in pos], device=x.device)
        adv = x_adv.double()
        with torch.no_grad():
            kept = (model64(adv).argmax(1) == target[rows]).cpu().numpy()
        attr = explainer.for_batch(x64, rows=rows).attribute(adv, target=target[rows]).detach()
        achieved_e = metrics.euclidean(attr, reference[rows]).double().cpu()
        achieved_c = metrics.cosine(attr, reference[rows]).double().cpu()
        cpu_rows, mask = rows.cpu(), frame["exceeded"].to_numpy().copy()
        bound_e = torch.as_tensor(frame["eps"].to_numpy()[mask]) * unit[frame["norm"].iloc[0]][0][cpu_rows]
        bound_c = cosine_bound(bound_e, a_norm[cpu_rows])
        exceeded_e = kept & (achieved_e > (1 + rtol) * bound_e).numpy()
        exceeded_c = kept & (achieved_c < bound_c - cosine_atol).numpy()
        frame.loc[mask, "exceeded_euclidean"] = exceeded_e
        frame.loc[mask, "exceeded_cosine"] = exceeded_c
        frame.loc[mask, "exceeded"] = exceeded_e | exceeded_c


def _batch(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, sample_ids: torch.Tensor, model_name: str):
    """The predicted classes of a batch and the per-sample columns every row of it shares."""
    with torch.no_grad():
        predicted = model(x).argmax(1)
    columns = {"model": model_name, "sample": sample_ids.numpy(), "label": labels.numpy(),
               "predicted": predicted.cpu().numpy()}
    columns["correct"] = columns["label"] == columns["predicted"]
    return predicted, columns


def _attack_radii(model: nn.Module, explainer, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, norm: str,
                  radii: Sequence[float], reps: int, seeds: Sequence[int], surrogate_beta: float | None,
                  chunk_size: int | None, compile, on_progress, key) -> AttackResult:
    """Every (radius, restart, sample) instance of one attack in batches with a radius per row.

    Rows are radius-major, then restart, then sample (row ``j R B + r B + i``). Each radius's starting points
    are those its own per-radius attack would draw (seeded ``seeds[j]``), so the instances are the same as
    in one call per radius; the batches are cut by ``runtime.run_in_chunks`` (on CUDA as large as memory
    allows). Returns one ``AttackResult`` over all rows (per restart).
    """
    pixels = x[0, 0].numel()
    starts = torch.cat([spec.build(model, explainer, eps, norm, reps, surrogate_beta, s, pixels).starts(x)
                        for eps, s in zip(radii, seeds, strict=True)])
    n_rows = len(radii) * reps * x.shape[0]

    def per_row(values: list[float]) -> torch.Tensor:  # Python floats rounded once to the model's dtype, as scalars are
        return torch.tensor(values, dtype=x.dtype, device=x.device).repeat_interleave(reps * x.shape[0])

    eps_rows = per_row(list(radii))
    alpha_rows = per_row([spec.resolved(pixels).relative_alpha * eps for eps in radii])
    x_rows = x.repeat(len(radii) * reps, *([1] * (x.ndim - 1)))
    y_rows = y.repeat(len(radii) * reps)
    rows_explainer = explainer.for_batch(x, repeats=len(radii) * reps)

    def chunk(start: int, stop: int) -> AttackResult:
        explainer_rows = rows_explainer.for_batch(x_rows, rows=slice(start, stop))
        attack = spec.build(model, explainer_rows, eps_rows[start:stop], norm, 1, surrogate_beta, seeds[0], pixels,
                            compile=compile, alpha=alpha_rows[start:stop])
        result = attack(x_rows[start:stop], y_rows[start:stop], start=starts[start:stop])
        if on_progress is not None:
            on_progress(stop - start)
        return result

    key = (*key, spec.type, spec.objective, tuple(x.shape[1:]), str(x.dtype), compile)
    return _concat(run_in_chunks(chunk, n_rows, x.device, key=key, size=chunk_size))


def _concat(results: Sequence[AttackResult]) -> AttackResult:
    """One ``AttackResult`` of the rows of several (in order)."""
    first = results[0]
    cat = (lambda name: torch.cat([getattr(r, name) for r in results]))
    return AttackResult(
        x_adv=cat("x_adv"), label_kept=cat("label_kept"), score=cat("score"),
        deviation=Deviation(torch.cat([r.deviation.euclidean for r in results]),
                            torch.cat([r.deviation.cosine for r in results])),
        iterations=first.iterations, restarts=first.restarts,
        topk_intersection=None if first.topk_intersection is None else cat("topk_intersection"))


def _slice(result: AttackResult, start: int, stop: int) -> AttackResult:
    """Rows ``start:stop`` of an ``AttackResult``."""
    return AttackResult(
        x_adv=result.x_adv[start:stop], label_kept=result.label_kept[start:stop], score=result.score[start:stop],
        deviation=Deviation(result.deviation.euclidean[start:stop], result.deviation.cosine[start:stop]),
        iterations=result.iterations, restarts=result.restarts,
        topk_intersection=None if result.topk_intersection is None else result.topk_intersection[start:stop])


def bound_seed(seed: int, attribution: str, first: int) -> int:
    """The seed of the bound that ``validate_bounds`` and ``bound_table`` compute for one batch and attribution.

    It seeds the Lanczos start vector: ``derive_seed(seed, "bound", attribution, first)``, with ``first`` the batch's
    first sample (its index in the split for ``validate_bounds``, its position in ``data`` for ``bound_table``).
    Passing it to ``attribution_bound`` for the same batch reproduces the table's bounds.

    Raises:
        TypeError: ``seed`` or ``first`` is not an integer >= 0 (Python or numpy; a string or float is refused).
        ValueError: ``attribution`` is not a name of ``attributions.ATTRIBUTIONS``.
    """
    seed = check_seed(seed)
    check_choice(attribution, tuple(ATTRIBUTIONS), "attribution")
    first = check_seed(first, "first (the batch's first sample)")
    return derive_seed(seed, "bound", attribution, first)


def _unit_bounds(model, x, predicted, bound_norm, attr_name, options, surrogate_beta, seed, bound_options):
    """``attribution_bound`` at eps = 1 and ``{norm: (upper, lower)}`` Euclidean bounds per unit of eps.

    Float64, on the CPU: every bound is linear in eps, so the rows at any eps are these times eps.
    """
    bound = attribution_bound(model, x, 1.0, bound_norm, attr_name, target=predicted, surrogate_beta=surrogate_beta,
                              seed=seed, **dict(bound_options or {}), **options)
    sigma = bound.sigma_max.detach().double().cpu()
    unit = {"l2": (sigma, sigma)}
    if bound.linf_lower is not None:
        unit["linf"] = (bound.euclidean.detach().double().cpu(), bound.linf_lower.detach().double().cpu())
    return bound, unit


def bound_table(model: nn.Module, data, eps_grid, norms: Sequence[str] = ("l2", "linf"),
                attributions=("saliency",), n_samples: int | None = None, *, surrogate_beta: float | None = None,
                batch_size: int = 64, seed: int = 0, model_name: str = "model",
                bound_options: Mapping | BoundOptions | None = None) -> pd.DataFrame:
    """The bounds alone (no attacks) for the first ``n_samples`` of ``data``.

    One row per (sample, attribution, norm, eps). As in ``validate_bounds``, each (batch, attribution) is bounded
    once at eps = 1 in the l-infinity ball (when asked for; else l2) and scaled; the target is the predicted class.

    Args:
        model: the model.
        data: as in ``validate_bounds``.
        eps_grid: a list of radii for every norm, or ``{norm: [eps, ...]}``.
        norms: ``"l2"`` and/or ``"linf"``.
        attributions: as in ``validate_bounds``.
        n_samples: the first n samples (default all).
        surrogate_beta: softplus surrogate for ReLU / max-pool models.
        batch_size: samples per batch.
        seed: the base of the bounds' seeds.
        model_name: the ``model`` column.
        bound_options: a ``bounds.BoundOptions`` or a mapping of its fields, validated.

    Returns:
        A DataFrame with ``model, sample, label, predicted, correct, attribution, norm, eps, sigma_max,
        attribution_norm, bound_euclidean, bound_cosine, bound_converged``; ``sample`` is the index in the full
        split, as in ``validate_bounds``.

    Raises:
        TypeError, ValueError: invalid arguments, as in ``validate_bounds``.
    """
    check_model(model, second_order=True)
    x_all, y_all = as_tensors(data)
    check_inputs(x_all, "the images of data", box=True)
    check_positive_int(batch_size, "batch_size")
    seed = check_seed(seed)
    n = len(y_all) if n_samples is None else n_samples
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= n <= len(y_all):
        raise ValueError(f"n_samples must be an int in [1, {len(y_all)}] (the size of data), got {n_samples!r}.")
    indices = getattr(data, "indices", None)  # sample ids as in validate_bounds: positions in the full split
    split_index = torch.as_tensor(indices) if indices is not None else torch.arange(len(y_all))
    grid = _eps_grid(eps_grid, norms)
    bound_options = _bound_options(bound_options)
    bound_norm = "linf" if "linf" in grid else "l2"
    dtype, device = model_dtype_device(model)  # a model's parameters, or its buffers where it has none
    dtype, device = dtype or x_all.dtype, device or torch.device("cpu")
    check_model_inputs(model, x_all[:1].to(device=device, dtype=dtype), "the images of data")
    check_labels(y_all, model_classes(model, x_all[:1].to(device=device, dtype=dtype)), name="the labels of data")
    frames = []
    with eval_mode(model), full_precision():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            x = x_all[start:stop].to(device=device, dtype=dtype)
            predicted, base = _batch(model, x, y_all[start:stop], split_index[start:stop], model_name)
            for attr_name, options in _attribution_specs(attributions):
                bound, unit = _unit_bounds(model, x, predicted, bound_norm, attr_name, options, surrogate_beta,
                                           bound_seed(seed, attr_name, start), bound_options)
                sigma, a_norm = unit["l2"][0], bound.attribution_norm.detach().double().cpu()
                for norm, eps_values in grid.items():
                    for eps in eps_values:
                        r = eps * unit[norm][0]
                        frames.append(pd.DataFrame(dict(
                            base, attribution=attr_name, norm=norm, eps=eps, sigma_max=sigma.numpy(),
                            attribution_norm=a_norm.numpy(), bound_euclidean=r.numpy(),
                            bound_cosine=cosine_bound(r, a_norm).numpy(),
                            bound_converged=bound.converged.cpu().numpy())))
    return pd.concat(frames, ignore_index=True)


def _rows(per_sample: dict, spec: AttackSpec, reps: int, result, attack_seconds: float, rtol: float,
          cosine_atol: float) -> pd.DataFrame:
    """The R * B rows of one attack call (restart-major), sample columns repeated per restart."""
    batch = len(per_sample["sample"])
    columns = {k: np.tile(v, reps) if isinstance(v, np.ndarray) else v for k, v in per_sample.items()}
    achieved_e = result.deviation.euclidean.detach().double().cpu().numpy()
    achieved_c = result.deviation.cosine.detach().double().cpu().numpy()
    kept = result.label_kept.cpu().numpy()
    bound_e, bound_c = columns["bound_euclidean"], columns["bound_cosine"]
    with np.errstate(divide="ignore", invalid="ignore"):
        exceeded_e = kept & (achieved_e > (1 + rtol) * bound_e)
        exceeded_c = kept & (achieved_c < bound_c - cosine_atol)
        ratio_e = achieved_e / bound_e
        # Tightness of the cosine bound, NaN where the bound is vacuous (-1: any direction is allowed).
        ratio_c = np.where(bound_c > -1, (1 - achieved_c) / (1 - bound_c), np.nan)
    topk = result.topk_intersection
    columns.update(
        attack=spec.label, restart=np.repeat(np.arange(reps), batch), steps=spec.steps,
        achieved_euclidean=achieved_e, achieved_cosine=achieved_c, label_kept=kept,
        topk_intersection=np.full(reps * batch, np.nan) if topk is None else topk.detach().double().cpu().numpy(),
        exceeded_euclidean=exceeded_e, exceeded_cosine=exceeded_c, exceeded=exceeded_e | exceeded_c,
        exceeded_model_dtype=exceeded_e | exceeded_c,
        ratio_euclidean=ratio_e, ratio_cosine=ratio_c, attack_seconds=attack_seconds)
    return pd.DataFrame(columns)


def summarize(table: pd.DataFrame, by: Sequence[str] = GROUP_COLUMNS) -> pd.DataFrame:
    """Attack statistics per group (default ``GROUP_COLUMNS``).

    Per attack (one row: one restart of one attack on one sample): ``n_attacks``, ``n_kept`` (attacks that kept the
    label), ``violations``, ``violation_rate = violations / n_kept`` (and per bound: ``violation_rate_euclidean``,
    ``violation_rate_cosine``), and the median, 95th percentile (linear interpolation, as ``numpy.quantile``) and
    maximum of ``ratio_euclidean`` and ``ratio_cosine`` over the kept attacks (``ratio_cosine`` is NaN where the cosine
    bound is vacuous; ``cosine_bound_vacuous`` is their share).

    Per unit: a unit is one image of one model of one data set, the columns ``UNIT_COLUMNS`` that the table has
    (``dataset``, ``model``, ``sample``; the sample index alone is shared by every model and data set). ``n_samples``:
    the units of the group; ``n_samples_kept``: those with at least one label-keeping attack; ``sample_violations``:
    those of which at least one label-keeping attack exceeded a bound; ``sample_violation_rate`` = ``sample_violations
    / n_samples_kept``. Whatever the group pools (restarts always; attacks, attributions, norms or radii when ``by``
    leaves them out) is pooled within the unit: a unit violates when any of its pooled attacks does.
    ``table.attrs["n_attacks"]`` of the result is the total number of attacks.

    Raises:
        TypeError: ``table`` is not a DataFrame, ``by`` a string, or a flag column not bool.
        ValueError: ``by`` empty or naming a column twice, a column missing, or rows without a grouping value.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"summarize takes the DataFrame of validate_bounds, got {type(table).__name__}.")
    if isinstance(by, str):
        raise TypeError(f"by must be a list of column names, got the string {by!r}; write [{by!r}].")
    by = list(by)
    if not by:
        raise ValueError("by must name at least one column to group by (e.g. ['eps']); for one overall summary group "
                         "by a column every row shares, such as ['model'].")
    if not all(isinstance(c, Hashable) for c in by):
        raise TypeError(f"by must be a list of column names, got {by!r}; write e.g. ['model', 'eps'].")
    repeated = sorted({c for c in by if by.count(c) > 1}, key=str)
    if repeated:
        raise ValueError(f"by names the columns {repeated} more than once, got {by!r}; name each grouping column once.")
    needed = {*by, "sample", "label_kept", "exceeded", "exceeded_euclidean", "exceeded_cosine", "ratio_euclidean",
              "ratio_cosine"}
    missing = sorted(needed - set(table.columns))
    if missing:
        raise ValueError(f"the table lacks columns {missing}; pass a validate_bounds table.")
    flags = [c for c in ("label_kept", "exceeded", "exceeded_euclidean", "exceeded_cosine")
             if not pd.api.types.is_bool_dtype(table[c])]
    if flags:
        raise TypeError(f"columns {flags} must be bool (as validate_bounds writes them), got "
                        f"{[str(table[c].dtype) for c in flags]}; convert with table.astype({{c: bool}}).")
    empty = table[by].isna().any(axis=1)
    if empty.any():  # groupby would drop those rows, and the summary would cover fewer attacks than n_attacks says
        raise ValueError(f"{int(empty.sum())} rows have no value in the grouping columns {by} (NaN, e.g. tables with "
                         "other columns concatenated); fill them (table.fillna({...})) or group by other columns.")
    units = [c for c in UNIT_COLUMNS if c in table.columns and c not in by]
    kept = table[table["label_kept"]]
    groups = table.groupby(list(by), sort=True)
    out = groups.agg(n_attacks=("sample", "size"), n_kept=("label_kept", "sum"),
                     violations=("exceeded", "sum"), violations_euclidean=("exceeded_euclidean", "sum"),
                     violations_cosine=("exceeded_cosine", "sum"))
    for name in ("violation_rate", "violation_rate_euclidean", "violation_rate_cosine"):
        out[name] = out[name.replace("violation_rate", "violations")] / out["n_kept"].where(out["n_kept"] > 0)
    kept_groups = kept.groupby(list(by), sort=True)
    for ratio in ("ratio_euclidean", "ratio_cosine"):
        out[f"{ratio}_median"] = kept_groups[ratio].median()
        out[f"{ratio}_p95"] = kept_groups[ratio].quantile(0.95)
        out[f"{ratio}_max"] = kept_groups[ratio].max()
    # Per unit (data set, model, image), the worst case over what the group pools (the paper's quantity).
    out.insert(1, "n_samples", table.groupby([*by, *units], sort=True).size().groupby(list(by), sort=True).size())
    per_unit = kept.groupby([*by, *units], sort=True)["exceeded"].any().groupby(list(by), sort=True)
    out["n_samples_kept"] = per_unit.size()
    out["sample_violations"] = per_unit.sum()
    out[["n_samples_kept", "sample_violations"]] = out[["n_samples_kept", "sample_violations"]].fillna(0).astype(int)
    out["sample_violation_rate"] = out["sample_violations"] / out["n_samples_kept"].where(out["n_samples_kept"] > 0)
    out["cosine_bound_vacuous"] = groups["bound_cosine"].apply(lambda b: float((b <= -1).mean())) \
        if "bound_cosine" in table.columns else np.nan
    out = out.drop(columns=["violations_euclidean", "violations_cosine"]).reset_index()
    out.attrs["n_attacks"] = int(len(table))
    return out
