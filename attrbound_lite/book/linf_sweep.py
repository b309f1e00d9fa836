"""Chapter 6's l-infinity saliency sweep with the tighter bound, computed once (``results/ch6_linf_sweep``).

In l-infinity two first-order bounds hold, ``eps sqrt(n) sigma_max`` and ``eps || |J| 1 ||_2``, and their minimum is
the bound (chapter 2). The second needs every row of the Jacobian, ``n`` Hessian-vector products per image, which adds
about a quarter of an hour to chapter 6 on a CPU. So the l-infinity half of the chapter's saliency sweep
(``validation.sweep_config``: every seed-0 reference model, the chapter's images, radii and attacks) is run once with
the row sums formed on every image (``MAX_DENSE_N``), committed with its provenance and loaded by the book
(``validation.run_validation``, which runs the l2 half now); every CI run recomputes a sample of its rows
(``attrbound_lite.results``).

The sweep is cut into shards of ``SHARD_SIZE`` images (``sweep.plan_shards``: each with its own seed), so that a row
is recomputed by running only its shard (``sweep.run_shard``). A build whose chapter-6 settings differ from
``SETTINGS`` (the full profile, or other parameters) runs its own sweep instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..results import ResultSpec, load_results
from ..sweep import load_config, load_data, plan_shards, run_shard
from ..zoo import REFERENCE, load_reference, reference_name, zoo_root
from .budget import DATASETS, METHODS

__all__ = ["SETTINGS", "MAX_DENSE_N", "SHARD_SIZE", "SPEC", "sweep_settings", "load", "rows_for"]

# The chapter's CI settings (notebooks/06_validation.ipynb's parameters): a build with these reads the committed rows.
SETTINGS = {"n_samples": 64, "restarts": 1, "steps": 10, "seed": 0,
            "eps_l2": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
            "eps_linf": [0.0003, 0.001, 0.003, 0.01, 0.03137254901960784, 0.1, 0.3]}
MAX_DENSE_N = 4096  # every data set's n (784, 3072): the row-sum form on every image
SHARD_SIZE = 8  # images per shard: the unit a recomputation runs
# As the other committed attacks': a recomputation on another CPU may round the last bits differently, and a sign
# step can then go another way.
TOLERANCE = 0.03
KEYS = ("dataset", "model", "sample", "attribution", "norm", "eps", "attack", "restart")
VALUES = ("ratio_euclidean", "achieved_cosine", "bound_cosine", "label_kept")  # compared: each on a scale near 1


def sweep_settings(s) -> dict:
    """The chapter-6 settings ``s`` (``profiles.Settings``) that determine its sweep, as ``SETTINGS`` has them."""
    return {"n_samples": s.n_samples, "restarts": s.restarts, "steps": s.steps, "seed": s.seed,
            "eps_l2": list(s.eps_l2), "eps_linf": list(s.eps_linf)}


def _config_of(ds: str, method: str) -> dict:
    """The sweep config of one reference model (``validation.sweep_config`` with the committed settings)."""
    from .validation import sweep_config

    name = reference_name(ds, method)
    weights = zoo_root() / REFERENCE[name].key / "model.safetensors"
    return load_config(sweep_config(ds, {method: weights}, n_samples=SETTINGS["n_samples"],
                                    eps_l2=SETTINGS["eps_l2"], eps_linf=SETTINGS["eps_linf"],
                                    attributions=["saliency"], restarts=SETTINGS["restarts"],
                                    steps=SETTINGS["steps"], max_dense_n=MAX_DENSE_N, shard_size=SHARD_SIZE,
                                    seed=SETTINGS["seed"], norms=("linf",)))


def _unit(unit: str) -> tuple[str, str]:
    return next((ds, m) for ds in DATASETS for m in METHODS if unit == f"{ds}-{m}")


def _run(unit: str, device, shards=None) -> pd.DataFrame:
    """The rows of ``unit``'s shards (all, or those numbered ``shards``), with a ``dataset`` column."""
    ds, method = _unit(unit)
    cfg = _config_of(ds, method)
    model = load_reference(reference_name(ds, method), device=device)[0]
    data = load_data(cfg)
    tables = [run_shard(cfg, shard, model, data) for shard in plan_shards(cfg)
              if shards is None or shard.index in shards]
    return pd.concat(tables, ignore_index=True).assign(dataset=ds)


def _compute(unit: str, device, progress: bool) -> pd.DataFrame:
    return _run(unit, device)


def _recompute(rows: pd.DataFrame, device) -> pd.DataFrame:
    shards = set((rows["sample"].to_numpy() // SHARD_SIZE).tolist())
    return _run(rows["unit"].iloc[0], device, shards)


def _config() -> dict:
    return {**SETTINGS, "attribution": "saliency", "max_dense_n": MAX_DENSE_N, "shard_size": SHARD_SIZE,
            "models": {ds: {m: REFERENCE[reference_name(ds, m)].key for m in METHODS} for ds in DATASETS},
            "attacks": _config_of(DATASETS[0], METHODS[0])["attacks"]}


def _extras() -> tuple[str, ...]:
    from ..experiments import ROW_COLUMNS

    return tuple(c for c in ROW_COLUMNS if c not in (*KEYS, *VALUES))


SPEC = ResultSpec(
    name="ch6_linf_sweep",
    title="Chapter 6's l-infinity saliency sweep with the row-sum bound, on every seed-0 reference model",
    config=_config(), keys=KEYS, values=VALUES, extras=_extras(), digits=9, tolerance=TOLERANCE,
    units=tuple(f"{ds}-{m}" for ds in DATASETS for m in METHODS), compute=_compute, recompute=_recompute,
    modules=("attrbound_lite.book.linf_sweep", "attrbound_lite.experiments",
             "attrbound_lite.experiment_specs", "attrbound_lite.bounds",
             "attrbound_lite.jacobians", "attrbound_lite.attacks", "attrbound_lite.attributions",
             "attrbound_lite.threat_models", "attrbound_lite.models", "attrbound_lite.sweep.runner"))


def load(root=None) -> pd.DataFrame:
    """The committed rows (``results.load_results(SPEC)``), checked against their manifest."""
    return load_results(SPEC, root)


def rows_for(s, dataset: str, methods, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """The committed l-infinity rows of ``dataset`` for the models ``methods``, as ``sweep.run_sweep`` returns rows.

    Args:
        s: chapter 6's settings; they must be ``SETTINGS`` (``sweep_settings``).
        dataset: a data set of ``DATASETS``.
        methods: training methods of ``METHODS``.
        rows: the committed rows (default ``load()``).

    Returns:
        The sweep's table (``experiments.ROW_COLUMNS``, rows sorted as a sweep sorts them) with a ``dataset`` column.

    Raises:
        ValueError: settings other than the committed ones (run the sweep: the chapter's parameter committed=False),
            or a data set or method the committed sweep does not hold.
    """
    from ..experiments import KEY_COLUMNS, ROW_COLUMNS

    if sweep_settings(s) != SETTINGS:
        differ = {k: v for k, v in sweep_settings(s).items() if SETTINGS[k] != v}
        raise ValueError(f"the committed l-infinity sweep was run with {({k: SETTINGS[k] for k in differ})}, this "
                         f"build asks for {differ}: run the sweep now (chapter 6's parameter committed=False) or "
                         "rebuild the result with these settings.")
    if dataset not in DATASETS or any(m not in METHODS for m in methods):
        raise ValueError(f"the committed l-infinity sweep holds the data sets {list(DATASETS)} and the methods "
                         f"{list(METHODS)}, got {dataset!r} and {list(methods)}.")
    rows = load() if rows is None else rows
    part = rows[(rows["dataset"] == dataset) & rows["model"].isin(list(methods))]
    out = part[[*ROW_COLUMNS, "dataset"]].sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
    out["sample"] = out["sample"].astype(np.int64)
    return out
