"""Property-based tests of the input contract of the public API (issue 20).

The property, for every call drawn below: it either returns what its documentation promises (per-sample tensors of
shape (B,) with no NaN beyond the documented ones, finite bounds, cosines in [-1, 1]; attacks: tensors or an
``AttackResult`` shaped like the inputs, in the ball and in [0, 1]), or it raises a ``ValueError`` or ``TypeError``
(``attrbound_lite.config.ConfigError`` is a ``ValueError``) whose innermost traceback frame lies inside the
``attrbound_lite`` package: an error the package raised on purpose, never a raw error of torch, numpy or captum.

Each argument's table sorts its values into valid, invalid (the docstrings or the contract of ``_checks`` refuse
them) and either (the documentation leaves them open), so the property is also checked in both directions: a call
whose arguments are all valid must succeed, and a call with an invalid argument must be refused. A call draws common
(valid) values for every argument except, in three calls of four, one or two wild arguments drawn from their other
values, so that most examples probe one mistake at a time and the failing examples hypothesis reports are small.

The examples are derandomised (the same on every run: 100 per entry point, 200 for the cheap metrics and threat
models; ``ATTRBOUND_CONTRACT_EXAMPLES`` sets the 100 for a deeper local run) and the models tiny (width-0.125 smooth
CNNs) with few solver iterations, so that the file runs in under a minute on two CPU cores.
"""

from __future__ import annotations

import copy
import functools
import linecache
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attrbound_lite
from attrbound_lite import (
    attacks,
    attributions,
    bounds,
    certified,
    checkpoints,
    metrics,
    models,
    region,
    runtime,
    stats,
    threat_models,
)

PACKAGE = Path(attrbound_lite.__file__).resolve().parent
CLASSES = 10
EXAMPLES = int(os.environ.get("ATTRBOUND_CONTRACT_EXAMPLES", "100"))
CONTRACT = settings(derandomize=True, deadline=None, database=None, max_examples=EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow])
CHEAP = settings(CONTRACT, max_examples=2 * EXAMPLES)  # metrics and threat models: milliseconds per call

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*did not converge:UserWarning"),  # 5 solver iterations, on purpose
    pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients:UserWarning"),  # Captum
]

VALID, EITHER, INVALID = 0, 1, 2  # a call's verdict is the worst of its arguments' verdicts


# ----------------------------------------------------------------------------------------------------------------
# The property


def innermost_frame(tb) -> tuple[str, int, str]:
    """(file, line, function) of the last frame of a traceback: where the exception was raised."""
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename, tb.tb_lineno, tb.tb_frame.f_code.co_name


def assert_package_error(excinfo: pytest.ExceptionInfo) -> None:
    """The exception is a ValueError or TypeError raised by attrbound_lite itself.

    Its innermost frame lies in the package, on a ``raise`` statement: not in torch, numpy or captum, and not a
    builtin's error on a package line (``range(0, n, 2.5)`` raises a TypeError there without a frame of its own).
    """
    err = excinfo.value
    filename, line, function = innermost_frame(excinfo.tb)
    where = f"{filename}:{line} in {function}"
    assert isinstance(err, (ValueError, TypeError)), \
        f"{type(err).__name__} instead of a ValueError or TypeError, raised at {where}: {err}"
    assert Path(filename).resolve().is_relative_to(PACKAGE), \
        f"{type(err).__name__} raised outside attrbound_lite, at {where}: {err}"
    source = linecache.getline(filename, line).strip()
    assert source.startswith("raise "), \
        f"{type(err).__name__} raised by {source!r} at {where}, not by a raise statement of the package: {err}"


def check_contract(call: Callable[[], Any], verdict: int, check_result: Callable[[Any], None]) -> None:
    """Run ``call``: a package error unless every argument is valid, a documented result unless one is invalid."""
    try:
        result = call()
    except Exception as err:  # every exception is judged by the contract
        assert_package_error(pytest.ExceptionInfo.from_exception(err))
        assert verdict != VALID, f"a valid call was refused: {type(err).__name__}: {err}"
        return
    assert verdict != INVALID, "an invalid argument was accepted: the call returned instead of raising"
    check_result(result)


# ----------------------------------------------------------------------------------------------------------------
# Tables of argument values: label -> Arg(build(ctx), verdict or verdict(ctx))


@dataclass
class Ctx:
    """What the builders of one call see: its labels, the model and the nominal batch size."""
    labels: dict
    model: Any
    dtype: torch.dtype
    input_shape: tuple
    batch: int
    api: str = ""

    def valid_inputs(self) -> torch.Tensor:
        return unit_images((self.batch, *self.input_shape)).to(self.dtype)


@dataclass(frozen=True)
class Arg:
    """One value of an argument: how to build it and its verdict (a constant, or a function of the call).

    ``common``: drawn for an argument that is not one of the call's wild ones; by default the values that are valid
    whatever the call.
    """
    build: Callable[[Ctx], Any]
    verdict: int | Callable[[Ctx], int] = VALID
    common: bool | None = None

    def judge(self, ctx: Ctx) -> int:
        return self.verdict(ctx) if callable(self.verdict) else self.verdict

    @property
    def is_common(self) -> bool:
        return self.verdict == VALID if self.common is None else self.common


def unit_images(shape, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@functools.cache
def model(name: str):
    """The tiny models of the tests (built once): smooth CNNs in float32 and float64, a ReLU one, a plain function."""
    torch.manual_seed(0)
    if name == "mnist32":
        return models.MnistCNN(activation="softplus", beta=10.0, width=0.125, pool="avg").eval()
    if name == "mnist64":
        return copy.deepcopy(model("mnist32")).double()
    if name == "cifar32":
        return models.CifarCNN(activation="softplus", beta=10.0, width=0.125, pool="avg").eval()
    if name == "relu-mnist32":
        return models.MnistCNN(activation="relu", width=0.125, pool="avg").eval()
    if name == "function":  # a callable that is not an nn.Module
        return lambda x: model("mnist32")(x)
    raise KeyError(name)


MODEL_SHAPES = {"mnist32": (1, 28, 28), "mnist64": (1, 28, 28), "cifar32": (3, 32, 32),
                "relu-mnist32": (1, 28, 28), "function": (1, 28, 28)}


def models_table(relu: int) -> dict[str, Arg]:
    """The models; ``relu``: the verdict of a ReLU model (refused where the method needs curvature)."""
    return {"mnist32": Arg(lambda c: model("mnist32")), "mnist64": Arg(lambda c: model("mnist64")),
            "cifar32": Arg(lambda c: model("cifar32")), "relu-mnist32": Arg(lambda c: model("relu-mnist32"), relu),
            "function": Arg(lambda c: model("function"), INVALID)}


BATCH = {"1": Arg(lambda c: 1), "2": Arg(lambda c: 2), "3": Arg(lambda c: 3)}

SHAPE = {
    "right": Arg(lambda c: (c.batch, *c.input_shape)),
    "wrong channels": Arg(lambda c: (c.batch, 3 if c.input_shape[0] == 1 else 1, *c.input_shape[1:]), INVALID),
    "wrong H, W": Arg(lambda c: (c.batch, c.input_shape[0], c.input_shape[1] + 4, c.input_shape[2] + 4), INVALID),
    "no batch dim": Arg(lambda c: tuple(c.input_shape), INVALID),
    "empty batch": Arg(lambda c: (0, *c.input_shape), INVALID),
}

DTYPE = {
    "model's": Arg(lambda c: c.dtype),
    "float32": Arg(lambda c: torch.float32, lambda c: VALID if c.dtype == torch.float32 else INVALID),
    "float64": Arg(lambda c: torch.float64, lambda c: VALID if c.dtype == torch.float64 else INVALID),
    "float16": Arg(lambda c: torch.float16, INVALID),
    "uint8": Arg(lambda c: torch.uint8, INVALID),
    "int64": Arg(lambda c: torch.int64, INVALID),
}


def values_table(out_of_box: int) -> dict[str, Arg]:
    """Value ranges; ``out_of_box``: the verdict of finite values outside [0, 1] (refused where the box is assumed)."""
    return {"in [0, 1]": Arg(lambda c: "unit"), "in [0, 255]": Arg(lambda c: "255", out_of_box),
            "slightly negative": Arg(lambda c: "negative", out_of_box), "with a NaN": Arg(lambda c: "nan", INVALID),
            "with an inf": Arg(lambda c: "inf", INVALID)}


def make_inputs(shape: tuple, dtype: torch.dtype, values: str) -> torch.Tensor:
    """Images of the given shape, dtype and value range (integers: the values rounded)."""
    x = unit_images(shape)
    flat = x.view(-1)
    if values == "255":
        x = x * 255
    elif flat.numel() and values in ("nan", "inf", "negative"):
        flat[flat.numel() // 2] = {"nan": math.nan, "inf": math.inf, "negative": -1e-3}[values]
    if dtype.is_floating_point:
        return x.to(dtype)
    return torch.nan_to_num(x, nan=0.0, posinf=1.0).round().clamp_min(0).to(dtype)


def ig_only(verdict: int) -> Callable[[Ctx], int]:
    """The verdict of an Integrated Gradients option: it only matters where the attribution is IG."""
    return lambda c: verdict if c.labels.get("attribution") == "integrated_gradients" else VALID


def radii_table() -> dict[str, Arg]:
    """Radii (eps, alpha): scalars of every kind and (B,) tensors, valid and not."""
    return {
        "0.1": Arg(lambda c: 0.1),
        "1 (int)": Arg(lambda c: 1),
        "np.float32(0.05)": Arg(lambda c: np.float32(0.05)),
        "np.float64(0.05)": Arg(lambda c: np.float64(0.05)),
        "0-d tensor 0.05": Arg(lambda c: torch.tensor(0.05)),
        "(B,) radii": Arg(lambda c: torch.linspace(0.02, 0.1, c.batch)),
        "(B,) float64 radii": Arg(lambda c: torch.linspace(0.02, 0.1, c.batch, dtype=torch.float64)),
        "0": Arg(lambda c: 0.0, INVALID),
        "-0.1": Arg(lambda c: -0.1, INVALID),
        "nan": Arg(lambda c: math.nan, INVALID),
        "inf": Arg(lambda c: math.inf, INVALID),
        "np.float64(nan)": Arg(lambda c: np.float64("nan"), INVALID),
        "0-d tensor 0": Arg(lambda c: torch.tensor(0.0), INVALID),
        "True": Arg(lambda c: True, INVALID),
        "'0.1' (str)": Arg(lambda c: "0.1", INVALID),
        "None": Arg(lambda c: None, INVALID),
        "(B+1,) radii": Arg(lambda c: torch.full((c.batch + 1,), 0.05), INVALID),
        "(B,) radii with a zero": Arg(lambda c: torch.linspace(0.0, 0.1, c.batch), INVALID),
        "(B,) radii with a nan": Arg(lambda c: torch.full((c.batch,), math.nan), INVALID),
        "(B,) long radii": Arg(lambda c: torch.ones(c.batch, dtype=torch.long), INVALID),
        "(B, 1) radii": Arg(lambda c: torch.full((c.batch, 1), 0.05), INVALID),
    }


NORM = {"l2": Arg(lambda c: "l2"), "linf": Arg(lambda c: "linf"), "L2": Arg(lambda c: "L2", EITHER),
        "l1": Arg(lambda c: "l1", INVALID), "None": Arg(lambda c: None, INVALID), "2": Arg(lambda c: 2, INVALID)}

TARGET = {
    "None": Arg(lambda c: None),
    "3": Arg(lambda c: 3),
    "(B,) long": Arg(lambda c: torch.arange(c.batch) % CLASSES),
    "(B,) int32": Arg(lambda c: torch.arange(c.batch, dtype=torch.int32)),
    "0-d long tensor": Arg(lambda c: torch.tensor(2), EITHER),
    "np.int64(3)": Arg(lambda c: np.int64(3)),
    "(B,) bool": Arg(lambda c: torch.ones(c.batch, dtype=torch.bool), INVALID),
    "10 (= classes)": Arg(lambda c: CLASSES, INVALID),
    "-1": Arg(lambda c: -1, INVALID),
    "(B,) long out of range": Arg(lambda c: torch.full((c.batch,), CLASSES), INVALID),
    "(B,) negative": Arg(lambda c: torch.full((c.batch,), -1), INVALID),
    "(B,) float": Arg(lambda c: torch.zeros(c.batch), INVALID),
    "(B,) complex": Arg(lambda c: torch.full((c.batch,), 1 + 0.5j), INVALID),
    "(B+1,) long": Arg(lambda c: torch.zeros(c.batch + 1, dtype=torch.long), INVALID),
    "'3' (str)": Arg(lambda c: "3", INVALID),
}


def _predicted(c: Ctx) -> torch.Tensor:
    if not isinstance(c.model, torch.nn.Module):
        return torch.zeros(c.batch, dtype=torch.long)
    with torch.no_grad():
        return c.model(c.valid_inputs()).argmax(1)


LABELS = {  # the attacks' labels: a (B,) integer tensor of classes
    "(B,) predicted": Arg(_predicted),
    "(B,) long": Arg(lambda c: torch.arange(c.batch) % CLASSES),
    "(B,) int32": Arg(lambda c: torch.arange(c.batch, dtype=torch.int32)),
    "None": Arg(lambda c: None, INVALID),
    "3 (int)": Arg(lambda c: 3, INVALID),
    "(B,) float": Arg(lambda c: torch.zeros(c.batch), INVALID),
    "(B,) bool": Arg(lambda c: torch.ones(c.batch, dtype=torch.bool), INVALID),
    "(B+1,) long": Arg(lambda c: torch.zeros(c.batch + 1, dtype=torch.long), INVALID),
    "(B,) out of range": Arg(lambda c: torch.full((c.batch,), CLASSES), INVALID),
    "(B,) negative": Arg(lambda c: torch.full((c.batch,), -1), INVALID),
}

def _own_model(c: Ctx) -> torch.nn.Module:
    """The call's model, for an attribution instance built on it (a stand-in where the model itself is invalid)."""
    return c.model if isinstance(c.model, torch.nn.Module) else model("mnist32")


ATTRIBUTION = {
    "saliency": Arg(lambda c: "saliency"),
    "input_x_gradient": Arg(lambda c: "input_x_gradient"),
    "integrated_gradients": Arg(lambda c: "integrated_gradients"),
    "Saliency instance": Arg(lambda c: attributions.Saliency(_own_model(c))),
    "IntegratedGradients(n_steps=2) instance": Arg(lambda c: attributions.IntegratedGradients(_own_model(c), 2)),
    "Saliency (capitalised)": Arg(lambda c: "Saliency", INVALID),
    "gradcam": Arg(lambda c: "gradcam", INVALID),
    "None": Arg(lambda c: None, INVALID),
}

N_STEPS = {"2": Arg(lambda c: 2), "3": Arg(lambda c: 3), "0": Arg(lambda c: 0, ig_only(INVALID)),
           "-1": Arg(lambda c: -1, ig_only(INVALID)), "2.0": Arg(lambda c: 2.0, ig_only(INVALID))}


def positive_int_table(*valid: int, none: int = INVALID) -> dict[str, Arg]:
    """Steps, restarts, batch sizes, sample counts: positive integers (numpy ones included), nothing else.

    ``none``: the verdict of None (valid where it selects a default, as ``max_iter=None``).
    """
    table = {str(v): Arg(lambda c, v=v: v) for v in valid}
    table.update({
        f"np.int64({valid[0]})": Arg(lambda c: np.int64(valid[0])),
        "0": Arg(lambda c: 0, INVALID),
        "-1": Arg(lambda c: -1, INVALID),
        f"{valid[0]}.5": Arg(lambda c: valid[0] + 0.5, INVALID),
        f"{valid[-1]}.0 (float)": Arg(lambda c: float(valid[-1]), INVALID),
        "True": Arg(lambda c: True, INVALID),
        "None": Arg(lambda c: None, none, common=False),  # (max_iter=None: 100 iterations, drawn only when wild)
    })
    return table


SEED = {"0": Arg(lambda c: 0), "7": Arg(lambda c: 7), "np.int64(3)": Arg(lambda c: np.int64(3)),
        "-1": Arg(lambda c: -1, INVALID), "1.5": Arg(lambda c: 1.5, INVALID), "'a' (str)": Arg(lambda c: "a", INVALID),
        "True": Arg(lambda c: True, INVALID), "None": Arg(lambda c: None, INVALID)}

INPUTS = {"model": models_table(relu=INVALID), "batch": BATCH, "shape": SHAPE, "dtype": DTYPE,
          "values": values_table(out_of_box=INVALID)}


@st.composite
def calls(draw, tables: dict[str, dict[str, Arg]]) -> dict[str, str]:
    """Labels for every argument: common (valid) values, except for one or two wild arguments in three calls of four,
    drawn from their other values (invalid ones, and those valid only in some calls)."""
    n_wild = draw(st.sampled_from([1, 2, 0, 1]))
    wild = draw(st.permutations(sorted(tables)))[:n_wild]
    labels = {}
    for name, table in tables.items():
        common = [label for label, arg in table.items() if arg.is_common]
        other = [label for label in table if label not in common]
        labels[name] = draw(st.sampled_from(other if name in wild and other else common))
    return labels


def build(tables: dict[str, dict[str, Arg]], labels: dict[str, str], api: str = "") -> tuple[Ctx, dict, int]:
    """The context, the argument values and the verdict of a call drawn by ``calls``."""
    name = labels.get("model", "mnist32")
    batch = int(labels.get("batch", "2"))
    m = model(name)
    dtype = torch.float64 if name == "mnist64" else torch.float32
    ctx = Ctx(labels, m, dtype, MODEL_SHAPES[name], batch, api)
    values = {key: tables[key][label].build(ctx) for key, label in labels.items()}
    if "shape" in labels:
        values["inputs"] = make_inputs(values.pop("shape"), values.pop("dtype"), values.pop("values"))
    verdict = max(tables[key][label].judge(ctx) for key, label in labels.items())
    return ctx, values, verdict


# ----------------------------------------------------------------------------------------------------------------
# What a returned result must satisfy


def radii_vector(eps, batch: int) -> torch.Tensor:
    """Any accepted radius as a (B,) float64 tensor."""
    if isinstance(eps, torch.Tensor) and eps.ndim == 1:
        return eps.detach().double().cpu()
    return torch.full((batch,), float(eps), dtype=torch.float64)


def assert_per_sample(name: str, value, batch: int, *, finite: bool = True) -> None:
    assert isinstance(value, torch.Tensor), f"{name} is a {type(value).__name__}, not a tensor"
    assert value.shape == (batch,), f"{name} has shape {tuple(value.shape)}, not ({batch},)"
    if finite:
        assert torch.isfinite(value).all(), f"{name} is not finite: {value}"


def check_bound_result(result, inputs: torch.Tensor) -> None:
    batch = inputs.shape[0]
    for name in ("sigma_max", "attribution_norm", "euclidean", "cosine", "cosine_distance"):
        assert_per_sample(name, getattr(result, name), batch)
    assert (result.sigma_max >= 0).all() and (result.euclidean >= 0).all()
    assert ((result.cosine >= -1) & (result.cosine <= 1)).all(), result.cosine
    torch.testing.assert_close(result.cosine_distance, 1 - result.cosine)
    assert_per_sample("target", result.target, batch, finite=False)
    assert ((result.target >= 0) & (result.target < CLASSES)).all(), result.target
    if result.norm == "linf":
        assert_per_sample("linf_sqrt_n", result.linf_sqrt_n, batch)


def check_in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps, norm: str) -> None:
    """Adversarial inputs: shaped like the inputs, finite, in [0, 1] and in the ball of every sample."""
    assert isinstance(x_adv, torch.Tensor) and x_adv.shape == x.shape and x_adv.dtype == x.dtype, \
        f"x_adv: {type(x_adv).__name__} {getattr(x_adv, 'dtype', '')} {tuple(getattr(x_adv, 'shape', ()))}"
    assert torch.isfinite(x_adv).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    d = (x_adv - x).double().flatten(1)
    dist = d.abs().amax(1) if norm.lower() == "linf" else d.norm(dim=1)
    radius = radii_vector(eps, x.shape[0])
    assert (dist <= radius * (1 + 1e-4) + 1e-6).all(), f"outside the ball: {dist} > {radius}"


def check_attack_result(result, x: torch.Tensor, eps, norm: str, ifia: bool) -> None:
    batch = x.shape[0]
    assert isinstance(result, attacks.AttackResult), type(result)
    check_in_ball(result.x_adv, x, eps, norm)
    kept = result.label_kept
    assert kept.shape == (batch,) and kept.dtype == torch.bool
    fields = {"deviation.euclidean": result.deviation.euclidean, "deviation.cosine": result.deviation.cosine,
              "score": result.score}
    if ifia:
        fields["topk_intersection"] = result.topk_intersection
    for name, value in fields.items():
        assert_per_sample(name, value, batch, finite=False)
        assert torch.isfinite(value[kept]).all(), f"{name} is not finite where the label was kept: {value}"
        assert torch.isnan(value[~kept]).all(), f"{name} is not NaN where the attack failed: {value}"
    assert (result.deviation.cosine[kept].abs() <= 1).all()
    assert torch.equal(result.x_adv[~kept], x[~kept]), "x_adv is not x where the attack failed"


# ----------------------------------------------------------------------------------------------------------------
# The calls: one registered case per public entry point, run by the two property tests at the end of this section


@dataclass(frozen=True)
class Case:
    tables: dict[str, dict[str, Arg]]
    run: Callable[[dict], None]  # run(labels): build the call, check the contract
    cheap: bool = False          # milliseconds per call: twice the examples


CASES: dict[str, Case] = {}


def case(name: str, tables: dict[str, dict[str, Arg]], cheap: bool = False):
    def register(run):
        CASES[name] = Case(tables, run, cheap)
        return run
    return register


def ig_options(labels: dict, n_steps) -> dict:
    return {"n_steps": n_steps} if labels.get("attribution") == "integrated_gradients" else {}


# bounds.attribution_bound, bounds.spectral_norm

def _relu_needs_beta(c: Ctx) -> int:  # a ReLU model's curvature is its softplus surrogate's
    return INVALID if c.labels["surrogate_beta"] == "None" else VALID


BOUND_TABLES = {
    **INPUTS,
    "model": {**models_table(relu=INVALID), "relu-mnist32": Arg(lambda c: model("relu-mnist32"), _relu_needs_beta)},
    "surrogate_beta": {"None": Arg(lambda c: None), "10.0": Arg(lambda c: 10.0), "3 (int)": Arg(lambda c: 3),
                       "0": Arg(lambda c: 0.0, INVALID), "-1.0": Arg(lambda c: -1.0, INVALID),
                       "nan": Arg(lambda c: math.nan, INVALID), "inf": Arg(lambda c: math.inf, INVALID),
                       "'10' (str)": Arg(lambda c: "10", INVALID)},
    "eps": radii_table(),
    "norm": NORM,
    "attribution": ATTRIBUTION,
    "n_steps": N_STEPS,
    "target": TARGET,
    "method": {"lanczos": Arg(lambda c: "lanczos"), "power": Arg(lambda c: "power"),
               "Lanczos": Arg(lambda c: "Lanczos", INVALID), "bogus": Arg(lambda c: "bogus", INVALID)},
    "max_iter": positive_int_table(5, 3, none=VALID),
    "seed": SEED,
}


@case("bounds.attribution_bound", BOUND_TABLES)
def _attribution_bound(labels):
    ctx, a, verdict = build(BOUND_TABLES, labels)
    x = a["inputs"]

    def call():
        return bounds.attribution_bound(a["model"], x, a["eps"], a["norm"], a["attribution"], a["target"],
                                        a["method"], a["surrogate_beta"], max_iter=a["max_iter"], max_dense_n=1,
                                        sign_iters=2, seed=a["seed"], **ig_options(labels, a["n_steps"]))

    check_contract(call, verdict, lambda result: check_bound_result(result, x))


SPECTRAL_TABLES = {k: v for k, v in BOUND_TABLES.items() if k not in ("eps", "norm")}


@case("bounds.spectral_norm", SPECTRAL_TABLES)
def _spectral_norm(labels):
    ctx, a, verdict = build(SPECTRAL_TABLES, labels)
    x = a["inputs"]

    def call():
        return bounds.spectral_norm(a["model"], x, a["attribution"], a["target"], a["method"], a["surrogate_beta"],
                                    max_iter=a["max_iter"], seed=a["seed"], **ig_options(labels, a["n_steps"]))

    def check(sigma):
        assert_per_sample("sigma_max", sigma, x.shape[0])
        assert (sigma >= 0).all()

    check_contract(call, verdict, check)


# region.region_bound

REGION_TABLES = {
    **INPUTS,
    "eps": radii_table(),
    "norm": NORM,
    "attribution": {k: v for k, v in ATTRIBUTION.items() if "instance" not in k},
    "n_steps": N_STEPS,
    "target": TARGET,
    "steps": positive_int_table(1),
    "restarts": positive_int_table(1, 2),
    "seed": SEED,
}


@case("region.region_bound", REGION_TABLES)
def _region_bound(labels):
    ctx, a, verdict = build(REGION_TABLES, labels)
    x = a["inputs"]

    def call():
        return region.region_bound(a["model"], x, a["eps"], a["norm"], a["attribution"], a["target"],
                                   steps=a["steps"], restarts=a["restarts"], max_iter=5, max_dense_n=1,
                                   seed=a["seed"], **ig_options(labels, a["n_steps"]))

    def check(result):
        check_bound_result(result, x)
        check_bound_result(result.point, x)
        assert (result.euclidean >= result.point.euclidean * (1 - 1e-5)).all(), "below the first-order bound"
        assert isinstance(result.argmax, torch.Tensor) and result.argmax.shape == x.shape
        assert_per_sample("gain", result.gain, x.shape[0])

    check_contract(call, verdict, check)


# attacks.PGD, attacks.AttributionPGD, attacks.IFIA

ATTACK_TABLES = {
    **INPUTS,
    "eps": radii_table(),
    "alpha": radii_table(),
    "steps": positive_int_table(2, 1),
    "norm": NORM,
    "labels": LABELS,
}
PGD_TABLES = {**ATTACK_TABLES, "model": models_table(relu=VALID), "seed": SEED}


@case("attacks.PGD", PGD_TABLES)
def _pgd(labels):
    ctx, a, verdict = build(PGD_TABLES, labels)
    x = a["inputs"]

    def call():
        return attacks.PGD(a["model"], a["eps"], a["alpha"], a["steps"], a["norm"], seed=a["seed"])(x, a["labels"])

    check_contract(call, verdict, lambda x_adv: check_in_ball(x_adv, x, a["eps"], a["norm"]))


EXPLAINER = {k: v for k, v in ATTRIBUTION.items() if k != "integrated_gradients"}  # IG by name: 50 steps, slow
EXPLAINER["Saliency instance of another model"] = Arg(
    lambda c: attributions.Saliency(model("mnist32" if c.model is model("cifar32") else "cifar32")), INVALID)
ATTRIBUTION_PGD_TABLES = {
    **ATTACK_TABLES, "explainer": EXPLAINER, "restarts": positive_int_table(1, 2),
    "objective": {"euclidean": Arg(lambda c: "euclidean"), "cosine": Arg(lambda c: "cosine"),
                  "l2": Arg(lambda c: "l2", INVALID)},
}
IFIA_TABLES = {
    **ATTACK_TABLES, "explainer": EXPLAINER, "restarts": positive_int_table(1, 2),
    "k": {**positive_int_table(5, 1), "more than H * W": Arg(lambda c: 5000, INVALID)},
    "kind": {"topk": Arg(lambda c: "topk"), "mass_center": Arg(lambda c: "mass_center"),
             "targeted without a mask": Arg(lambda c: "targeted", INVALID), "bogus": Arg(lambda c: "bogus", INVALID)},
}


@case("attacks.AttributionPGD", ATTRIBUTION_PGD_TABLES)
def _attribution_pgd(labels):
    ctx, a, verdict = build(ATTRIBUTION_PGD_TABLES, labels)
    x = a["inputs"]

    def call():
        atk = attacks.AttributionPGD(a["model"], a["explainer"], a["eps"], a["alpha"], a["steps"], a["norm"],
                                     a["objective"], a["restarts"])
        return atk(x, a["labels"])

    check_contract(call, verdict, lambda result: check_attack_result(result, x, a["eps"], a["norm"], False))


@case("attacks.IFIA", IFIA_TABLES)
def _ifia(labels):
    ctx, a, verdict = build(IFIA_TABLES, labels)
    x = a["inputs"]

    def call():
        atk = attacks.IFIA(a["model"], a["explainer"], a["eps"], a["alpha"], a["steps"], a["k"], a["kind"],
                           a["norm"], a["restarts"])
        return atk(x, a["labels"])

    check_contract(call, verdict, lambda result: check_attack_result(result, x, a["eps"], a["norm"], True))


# attributions: Saliency, InputXGradient, IntegratedGradients (.attribute)

ATTRIBUTE_TABLES = {
    **INPUTS,
    "model": models_table(relu=VALID),
    "values": values_table(out_of_box=EITHER),  # an attribution needs no [0, 1] box
    "target": TARGET,
    "create_graph": {"False": Arg(lambda c: False), "True": Arg(lambda c: True)},
}
IG_TABLES = {
    **ATTRIBUTE_TABLES,
    "n_steps": {"2": Arg(lambda c: 2), "np.int64(3)": Arg(lambda c: np.int64(3), EITHER),
                "0": Arg(lambda c: 0, INVALID), "-1": Arg(lambda c: -1, INVALID), "2.0": Arg(lambda c: 2.0, INVALID),
                "True": Arg(lambda c: True, INVALID)},
    "internal_batch_size": positive_int_table(4, 1, none=VALID),
    "baseline": {"None": Arg(lambda c: None), "0.5": Arg(lambda c: 0.5),
                 "(C, H, W) tensor": Arg(lambda c: torch.full(c.input_shape, 0.5, dtype=c.dtype)),
                 "(5, 5) tensor": Arg(lambda c: torch.zeros(5, 5, dtype=c.dtype), INVALID)},
}


def check_attribution(attr, x: torch.Tensor) -> None:
    assert isinstance(attr, torch.Tensor) and attr.shape == x.shape and attr.dtype == x.dtype, \
        f"{type(attr).__name__} {getattr(attr, 'dtype', '')} {tuple(getattr(attr, 'shape', ()))}"
    assert torch.isfinite(attr).all()


def _attribute_case(cls):
    def run(labels):
        ctx, a, verdict = build(ATTRIBUTE_TABLES, labels)
        x = a["inputs"]
        check_contract(lambda: cls(a["model"]).attribute(x, target=a["target"], create_graph=a["create_graph"]),
                       verdict, lambda attr: check_attribution(attr, x))

    case(f"attributions.{cls.__name__}.attribute", ATTRIBUTE_TABLES)(run)


for _cls in (attributions.Saliency, attributions.InputXGradient):
    _attribute_case(_cls)


@case("attributions.IntegratedGradients.attribute", IG_TABLES)
def _integrated_gradients(labels):
    ctx, a, verdict = build(IG_TABLES, labels)
    x = a["inputs"]

    def call():
        explainer = attributions.IntegratedGradients(a["model"], n_steps=a["n_steps"], baseline=a["baseline"],
                                                     internal_batch_size=a["internal_batch_size"])
        return explainer.attribute(x, target=a["target"], create_graph=a["create_graph"])

    check_contract(call, verdict, lambda attr: check_attribution(attr, x))


# metrics

METRICS = ("euclidean", "cosine", "topk_intersection", "kendall_tau", "spearman", "pearson", "mass_center_shift")
METRIC_SHAPES = {"(B, 1, 8, 8)": lambda b: (b, 1, 8, 8), "(B, 3, 8, 8)": lambda b: (b, 3, 8, 8),
                 "(B, 8, 8)": lambda b: (b, 8, 8), "(B, 64)": lambda b: (b, 64), "(64,) no batch": lambda b: (64,),
                 "(0, 1, 8, 8) empty": lambda b: (0, 1, 8, 8)}


def _metric_shape_verdict(label: str) -> Callable[[Ctx], int]:
    def verdict(c: Ctx) -> int:
        if label == "(64,) no batch" or (label == "(B, 64)" and c.api == "mass_center_shift"):
            return INVALID
        return EITHER if label == "(0, 1, 8, 8) empty" else VALID
    return verdict


def metric_values(side: str) -> dict[str, Arg]:
    """The values of ``a`` or ``b``; their verdicts depend on the side's dtype (integers hold no NaN, inf or
    negative uint8) and, for mass_center_shift, on the shape (a (B, H, W) map must be non-negative)."""
    def floating(c: Ctx) -> bool:
        return c.labels[f"{side}_dtype"] in ("float32", "float64", "float16")

    def negative(c: Ctx) -> int:
        negative_map = c.api == "mass_center_shift" and c.labels["a_shape"] == "(B, 8, 8)"
        return INVALID if negative_map and c.labels[f"{side}_dtype"] != "uint8" else VALID

    def not_finite(c: Ctx) -> int:  # (an empty batch holds no value to be NaN)
        return INVALID if floating(c) and c.labels["a_shape"] != "(0, 1, 8, 8) empty" else VALID

    return {"rand": Arg(lambda c: "rand"), "randn": Arg(lambda c: "randn", negative, True),
            "a constant sample": Arg(lambda c: "constant"), "an all-zero sample": Arg(lambda c: "zero"),
            "with a NaN": Arg(lambda c: "nan", not_finite, False),
            "with an inf": Arg(lambda c: "inf", not_finite, False)}


METRIC_DTYPES = {"float32": Arg(lambda c: torch.float32), "float64": Arg(lambda c: torch.float64),
                 "float16": Arg(lambda c: torch.float16, EITHER),
                 # documented: integer inputs are converted to the default float dtype
                 "uint8": Arg(lambda c: torch.uint8, EITHER), "int64": Arg(lambda c: torch.int64, EITHER)}


def _k_value(c: Ctx) -> int:
    return math.prod(METRIC_SHAPES[c.labels["a_shape"]](1)[1:])


METRIC_TABLES = {
    "batch": BATCH,
    "a_shape": {label: Arg(lambda c, label=label: label, _metric_shape_verdict(label), label.startswith("(B"))
                for label in METRIC_SHAPES},
    "b_shape": {"same as a": Arg(lambda c: "same"), "one column more": Arg(lambda c: "wider", INVALID),
                "one sample more": Arg(lambda c: "longer", INVALID)},
    "a_dtype": METRIC_DTYPES, "b_dtype": METRIC_DTYPES,
    "a_values": metric_values("a"), "b_values": metric_values("b"),
    "mask": {"None": Arg(lambda c: None),
             "(B,) bool": Arg(lambda c: torch.tensor([False, True, True])[:c.batch]),
             "(B,) long": Arg(lambda c: torch.ones(c.batch, dtype=torch.long), INVALID),
             "(B+1,) bool": Arg(lambda c: torch.ones(c.batch + 1, dtype=torch.bool), INVALID),
             "list of bools": Arg(lambda c: [True] * c.batch, INVALID)},
}
K_TABLE = {"1": Arg(lambda c: 1), "5": Arg(lambda c: 5), "n": Arg(_k_value),
           "np.int64(5)": Arg(lambda c: np.int64(5), EITHER), "0": Arg(lambda c: 0, INVALID),
           "-1": Arg(lambda c: -1, INVALID), "n + 1": Arg(lambda c: _k_value(c) + 1, INVALID),
           "5.0": Arg(lambda c: 5.0, INVALID), "None": Arg(lambda c: None, INVALID)}


def make_map(shape: tuple, dtype: torch.dtype, values: str, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) if values == "randn" else \
        torch.rand(shape, generator=gen, dtype=torch.float64)
    if x.ndim >= 2 and x.shape[0] and values in ("constant", "zero"):
        x[0] = 0.5 if values == "constant" else 0.0
    elif x.numel() and values in ("nan", "inf"):
        x.view(-1)[0] = math.nan if values == "nan" else math.inf
    if dtype.is_floating_point:
        return x.to(dtype)
    x = torch.nan_to_num(x * 10, nan=0.0, posinf=10.0).round()
    return (x.clamp_min(0) if dtype == torch.uint8 else x).to(dtype)


def _constant_rows(t: torch.Tensor) -> torch.Tensor:
    flat = t.double().flatten(1)
    return (flat == flat[:, :1]).all(1)


def _zero_mass(t: torch.Tensor) -> torch.Tensor:
    return (t.double().flatten(1) == 0).all(1)


def _metric_case(metric: str):
    tables = METRIC_TABLES if metric != "topk_intersection" else {**METRIC_TABLES, "k": K_TABLE}

    def run(labels):
        ctx, v, verdict = build(tables, labels, api=metric)
        shape = METRIC_SHAPES[labels["a_shape"]](ctx.batch)
        b_shape = {"same": shape, "wider": (*shape[:-1], shape[-1] + 1), "longer": (shape[0] + 1, *shape[1:])}
        a = make_map(shape, v["a_dtype"], v["a_values"], seed=1)
        b = make_map(b_shape[v["b_shape"]], v["b_dtype"], v["b_values"], seed=2)
        extra = {"k": v["k"]} if metric == "topk_intersection" else {}

        def check(out):
            batch = a.shape[0]
            assert_per_sample(metric, out, batch, finite=False)
            assert out.is_floating_point()
            nan_ok = torch.zeros(batch, dtype=torch.bool)
            if v["mask"] is not None:
                nan_ok |= ~v["mask"]
                assert torch.isnan(out[~v["mask"]]).all(), f"not NaN where the mask is False: {out}"
            if metric in ("kendall_tau", "spearman", "pearson"):  # documented: NaN where a sample is constant
                nan_ok |= _constant_rows(a) | _constant_rows(b)
            if metric == "mass_center_shift":  # documented: NaN where a map has zero mass
                nan_ok |= _zero_mass(a) | _zero_mass(b)
            assert torch.isfinite(out[~nan_ok]).all(), f"NaN or inf beyond the documented cases: {out}"
            kept = out[torch.isfinite(out)].double()
            low, high = {"euclidean": (0, math.inf), "mass_center_shift": (0, math.inf),
                         "topk_intersection": (0, 1)}.get(metric, (-1, 1))
            assert ((kept >= low) & (kept <= high)).all(), f"outside [{low}, {high}]: {out}"

        check_contract(lambda: getattr(metrics, metric)(a, b, mask=v["mask"], **extra), verdict, check)

    case(f"metrics.{metric}", tables, cheap=True)(run)


for _metric in METRICS:
    _metric_case(_metric)


# threat_models.threat_model (and its balls' random_init, step and project)

THREAT_TABLES = {"batch": BATCH, "norm": NORM, "eps": radii_table(),
                 "dtype": {"float32": Arg(lambda c: torch.float32), "float64": Arg(lambda c: torch.float64)}}


@case("threat_models.threat_model", THREAT_TABLES, cheap=True)
def _threat_model(labels):
    ctx, a, verdict = build(THREAT_TABLES, labels)
    x0 = unit_images((ctx.batch, 1, 6, 6)).to(a["dtype"])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(x0.dtype)

    def call():
        ball = threat_models.threat_model(a["norm"], a["eps"])
        start = ball.random_init(x0, torch.Generator().manual_seed(0))
        return start, ball.project(x0 + noise, x0), ball.project(ball.step(x0, noise, 0.01), x0)

    def check(points):
        for z in points:
            check_in_ball(z, x0, a["eps"], a["norm"])

    check_contract(call, verdict, check)


# interop (the compare extra): captum_bound, WorstCaseBound, captum_sensitivity_max


def compare_extra():
    """captum.attr, or a skip without the compare extra (an error where CI requires it, as tests/test_interop.py)."""
    if os.environ.get("ATTRBOUND_REQUIRE_COMPARE") == "1" or os.environ.get("ATTRBOUND_REQUIRE_BOOK") == "1":
        import captum.attr as ca
        import quantus  # noqa: F401
        return ca
    pytest.importorskip("quantus", reason="the compare extra is not installed")
    return pytest.importorskip("captum.attr", reason="the compare extra is not installed")


def _interop():
    compare_extra()
    from attrbound_lite import interop
    return interop


def _captum_explainer(label: str):
    def build_explainer(c: Ctx):
        ca = compare_extra()
        m = c.model if isinstance(c.model, torch.nn.Module) else model("mnist32")
        return {"Saliency": lambda: (ca.Saliency(m), {}),
                "Saliency abs=False": lambda: (ca.Saliency(m), {"abs": False}),
                "InputXGradient": lambda: (ca.InputXGradient(m), {}),
                "IntegratedGradients riemann_right": lambda: (ca.IntegratedGradients(m),
                                                              {"method": "riemann_right", "n_steps": 2}),
                "IntegratedGradients gausslegendre": lambda: (ca.IntegratedGradients(m), {"n_steps": 2}),
                "Saliency of a lambda": lambda: (ca.Saliency(lambda x: m(x)), {}),
                "GuidedBackprop": lambda: (ca.GuidedBackprop(m), {}),
                "IntegratedGradients with abs=True": lambda: (ca.IntegratedGradients(m),
                                                              {"method": "riemann_right", "abs": True})}[label]()
    return build_explainer


CAPTUM_EXPLAINERS = {"Saliency": VALID, "Saliency abs=False": VALID, "InputXGradient": VALID,
                     "IntegratedGradients riemann_right": VALID, "IntegratedGradients gausslegendre": INVALID,
                     "Saliency of a lambda": INVALID, "GuidedBackprop": INVALID,
                     "IntegratedGradients with abs=True": INVALID}
CAPTUM_BOUND_TABLES = {
    **INPUTS,
    "model": {k: v for k, v in models_table(relu=INVALID).items() if k != "function"},
    "explainer": {label: Arg(_captum_explainer(label), verdict) for label, verdict in CAPTUM_EXPLAINERS.items()},
    "target": {**TARGET, "list of ints": Arg(lambda c: [1] * c.batch)},
    "eps": radii_table(),
    "norm": NORM,
}


@case("interop.captum_bound", CAPTUM_BOUND_TABLES)
def _captum_bound(labels):
    interop = _interop()
    ctx, a, verdict = build(CAPTUM_BOUND_TABLES, labels)
    x, (explainer, keywords) = a["inputs"], a["explainer"]

    def call():
        return interop.captum_bound(explainer, x, a["target"], a["eps"], a["norm"], max_iter=5, max_dense_n=1,
                                    **keywords)

    check_contract(call, verdict, lambda result: check_bound_result(result, x))


WORST_CASE_TABLES = {
    **INPUTS,
    # numpy inputs are converted to the model's dtype (Quantus passes float32 arrays to any model)
    "dtype": {**DTYPE, "float32": Arg(lambda c: torch.float32, EITHER),
              "float64": Arg(lambda c: torch.float64, EITHER), "float16": Arg(lambda c: torch.float16, EITHER)},
    "as": {"numpy": Arg(lambda c: "numpy"), "tensor": Arg(lambda c: "tensor")},
    "eps": {k: v for k, v in radii_table().items() if not k.startswith("(")},  # one radius for the metric
    "norm": NORM,
    "attribution": {"saliency": Arg(lambda c: "saliency"), "input_x_gradient": Arg(lambda c: "input_x_gradient"),
                    "gradcam": Arg(lambda c: "gradcam", INVALID), "None": Arg(lambda c: None, INVALID)},
    "y_batch": {"numpy ints": Arg(lambda c: np.arange(c.batch) % CLASSES),
                "list of ints": Arg(lambda c: [1] * c.batch),
                "numpy out of range": Arg(lambda c: np.full(c.batch, CLASSES), INVALID),
                "numpy negative": Arg(lambda c: np.full(c.batch, -1), INVALID),
                "numpy wrong length": Arg(lambda c: np.zeros(c.batch + 1, dtype=int), INVALID),
                "numpy fractions": Arg(lambda c: np.full(c.batch, 0.5), INVALID)},
    "attack": {"False": Arg(lambda c: False), "True": Arg(lambda c: True)},
    "batch_size": positive_int_table(64, 1),
}


@case("interop.WorstCaseBound", WORST_CASE_TABLES)
def _worst_case_bound(labels):
    interop = _interop()
    ctx, a, verdict = build(WORST_CASE_TABLES, labels)
    x = a["inputs"]
    x_batch = x.numpy() if a["as"] == "numpy" and x.dtype != torch.float16 else x

    def call():
        steps = {"attack_steps": 2} if a["attack"] is True else {}  # attack options only with the attack
        metric = interop.WorstCaseBound(a["eps"], a["norm"], a["attribution"], attack=a["attack"], **steps,
                                        max_iter=5, max_dense_n=1)
        return metric(model=a["model"], x_batch=x_batch, y_batch=a["y_batch"], batch_size=a["batch_size"])

    def check(scores):
        assert isinstance(scores, list) and len(scores) == x.shape[0], scores
        values = np.asarray(scores, dtype=float)
        if a["attack"]:  # documented: NaN where no iterate of the attack kept the label
            values = values[~np.isnan(values)]
        assert np.isfinite(values).all() and (values >= 0).all(), scores

    check_contract(call, verdict, check)


SENSITIVITY_TABLES = {
    **INPUTS,
    "model": models_table(relu=VALID),
    "values": values_table(out_of_box=EITHER),  # sampled noise, neither clipped nor boxed
    "target": TARGET,
    "eps": {k: v for k, v in radii_table().items() if not k.startswith("(")},
    "norm": NORM,
    "attribution": {k: v for k, v in ATTRIBUTION.items() if "instance" not in k},
    "n_steps": N_STEPS,
    "n_perturb_samples": positive_int_table(1, 2),
}


@case("interop.captum_sensitivity_max", SENSITIVITY_TABLES)
def _captum_sensitivity_max(labels):
    interop = _interop()
    ctx, a, verdict = build(SENSITIVITY_TABLES, labels)
    x = a["inputs"]

    def call():
        return interop.captum_sensitivity_max(a["model"], x, a["target"], a["eps"], a["norm"], a["attribution"],
                                              n_perturb_samples=a["n_perturb_samples"],
                                              **ig_options(labels, a["n_steps"]))

    def check(result):
        scores = np.asarray(result.scores)
        assert scores.shape == (x.shape[0],) and np.isfinite(scores).all() and (scores >= 0).all(), scores

    check_contract(call, verdict, check)


# The property tests


@pytest.mark.parametrize("api", [name for name, c in CASES.items() if not c.cheap])
@CONTRACT
@given(data=st.data())
def test_contract(api, data):
    CASES[api].run(data.draw(calls(CASES[api].tables), label=api))


@pytest.mark.parametrize("api", [name for name, c in CASES.items() if c.cheap])
@CHEAP
@given(data=st.data())
def test_contract_cheap(api, data):
    CASES[api].run(data.draw(calls(CASES[api].tables), label=api))


# runtime.resolve_device: a table small enough to run whole

CUDA = torch.cuda.is_available()
DEVICES = {
    "None": (None, VALID), "'auto'": ("auto", VALID), "'cpu'": ("cpu", VALID),
    "torch.device('cpu')": (torch.device("cpu"), VALID), "'cpu:0'": ("cpu:0", EITHER),
    "'cuda'": ("cuda", VALID if CUDA else INVALID),
    "'cuda:7'": ("cuda:7", VALID if torch.cuda.device_count() > 7 else INVALID),
    "'gpu'": ("gpu", INVALID), "3": (3, INVALID), "''": ("", INVALID), "'CPU'": ("CPU", EITHER),
    "1.5": (1.5, INVALID), "['cpu']": (["cpu"], INVALID),
}


@pytest.mark.parametrize("label", list(DEVICES))
def test_resolve_device_contract(label):
    device, verdict = DEVICES[label]

    def check(resolved):
        assert isinstance(resolved, torch.device), type(resolved)
        assert resolved.type in ("cpu", "cuda"), resolved
        if resolved.type == "cuda":
            assert CUDA

    check_contract(lambda: runtime.resolve_device(device), verdict, check)


# ----------------------------------------------------------------------------------------------------------------
# The most important promises, example by example


def _labels(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(x.shape[0], dtype=torch.long)


ENTRY_POINTS = {  # name -> (call(model, x), needs the [0, 1] box)
    "attribution_bound": (lambda m, x: bounds.attribution_bound(m, x, 0.1, max_iter=5, max_dense_n=1), True),
    "spectral_norm": (lambda m, x: bounds.spectral_norm(m, x, max_iter=5), True),
    "region_bound": (lambda m, x: region.region_bound(m, x, 0.1, steps=1, max_iter=5, max_dense_n=1), True),
    "PGD": (lambda m, x: attacks.PGD(m, 0.1, 0.05, 2)(x, _labels(x)), True),
    "AttributionPGD": (lambda m, x: attacks.AttributionPGD(m, "saliency", 0.1, 0.05, 2)(x, _labels(x)), True),
    "IFIA": (lambda m, x: attacks.IFIA(m, "saliency", 0.1, 0.05, 2, k=5)(x, _labels(x)), True),
    "Saliency.attribute": (lambda m, x: attributions.Saliency(m).attribute(x), False),
    "InputXGradient.attribute": (lambda m, x: attributions.InputXGradient(m).attribute(x), False),
    "IntegratedGradients.attribute": (lambda m, x: attributions.IntegratedGradients(m, 2).attribute(x), False),
}
INTEROP_ENTRY_POINTS = {
    "interop.captum_bound": (lambda m, x: _interop().captum_bound(compare_extra().Saliency(m), x, None, 0.1,
                                                                  max_iter=5, max_dense_n=1), True),
    "interop.WorstCaseBound": (lambda m, x: _interop().WorstCaseBound(
        0.1, "l2", "saliency", max_iter=5, max_dense_n=1)(model=m, x_batch=x.numpy(), y_batch=np.zeros(2, dtype=int)),
        True),
    "interop.captum_sensitivity_max": (lambda m, x: _interop().captum_sensitivity_max(
        m, x, None, 0.1, n_perturb_samples=2), False),
}


ALL_ENTRY_POINTS = {**ENTRY_POINTS, **INTEROP_ENTRY_POINTS}


def _refused(entry: str, m, x, kind=(ValueError, TypeError)) -> str:
    """The message of the package error that ``entry`` raises on ``x``."""
    call, _ = ALL_ENTRY_POINTS[entry]
    with pytest.raises(Exception) as excinfo:  # noqa: B017 - judged below, with its traceback
        call(m, x)
    assert_package_error(excinfo)
    assert isinstance(excinfo.value, kind), f"{type(excinfo.value).__name__}: {excinfo.value}"
    return str(excinfo.value)


@pytest.mark.parametrize("entry", list(ALL_ENTRY_POINTS))
def test_uint8_images_refused_everywhere(entry):
    x = (unit_images((2, 1, 28, 28)) * 255).to(torch.uint8)
    message = _refused(entry, model("mnist32"), x)
    assert "uint8" in message, message


@pytest.mark.parametrize("values", ["in [0, 255]", "slightly negative"])
@pytest.mark.parametrize("entry", [name for name, (_, box) in ALL_ENTRY_POINTS.items() if box])
def test_inputs_outside_the_box_refused(entry, values):
    x = make_inputs((2, 1, 28, 28), torch.float32, values_table(INVALID)[values].build(None))
    message = _refused(entry, model("mnist32"), x, ValueError)
    assert "[0, 1]" in message, message


@pytest.mark.parametrize("entry", [name for name in ALL_ENTRY_POINTS if name != "interop.WorstCaseBound"])
def test_float64_inputs_to_a_float32_model_refused_by_name(entry):
    # (WorstCaseBound takes Quantus's numpy arrays and converts them to the model's dtype, as documented.)
    message = _refused(entry, model("mnist32"), unit_images((2, 1, 28, 28)))
    assert "float64" in message and "float32" in message, message


@pytest.mark.parametrize("entry", list(ALL_ENTRY_POINTS))
def test_one_channel_images_to_a_cifar_model_refused(entry):
    # Normalize's 3-channel mean and std would broadcast a (B, 1, 32, 32) batch to 3 channels: it must be refused.
    message = _refused(entry, model("cifar32"), unit_images((2, 1, 32, 32)).float(), ValueError)
    assert "(2, 1, 32, 32)" in message, message


PER_SAMPLE_FIELDS = ("sigma_max", "attribution_norm", "euclidean", "cosine", "linf_sqrt_n")


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("fn", ["attribution_bound", "region_bound"])
def test_per_sample_eps_equals_one_call_per_radius(fn, norm):
    m, x = model("mnist32"), unit_images((3, 1, 28, 28)).float()
    eps = torch.tensor([0.02, 0.05, 0.1])
    if fn == "attribution_bound":
        def run(radius):
            return bounds.attribution_bound(m, x, radius, norm, max_iter=8, max_dense_n=1, sign_iters=2)
    else:
        def run(radius):
            return region.region_bound(m, x, radius, norm, steps=2, restarts=2, max_iter=8, max_dense_n=1)
    batched = run(eps)
    for i, radius in enumerate(eps.tolist()):  # sample i of the call with its own scalar radius
        alone = run(radius)
        for name in PER_SAMPLE_FIELDS:
            if getattr(alone, name) is not None:
                torch.testing.assert_close(getattr(batched, name)[i], getattr(alone, name)[i], rtol=1e-5, atol=0,
                                           msg=lambda msg, name=name, i=i: f"{name}[{i}]: {msg}")


@pytest.mark.parametrize("entry", ["attribution_bound", "region_bound", "PGD", "threat_model"])
def test_numpy_float32_eps_accepted(entry):
    m, x = model("mnist32"), unit_images((2, 1, 28, 28)).float()
    eps = np.float32(0.1)
    if entry == "attribution_bound":
        got = bounds.attribution_bound(m, x, eps, max_iter=5, max_dense_n=1).euclidean
        want = bounds.attribution_bound(m, x, float(eps), max_iter=5, max_dense_n=1).euclidean
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    elif entry == "region_bound":
        got = region.region_bound(m, x, eps, steps=1, max_iter=5, max_dense_n=1).euclidean
        want = region.region_bound(m, x, float(eps), steps=1, max_iter=5, max_dense_n=1).euclidean
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    elif entry == "PGD":
        check_in_ball(attacks.PGD(m, eps, np.float32(0.05), 2)(x, _labels(x)), x, float(eps), "linf")
    else:
        check_in_ball(threat_models.threat_model("l2", eps).random_init(x), x, float(eps), "l2")


def test_resolve_device_gpu_names_the_allowed_values():
    with pytest.raises(ValueError) as excinfo:
        runtime.resolve_device("gpu")
    assert_package_error(excinfo)
    message = str(excinfo.value)
    assert "'gpu'" in message and "'cpu'" in message and "'cuda'" in message, message


# ----------------------------------------------------------------------------------------------------------------
# Edges found by a held-out tour of the public API (each was a raw library error or a silently wrong result)


def _package_error(call: Callable[[], Any], kind=(ValueError, TypeError), *fragments: str) -> str:
    """Run ``call``; it must raise the package's own ``kind`` whose message holds every fragment."""
    with pytest.raises(Exception) as excinfo:  # noqa: B017 - judged below, with its traceback
        call()
    assert_package_error(excinfo)
    assert isinstance(excinfo.value, kind), f"{type(excinfo.value).__name__}: {excinfo.value}"
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def _mnist_batch() -> tuple[torch.nn.Module, torch.Tensor]:
    return model("mnist32"), unit_images((2, 1, 28, 28)).float()


@pytest.mark.parametrize("baseline, fragment", [(math.nan, "NaN"), ("zeros", "baseline must be"),
                                                (torch.full((1, 28, 28), math.inf), "NaN or inf"),
                                                (torch.zeros(1, 28, 28, dtype=torch.long), "floating point")])
def test_integrated_gradients_baseline_checked(baseline, fragment):
    m, x = _mnist_batch()
    _package_error(lambda: attributions.IntegratedGradients(m, 2, baseline), (ValueError, TypeError), fragment)
    _package_error(lambda: bounds.attribution_bound(m, x, 0.1, attribution="integrated_gradients", n_steps=2,
                                                    baseline=baseline, max_iter=3), (ValueError, TypeError), fragment)


@pytest.mark.parametrize("call, fragment", [
    (lambda m, x: bounds.spectral_norm(m, x, eps=0.1, max_iter=3), "['eps']"),
    (lambda m, x: region.region_bound(m, x, 0.1, method="exact", steps=1, max_iter=3), "['method']"),
    (lambda m, x: bounds.attribution_bound(m, x, 0.1, attribution="integrated_gradients", foo=1), "['foo']"),
], ids=["spectral_norm eps", "region_bound method", "attribution_bound IG foo"])
def test_unknown_keyword_options_named(call, fragment):
    m, x = _mnist_batch()
    _package_error(lambda: call(m, x), TypeError, fragment)


@pytest.mark.parametrize("tol", [math.inf, math.nan, 0.0])
def test_tolerance_must_be_positive_and_finite(tol):
    m, x = _mnist_batch()
    _package_error(lambda: bounds.attribution_bound(m, x, 0.1, tol=tol), ValueError, "tol")


def test_meta_tensors_refused():
    m, x = _mnist_batch()
    _package_error(lambda: bounds.attribution_bound(m, x.to("meta"), 0.1), ValueError, "'meta'")


def test_numpy_integer_targets_and_k_accepted():
    m, x = _mnist_batch()
    got = bounds.attribution_bound(m, x, 0.1, target=np.int64(3), max_iter=5, max_dense_n=1).euclidean
    want = bounds.attribution_bound(m, x, 0.1, target=3, max_iter=5, max_dense_n=1).euclidean
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    a, b = torch.rand(2, 50, generator=torch.Generator().manual_seed(0)), torch.rand(2, 50)
    torch.testing.assert_close(metrics.topk_intersection(a, b, np.int64(10)), metrics.topk_intersection(a, b, 10))


@pytest.mark.parametrize("method, args, fragment", [
    ("step", lambda x: (x, torch.ones_like(x), -1.0), "alpha"),
    ("project", lambda x: (x, x[:, :, :14]), "shape"),
    ("project", lambda x: (x, x * 255), "[0, 1]"),
    ("ascend", lambda x: (lambda z: z.sum((1, 2, 3)), x, -1, 0.01), "steps"),
    ("ascend", lambda x: (lambda z: z.sum((1, 2, 3)), x, 2, -0.01), "alpha"),
], ids=["negative step", "shape mismatch", "x0 outside the box", "negative steps", "negative alpha"])
def test_threat_model_methods_checked(method, args, fragment):
    _, x = _mnist_batch()
    ball = threat_models.LinfBall(0.1)
    _package_error(lambda: getattr(ball, method)(*args(x)), (ValueError, TypeError), fragment)


@pytest.mark.parametrize("mean, std, fragment", [([0.1, 0.2], [0.3], "one value per input channel"),
                                                 ([0.1, 0.2], [0.3, 0.3], "(1)"),
                                                 ([0.1], [0.0], "std"), ([0.1], [math.nan], "std")])
def test_normalisation_checked(mean, std, fragment):
    _package_error(lambda: models.MnistCNN(width=0.125, mean=mean, std=std), ValueError, fragment)


def test_model_helpers_refuse_functions_and_numpy():
    m, _ = _mnist_batch()
    for helper in (lambda: models.smooth_relu(lambda x: m(x), 10.0),
                   lambda: models.is_piecewise_linear(lambda x: m(x))):
        _package_error(helper, TypeError, "torch.nn.Module")
    _package_error(lambda: models.QuadraticClassifier(np.eye(3)[None], np.zeros((1, 3))), TypeError,
                   "torch.as_tensor")


def test_checkpoint_arguments_checked(tmp_path):
    m = models.MnistCNN(width=0.125)
    _package_error(lambda: checkpoints.save_checkpoint(m, tmp_path / "a.safetensors", metadata=["x"]), TypeError,
                   "dict")
    for path in (None, 123):
        _package_error(lambda path=path: checkpoints.load_checkpoint(path), TypeError, "path")
    (tmp_path / "afile").write_text("")
    _package_error(lambda: checkpoints.save_checkpoint(m, tmp_path / "afile" / "m.safetensors"), ValueError,
                   "existing file")


def test_certified_options_checked():
    m, x = _mnist_batch()
    m64, x64 = copy.deepcopy(m).double(), x.double()
    _package_error(lambda: certified.certified_bound(m64, x64, 0.01, routes="gradient_interval"), TypeError,
                   "['gradient_interval']")
    _package_error(lambda: certified.certified_bound(m64, x64, 0.01, n_steps=5), ValueError, "n_steps")
    _package_error(lambda: certified.certified_bound(m64, x64, 0.01, baseline=0.5), ValueError, "baseline")


def test_ifia_target_mask_checked():
    m, x = _mnist_batch()
    _package_error(lambda: attacks.IFIA(m, "saliency", 0.1, 0.05, 1, k=5, target_mask=torch.ones(28, 28).bool()),
                   ValueError, "kind='targeted'")
    atk = attacks.IFIA(m, "saliency", 0.1, 0.05, 1, k=5, kind="targeted", target_mask=torch.ones(10, 10).bool())
    _package_error(lambda: atk(x, _labels(x)), ValueError, "target_mask has shape (10, 10)")


@pytest.mark.parametrize("device", ["gpu", 3] + ([] if CUDA else ["cuda"]))
def test_interop_devices_resolved(device):
    interop = _interop()
    m, x = _mnist_batch()
    _package_error(lambda: interop.explain(m, x.numpy(), np.zeros(2, dtype=int), device=device), ValueError,
                   "device")
    _package_error(lambda: interop.WorstCaseBound(0.1, "l2", "saliency", max_iter=3)(
        model=m, x_batch=x.numpy(), y_batch=np.zeros(2, dtype=int), device=device), ValueError, "device")


def test_interop_seeds_and_options_checked():
    interop = _interop()
    m, x = _mnist_batch()
    _package_error(lambda: interop.captum_sensitivity_max(m, x, None, 0.1, n_perturb_samples=2, seed="x"),
                   TypeError, "seed")
    _package_error(lambda: interop.WorstCaseBound(0.1, "l2", "saliency", seed=1.5), TypeError, "seed")
    _package_error(lambda: interop.captum_bound(compare_extra().Saliency(m), x, None, 0.1, abs="yes"), TypeError,
                   "abs")
    pytest.importorskip("quantus")
    _package_error(lambda: interop.quantus_sensitivity(m, x, None, 0.1, foo=1), TypeError, "['foo']")


class _TupleModel(torch.nn.Module):  # returns (logits, features), as some vision models do
    def __init__(self):
        super().__init__()
        self.net = model("mnist32")

    def forward(self, x):
        return self.net(x), x


def test_model_must_return_a_logits_tensor():
    _, x = _mnist_batch()
    _package_error(lambda: bounds.attribution_bound(_TupleModel(), x, 0.1, max_iter=3), TypeError, "logits tensor")


def test_numpy_floats_accepted_in_configurations():
    from attrbound_lite import zoo
    assert bounds.BoundOptions(tol=np.float32(1e-3)).tol == pytest.approx(1e-3)
    assert region.RegionOptions(step_size=np.float32(0.01)).step_size == pytest.approx(0.01)
    assert zoo.Recipe(dataset="mnist", lr=np.float32(0.01)).lr == pytest.approx(0.01)


def test_models_take_scalar_normalisation_and_numpy_sizes(tmp_path):
    m = models.MnistCNN(width=0.125, mean=0.1307, std=0.3081)
    assert m.config["mean"] == [0.1307] and m.config["std"] == [0.3081]
    c = models.CifarCNN(width=0.125, num_classes=np.int64(4), mean=np.float32([0.5] * 3), std=torch.full((3,), 0.25))
    loaded, _ = checkpoints.load_checkpoint(checkpoints.save_checkpoint(c, tmp_path / "c.safetensors"))
    assert loaded.config["num_classes"] == 4 and loaded.config["std"] == [0.25] * 3
    _package_error(lambda: models.model_for_dataset(["mnist"]), ValueError, "data set")
    _package_error(lambda: models.QuadraticClassifier(torch.eye(3, dtype=torch.float64)[None], torch.zeros(1, 3)),
                   TypeError, "same dtype")


def test_certified_refuses_a_softplus_without_positive_beta():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Softplus(beta=0.0),
                              torch.nn.Linear(3, 2)).double()
    _package_error(lambda: certified.certified_bound(net, torch.full((1, 4), 0.5, dtype=torch.float64), 0.01),
                   ValueError, "beta")


def test_attack_arguments_typed():
    m, x = _mnist_batch()
    _package_error(lambda: attacks.PGD(m, 0.1, 0.05, 2, random_start="False"), TypeError, "random_start")
    _package_error(lambda: attacks.AttributionPGD(m, "saliency", 0.1, 0.05, 1)(x, _labels(x), start=x.numpy()),
                   TypeError, "torch.as_tensor")
    _package_error(lambda: attacks.IFIA(m, "saliency", 0.1, 0.05, 1, k=5, kind="targeted", target_mask="center"),
                   TypeError, "target_mask")


@pytest.mark.parametrize("call, kind, fragment", [
    (lambda b, x: b.project(x.tolist(), x), TypeError, "torch.Tensor"),
    (lambda b, x: b.step(x, x.flatten(1), 0.01), ValueError, "grad has shape"),
    (lambda b, x: b.step(x, None, 0.01), TypeError, "grad"),
    (lambda b, x: b.random_init(x, generator=0), TypeError, "torch.Generator"),
    (lambda b, x: b.random_init((x * 255).to(torch.uint8)), TypeError, "uint8"),
    (lambda b, x: b.ascend("loss", x, 2, 0.01), TypeError, "objective"),
    (lambda b, x: b.distance(x, x[:1]), ValueError, "shape"),
], ids=["project list", "flat grad", "grad None", "int generator", "uint8 x0", "objective str", "distance shapes"])
def test_threat_model_arguments_typed(call, kind, fragment):
    _, x = _mnist_batch()
    _package_error(lambda: call(threat_models.L2Ball(0.1), x), kind, fragment)


def test_jacobian_operator_needs_a_resolved_target():
    m, x = _mnist_batch()
    _package_error(lambda: attributions.Saliency(m).jacobian_operator(x, None), TypeError, "argmax")


def test_adapter_keywords_checked():
    interop = _interop()
    m, x = _mnist_batch()
    y = np.zeros(2, dtype=int)
    _package_error(lambda: interop.captum_bound(compare_extra().Saliency(m), x, None, 0.1, attribution="saliency"),
                   TypeError, "['attribution']")
    _package_error(lambda: interop.WorstCaseBound(0.1, "l2", "saliency", target=3), TypeError, "['target']")
    _package_error(lambda: interop.WorstCaseBound(0.1, "l2", "saliency", aggregate_func="mean"), TypeError,
                   "aggregate_func")
    _package_error(lambda: interop.WorstCaseBound(0.1, "l2", "saliency", relative="no"), TypeError, "relative")
    _package_error(lambda: interop.WorstCaseBound(0.1, "l2", "integrated_gradients",
                                                  attribution_options=[("n_steps", 2)]), TypeError, "dict")
    for baseline, kind in ((np.zeros((1, 28, 28)), TypeError), (math.nan, ValueError),
                           (torch.zeros(3, 28, 28), ValueError)):
        _package_error(lambda baseline=baseline: interop.captum_sensitivity_max(
            m, x, None, 0.1, attribution="integrated_gradients", n_perturb_samples=2, n_steps=2, baseline=baseline),
            kind)
    shared = interop.captum_sensitivity_max(m, x, y, 0.1, attribution="integrated_gradients", n_perturb_samples=2,
                                            n_steps=2, baseline=torch.full((1, 28, 28), 0.5))
    assert np.isfinite(shared.scores).all() and shared.scores.shape == (2,)
    pytest.importorskip("quantus")
    _package_error(lambda: interop.quantus_sensitivity(m, x, y, 0.1, attribution="integrated_gradients",
                                                       attribution_options="n_steps=2"), TypeError, "dict")
    _package_error(lambda: interop.quantus_sensitivity(m, x, y, 0.1, return_aggregate=True), TypeError,
                   "return_aggregate")


def test_zoo_arguments_typed():
    from attrbound_lite import zoo
    _package_error(lambda: zoo.load_reference("mnist-natural", root=123), TypeError, "root")
    _package_error(lambda: zoo.load_reference(["mnist-natural"]), ValueError, "no reference model")
    _package_error(lambda: zoo.verify_zoo("mnist-natural", full=False), TypeError, "['mnist-natural']")
    _package_error(lambda: zoo.verify_zoo(["mnist-natural"], full=False, replay="mnist-natural"), TypeError,
                   "replay must be a list")
    _package_error(lambda: zoo.zoo_table(root=123), TypeError, "root")


def _symmetric_batch():
    a = torch.randn(3, 5, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = a + a.transpose(1, 2)
    return a, (lambda v: torch.einsum("bij,bj->bi", a, v)), torch.randn(3, 5, dtype=torch.float64)


@pytest.mark.parametrize("solver", [bounds.lanczos, bounds.power_iteration])
@pytest.mark.parametrize("args, options, kind, fragment", [
    (lambda mv, v0: (3, v0), {}, TypeError, "matvec must be a callable"),
    (lambda mv, v0: (mv, v0[0]), {}, ValueError, "v0[None]"),
    (lambda mv, v0: (mv, v0.long()), {}, ValueError, "floating-point"),
    (lambda mv, v0: (mv, torch.zeros_like(v0)), {}, ValueError, "non-zero rows"),
    (lambda mv, v0: (mv, v0.numpy()), {}, TypeError, "got ndarray"),
    (lambda mv, v0: (lambda v: v[:, :2], v0), {}, ValueError, "matvec must return"),
    (lambda mv, v0: (lambda v: v.float(), v0), {}, ValueError, "matvec must return"),
    (lambda mv, v0: (mv, v0), {"max_iter": 0}, ValueError, "max_iter"),
    (lambda mv, v0: (mv, v0), {"max_iter": 2.5}, ValueError, "max_iter"),
    (lambda mv, v0: (mv, v0), {"tol": -1e-3}, ValueError, "tol"),
    (lambda mv, v0: (mv, v0), {"tol": True}, ValueError, "tol"),
])
def test_eigensolver_arguments_checked(solver, args, options, kind, fragment):
    _, mv, v0 = _symmetric_batch()
    _package_error(lambda: solver(*args(mv, v0), **options), kind, fragment)


@pytest.mark.parametrize("solver, iters", [(bounds.lanczos, 5), (bounds.power_iteration, 3000)])
def test_eigensolvers_take_numpy_counts_and_find_the_top_eigenvalue(solver, iters):
    a, mv, v0 = _symmetric_batch()
    result = solver(mv, v0, max_iter=np.int64(iters), tol=np.float64(1e-8))
    torch.testing.assert_close(result.value, torch.linalg.eigvalsh(a).abs().amax(1), rtol=1e-4, atol=0)


def test_dense_jacobian_and_cosine_bound_checked():
    m, x = _mnist_batch()
    explainer = attributions.Saliency(m)
    _package_error(lambda: bounds.dense_jacobian("saliency", x), TypeError, "Attribution")
    _package_error(lambda: bounds.dense_jacobian(explainer, x.numpy()), TypeError, "ndarray")
    _package_error(lambda: bounds.dense_jacobian(explainer, x, max_n=-1), ValueError, "max_n")
    _package_error(lambda: bounds.dense_jacobian(explainer, x, max_n=0), ValueError, "use method='lanczos'")
    _package_error(lambda: bounds.dense_jacobian(explainer, x, rows=3), TypeError, "rows")
    _package_error(lambda: bounds.cosine_bound(0.5, torch.ones(1)), TypeError, "euclidean")
    _package_error(lambda: bounds.cosine_bound(torch.ones(2), torch.ones(1)), ValueError, "one shape")
    _package_error(lambda: bounds.cosine_bound(-torch.ones(1), torch.ones(1)), ValueError, ">= 0")
    torch.testing.assert_close(bounds.cosine_bound(torch.tensor([0.6, 2.0]), torch.ones(2)), torch.tensor([0.8, -1.0]))


@pytest.mark.parametrize("call, kind, fragment", [
    (lambda: runtime.derive_seed(True), TypeError, "bool"),
    (lambda: runtime.derive_seed(None), TypeError, "NoneType"),
    (lambda: runtime.derive_seed(torch.tensor(3)), TypeError, "Tensor"),
    (lambda: runtime.resolve_device("mps"), ValueError, "'cpu' and 'cuda'"),
    (lambda: runtime.resolve_device("meta"), ValueError, "'cpu' and 'cuda'"),
    (lambda: runtime.run_in_chunks(3, 4, "cpu"), TypeError, "fn must be a callable"),
    (lambda: runtime.run_in_chunks(lambda a, b: 0, -1, "cpu"), ValueError, "n (the number of rows)"),
    (lambda: runtime.run_in_chunks(lambda a, b: 0, 2.5, "cpu"), ValueError, "n (the number of rows)"),
    (lambda: runtime.run_in_chunks(lambda a, b: 0, 4, "cpu", size=0), ValueError, "size"),
    (lambda: runtime.run_in_chunks(lambda a, b: 0, 4, "gpu"), ValueError, "unknown device"),
])
def test_runtime_arguments_checked(call, kind, fragment):
    _package_error(call, kind, fragment)


def test_derive_seed_counts_numpy_numbers_as_python_numbers():
    assert runtime.derive_seed(np.int64(3), "attack", np.float32(0.5)) == runtime.derive_seed(3, "attack", 0.5)
    assert runtime.derive_seed(3, 1) != runtime.derive_seed(3, 2)
    assert runtime.run_in_chunks(lambda a, b: (a, b), np.int64(5), "cpu", size=np.int64(2)) == [(0, 2), (2, 4), (4, 5)]


@pytest.mark.parametrize("call, kind, fragment", [
    (lambda: stats.wilson(5, 3), ValueError, "cannot exceed"),
    (lambda: stats.wilson(-1, 3), ValueError, "successes"),
    (lambda: stats.wilson(1.5, 3), ValueError, "successes"),
    (lambda: stats.wilson(1, 3, confidence=95), ValueError, "confidence"),
    (lambda: stats.bootstrap_mean("abc"), TypeError, "str"),
    (lambda: stats.bootstrap_mean([[1.0, 2.0], [3.0, 4.0]]), ValueError, "1-d"),
    (lambda: stats.bootstrap_mean([1.0, "x"]), TypeError, "non-numeric"),
    (lambda: stats.bootstrap([1.0, 2.0, 3.0]), TypeError, "statistic"),
    (lambda: stats.bootstrap(np.mean), ValueError, "at least one sample"),
    (lambda: stats.bootstrap_mean([1.0, 2.0], n_resamples=0), ValueError, "n_resamples"),
    (lambda: stats.bootstrap_mean([1.0, 2.0], seed="a"), TypeError, "seed"),
    (lambda: stats.paired_difference([1.0, 2.0], [1.0]), ValueError, "one length"),
    (lambda: stats.verdict(0.5), TypeError, "Interval"),
    (lambda: stats.sig([1.0, 2.0]), TypeError, "one number"),
    (lambda: stats.sig("x"), TypeError, "one number"),
    (lambda: stats.sig(1.0, digits=0), ValueError, "digits"),
])
def test_stats_arguments_checked(call, kind, fragment):
    _package_error(call, kind, fragment)


def test_stats_take_numpy_numbers_and_tensors():
    assert stats.wilson(np.int64(3), np.int64(10)).estimate == 0.3
    assert stats.bootstrap_mean(torch.arange(10.0)).estimate == 4.5
    assert stats.sig(np.float32(0.12345)) == "0.123" and stats.sig(torch.tensor(2.5)) == "2.50"
    assert stats.sig(None) == "n/a" and stats.sig(math.nan) == "n/a"


@pytest.mark.parametrize("call, fragment", [
    (lambda: models.MnistCNN(width=0.01), "too small"),
    (lambda: models.Normalize([0.1], [0.2], channels=0), "channels"),
    (lambda: models.smooth_relu(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.LeakyReLU(),
                                                    torch.nn.Linear(3, 2)), 10.0), "stay piecewise linear"),
])
def test_model_builders_refuse_degenerate_networks(call, fragment):
    _package_error(call, ValueError, fragment)


@pytest.mark.parametrize("call", [
    lambda m, x: bounds.attribution_bound(m, x, 0.1, box="no"),
    lambda m, x: bounds.lanczos(lambda v: v, torch.ones(1, 3), psd="yes"),
    lambda m, x: certified.certified_bound(m, x, 0.1, progress="no"),
    lambda m, x: attributions.Saliency(m).attribute(x, create_graph="no"),
    lambda m, x: attrbound_lite.evaluation.evaluate(m, (x, torch.zeros(2, dtype=torch.long)), "mnist", progress="no"),
    lambda m, x: attrbound_lite.training.train(m, (x, torch.zeros(2, dtype=torch.long)), "natural", progress=1),
    lambda m, x: attrbound_lite.zoo.verify_zoo(["mnist-natural"], full="no"),
    lambda m, x: attrbound_lite.zoo.build_zoo(["mnist-natural"], force="yes"),
])
def test_flags_must_be_bools(call):
    import attrbound_lite.evaluation
    import attrbound_lite.training
    import attrbound_lite.zoo  # noqa: F401 - the calls above reach them as attributes

    m, x = _mnist_batch()
    _package_error(lambda: call(m, x), TypeError, "must be True or False")


def test_flags_take_numpy_bools():
    m, x = _mnist_batch()
    assert bounds.attribution_bound(m, x, 0.1, box=np.bool_(True), max_iter=3).euclidean.shape == (2,)
    assert attributions.Saliency(m).attribute(x, create_graph=np.bool_(False)).shape == x.shape


@pytest.mark.parametrize("x, kind, fragment", [
    (lambda: torch.rand(1, 3, 28, 28), ValueError, "takes images (B, 1, 28, 28)"),
    (lambda: torch.rand(1, 1, 14, 14), ValueError, "takes images (B, 1, 28, 28)"),
    (lambda: torch.rand(1, 28, 28), ValueError, "x[None]"),
    (lambda: torch.rand(1, 1, 28, 28, dtype=torch.float64), TypeError, "float32 weights"),
    (lambda: np.zeros((1, 1, 28, 28), dtype=np.float32), TypeError, "torch.as_tensor"),
])
def test_zoo_models_check_their_inputs_when_called(x, kind, fragment):
    m = models.MnistCNN(width=0.125, activation="softplus")
    _package_error(lambda: m(x()), kind, fragment)
    _package_error(lambda: models.smooth_relu(models.MnistCNN(width=0.125), 10.0)(x()), kind, fragment)
    assert m(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert copy.deepcopy(m).double()(torch.rand(1, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64


def test_normalisation_and_datasets_refuse_what_they_cannot_mean(tmp_path):
    from attrbound_lite.data import ImageDataset

    _package_error(lambda: models.Normalize([], []), ValueError, "empty")
    _package_error(lambda: models.Normalize([0.1, 0.2], [0.3, 0.3])(torch.rand(1, 3, 4, 4)), ValueError, "(B, 2, H, W)")
    images, labels = torch.rand(2, 1, 2, 2), torch.tensor([0, 1])
    _package_error(lambda: ImageDataset(images, labels, "x", "dev", ["a", "b"]), ValueError, "'train' or 'test'")
    _package_error(lambda: ImageDataset(images * 255, labels, "x", "train", ["a", "b"]), ValueError, "divide")
    assert len(ImageDataset(images, labels, "x", "test", ["a", "b"])) == 2
    weights = checkpoints.save_checkpoint(model("mnist32"), tmp_path / "m.safetensors",
                                          {"acc": np.float32(0.5), "epochs": np.int64(2)})
    assert checkpoints.load_checkpoint(weights)[1]["metadata"] == {"acc": 0.5, "epochs": 2}


def test_tour_four_edges(tmp_path):
    m, x = _mnist_batch()
    labels = torch.zeros(2, dtype=torch.long)
    _package_error(lambda: attacks.PGD(m, 0.1, 0.05, 2)(x, labels.to("meta")), ValueError, "'meta' device")
    _package_error(lambda: stats.Interval(0.5, 0.9, 0.1, 10), ValueError, "low <= high")
    assert stats.Interval(0.5, math.nan, math.nan, 1).n == 1  # an undefined interval stays allowed
    cosine = bounds.cosine_bound(torch.tensor([math.nan, 0.6]), torch.ones(2))
    assert cosine[0].isnan() and cosine[1].item() == pytest.approx(0.8)
    assert stats.bootstrap_mean([1.0, math.inf, 3.0]).n == 2  # NaN and inf units dropped, as documented
    import attrbound_lite.evaluation
    _package_error(lambda: attrbound_lite.evaluation.evaluate(m, (x, labels), "mnist", attribution="input_x_gradient"),
                   ValueError, "attribution")
    import attrbound_lite.zoo
    _package_error(lambda: attrbound_lite.zoo.verify_zoo(["mnist-natural"], rtol=-1.0, full=False), ValueError, "rtol")
    weights = checkpoints.save_checkpoint(m, tmp_path / "m.safetensors")
    sidecar = weights.with_suffix(".json")
    sidecar.write_bytes(b"\xc9" + sidecar.read_bytes()[1:])
    _package_error(lambda: checkpoints.load_checkpoint(weights), ValueError, "not valid JSON")


def test_review_edges_quantus_maps_and_explainers():
    interop = _interop()
    m, x = _mnist_batch()
    y = np.zeros(2, dtype=int)
    metric = interop.WorstCaseBound(0.1, "l2", "saliency")
    plain = metric(model=m, x_batch=x.numpy(), y_batch=y)
    summed = np.ones((2, 28, 28), dtype=np.float32)  # a channel-summed map, as Quantus's examples pass it
    assert metric(model=m, x_batch=x.numpy(), y_batch=y, a_batch=summed) == plain
    _package_error(lambda: metric(model=m, x_batch=x.numpy(), y_batch=y, a_batch=np.ones((2, 27, 28))), ValueError,
                   "a_batch")
    own = interop.explain(m, x.numpy(), y, attribution=attributions.Saliency(m), method="Saliency")
    assert np.array_equal(own, interop.explain(m, x.numpy(), y, attribution="saliency"))
    _package_error(lambda: interop.explain(m, x.numpy(), y, attribution=attributions.Saliency(m),
                                           method="IntegratedGradients"), ValueError, "disagree")
    import attrbound_lite.evaluation
    _package_error(lambda: attrbound_lite.evaluation.ifia_per_image(m, x, torch.zeros(2, dtype=torch.long), "mnist",
                                                                    attribution="input_x_gradient"),
                   ValueError, "attribution")


def test_tour_five_edges(tmp_path):
    import shutil

    from attrbound_lite import zoo
    m, _ = _mnist_batch()
    _package_error(lambda: attributions.Saliency(m).rebind("model"), TypeError, "torch.nn.Module")
    _package_error(lambda: zoo.replay_losses("mnist-nat"), ValueError, "no reference model")
    _package_error(lambda: zoo.replay_losses("mnist-natural", n_batches=0), ValueError, "n_batches")
    _package_error(lambda: zoo.evaluate_reference(m, "mnist-natural"), TypeError, "Recipe")
    recipe = zoo.REFERENCE["mnist-natural"]
    root = tmp_path / "zoo"
    shutil.copytree(zoo.zoo_root() / recipe.key, root / recipe.key)
    (root / recipe.key / "manifest.json").write_text("[1, 2]")
    _package_error(lambda: zoo.read_manifest("mnist-natural", root=root), ValueError, "another recipe")


def test_tour_five_remaining_edges(tmp_path):
    import shutil

    from attrbound_lite import data, experiments, runtime, threat_models, training, zoo
    m, x = _mnist_batch()
    _package_error(lambda: attacks.Attack(m, 0.1, 0.05, 2), TypeError, "base class")
    _package_error(lambda: threat_models.ThreatModel(0.1), TypeError, "threat_model")
    _package_error(lambda: attacks.IFIA(m, attributions.Saliency(m), 0.1, 0.05, 2, 10, kind="targeted",
                                        target_mask=torch.zeros(28, 28, dtype=torch.bool)), ValueError, "no pixel")
    ball = threat_models.L2Ball(0.1)
    _package_error(lambda: ball.project(torch.full_like(x, math.nan), x), ValueError, "NaN")
    _package_error(lambda: ball.step(x, torch.full_like(x, math.nan), 0.1), ValueError, "NaN")
    assert torch.isfinite(ball.step(x, torch.ones_like(x), 0.1)).all()
    _package_error(lambda: bounds.lanczos(lambda v: v * math.nan, torch.ones(2, 4)), ValueError, "not finite")
    _package_error(lambda: checkpoints.save_checkpoint(m, tmp_path / "a.safetensors", {"loss": math.inf}),
                   ValueError, "standard JSON")
    _package_error(lambda: checkpoints.save_checkpoint(m, tmp_path / "b.safetensors", {"runs": {1: "a"}}),
                   TypeError, "string keys")
    _package_error(lambda: checkpoints.sha256_file(tmp_path), ValueError, "folder")
    _package_error(lambda: data.fingerprint(torch.full((1, 1, 2, 2), math.nan), torch.tensor([0])), ValueError, "NaN")
    _package_error(lambda: runtime.run_in_chunks(lambda a, b: b - a, 5, "cpu", key=[1, 2]), TypeError, "hashable")
    _package_error(lambda: models.QuadraticClassifier(torch.full((2, 4, 4), math.nan), torch.zeros(2, 4)),
                   ValueError, "finite")
    _package_error(lambda: training.ignored_options("natural", ["epsz"]), ValueError, "not a TrainConfig field")
    _package_error(lambda: zoo.Recipe(dataset="mnist", method="natural", model={"width": 0.0}), ValueError, "width")
    recipe = zoo.REFERENCE["mnist-natural"]
    root = tmp_path / "zoo"
    shutil.copytree(zoo.zoo_root() / recipe.key, root / recipe.key)
    (root / recipe.key / "manifest.json").write_text("garbage")
    _package_error(lambda: zoo.zoo_table(root=root), ValueError, "not a readable manifest")
    dataset = data.ImageDataset(x, torch.tensor([0, 1]), "toy", "test", [str(i) for i in range(10)])
    _package_error(lambda: experiments.validate_bounds(m, dataset, [0.1], sample_ids=[0, 0]), ValueError, "twice")


class _FrozenBackbone(torch.nn.Module):
    """A classifier whose features run under torch.no_grad(): its logits do not reach the inputs."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Softplus())
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        with torch.no_grad():
            h = self.features(x)
        return self.head(h)


def test_tour_six_numeric_edges():
    from attrbound_lite import threat_models
    from attrbound_lite.runtime import derive_seed
    torch.manual_seed(0)
    x = torch.rand(2, 1, 4, 4)
    # float16 maps whose total passes 65504, ranks beyond float16's range, one value per sample
    big = torch.rand(1, 3, 224, 224).half()
    assert metrics.saliency_map(big).dtype == torch.float16
    assert metrics.saliency_map(big).float().sum().item() == pytest.approx(1.0, abs=1e-2)
    flat = torch.rand(1, 150_528)
    assert metrics.spearman(flat.half(), flat.half()).item() == pytest.approx(1.0, abs=1e-3)
    assert metrics.spearman(torch.ones(2, 1), torch.ones(2, 1)).isnan().all()
    _package_error(lambda: metrics.spearman(x.to("meta"), x.to("meta")), ValueError, "meta")
    assert derive_seed(np.str_("mnist"), 3) == derive_seed("mnist", 3)
    # models the bounds and attacks cannot differentiate, refused by name
    hard = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Hardsigmoid(),
                               torch.nn.Linear(8, 3))
    _package_error(lambda: bounds.attribution_bound(hard, x, 0.1, max_iter=3), ValueError, "piecewise")
    _package_error(lambda: bounds.attribution_bound(hard, x, 0.1, max_iter=3, surrogate_beta=10.0), ValueError,
                   "stay piecewise linear")
    # a saturation (Hardtanh) may stay in a surrogate, as max-pooling does; ReLU6 (a ReLU-type kink) may not
    saturating = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                                     torch.nn.Hardtanh(), torch.nn.Linear(8, 3)).eval()
    assert torch.isfinite(bounds.attribution_bound(saturating, x, 0.1, max_iter=5, surrogate_beta=10.0).euclidean).all()
    relu6 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8),
                                torch.nn.ReLU6(), torch.nn.Linear(8, 3)).eval()
    _package_error(lambda: bounds.attribution_bound(relu6, x, 0.1, max_iter=3, surrogate_beta=10.0), ValueError,
                   "stay piecewise linear")
    frozen = _FrozenBackbone()
    _package_error(lambda: attributions.Saliency(frozen).attribute(x, target=0), ValueError, "no_grad")
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    zeros = torch.zeros(2, dtype=torch.long)
    _package_error(lambda: attacks.AttributionPGD(linear, "saliency", 0.1, 0.05, 2)(x, zeros), ValueError,
                   "does not change with the input")
    _package_error(lambda: threat_models.L2Ball(0.1).ascend(lambda z: 1.0, x, 2, 0.05), TypeError, "tensor")
    _package_error(lambda: threat_models.L2Ball(0.1).ascend(lambda z: torch.ones(2), x, 2, 0.05), ValueError,
                   "depend on the inputs")
    # inference mode, compiled modules
    with torch.inference_mode():
        frozen_x = torch.rand(2, 1, 4, 4)
    smooth = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Softplus(), torch.nn.Linear(8, 3))
    _package_error(lambda: bounds.attribution_bound(smooth, frozen_x, 0.1), ValueError, "inference_mode")
    with torch.inference_mode():
        _package_error(lambda: bounds.attribution_bound(smooth, x, 0.1), ValueError, "inference_mode")
    _package_error(lambda: bounds.attribution_bound(torch.compile(smooth), x, 0.1), TypeError, "_orig_mod")
    # a compiled module is refused only where a gradient is differentiated: first-order uses take it
    compiled = torch.compile(smooth, backend="eager")
    target = torch.tensor([0, 1])
    assert torch.allclose(attributions.Saliency(compiled).attribute(x, target=target),
                          attributions.Saliency(smooth).attribute(x, target=target))
    assert attacks.PGD(compiled, 0.1, 0.05, 2)(x, target).shape == x.shape
    _package_error(lambda: attributions.Saliency(compiled).attribute(x, target=target, create_graph=True), TypeError,
                   "_orig_mod")
    _package_error(lambda: attacks.AttributionPGD(compiled, "saliency", 0.1, 0.05, 2), TypeError, "_orig_mod")
    # a head replaced in place is measured again
    labels = torch.tensor([0, 4])
    _package_error(lambda: attacks.PGD(smooth, 0.1, 0.05, 2)(x, labels), ValueError, "labels")
    smooth[3] = torch.nn.Linear(8, 5)
    assert attacks.PGD(smooth, 0.1, 0.05, 2)(x, labels).shape == x.shape
    # float16 through the exact method, operators given one vector
    exact = bounds.attribution_bound(smooth.half(), x.half(), 0.1, method="exact")
    assert exact.sigma_max.dtype == torch.float16 and torch.isfinite(exact.euclidean).all()
    op = attributions.Saliency(smooth.float()).jacobian_operator(x, torch.tensor([0, 1]))
    _package_error(lambda: op.matvec(torch.ones(16)), ValueError, "one vector per sample")
    assert op.matvec(torch.ones(2, 16)).shape == (2, 16)


def test_tour_six_checkpoint_zoo_and_table_edges(tmp_path):
    import json
    import shutil

    import pandas as pd

    from attrbound_lite import experiments, training, zoo
    from attrbound_lite.sweep.config import load_config
    m, _ = _mnist_batch()
    # the same weights give the same bytes (a sweep identifies a checkpoint by their sha256)
    digests = {checkpoints.sha256_file(checkpoints.save_checkpoint(m, tmp_path / f"{i}.safetensors", {"a": 1, "b": 2}))
               for i in range(6)}
    assert len(digests) == 1
    from safetensors import safe_open
    with safe_open(str(tmp_path / "0.safetensors"), framework="pt") as fh:
        assert set(fh.metadata()) == {checkpoints.HEADER_KEY}  # one key: two would be written in any order
    _package_error(lambda: checkpoints.sha256_file(0), TypeError, "path")
    weights = checkpoints.save_checkpoint(m, tmp_path / "m.safetensors")
    sidecar = weights.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "metadata": [1, 2]}))
    _package_error(lambda: checkpoints.load_checkpoint(weights), ValueError, "'metadata' section")
    _package_error(lambda: zoo.zoo_table(""), ValueError, "empty string")
    # a manifest that lacks what the readers take is named, not a KeyError
    recipe = zoo.REFERENCE["mnist-natural"]
    root = tmp_path / "zoo"
    shutil.copytree(zoo.zoo_root() / recipe.key, root / recipe.key)
    manifest = json.loads((root / recipe.key / "manifest.json").read_text())
    for cut in ("key", "batch_losses", "evaluation"):
        (root / recipe.key / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != cut}))
        _package_error(lambda: zoo.read_manifest("mnist-natural", root=root), ValueError, f"lacks {cut}")
    subset = {k: v for k, v in manifest["evaluation"]["subset"].items() if k != "n"}  # read by chapter 4's table
    (root / recipe.key / "manifest.json").write_text(
        json.dumps({**manifest, "evaluation": {**manifest["evaluation"], "subset": subset}}))
    _package_error(lambda: zoo.read_manifest("mnist-natural", root=root), ValueError, "lacks evaluation.subset.n")
    # numpy values in a recipe hash like the Python numbers they equal
    # (a method that reads steps: natural training ignores them, and a recipe refuses an option its method ignores)
    assert zoo.Recipe(dataset="mnist", method="pgd_at", model={**recipe.model, "width": np.float32(
        recipe.model["width"])}, options={"steps": np.int64(2)}).key == zoo.Recipe(
            dataset="mnist", method="pgd_at", model=recipe.model, options={"steps": 2}).key
    # a damaged training state is named, with the fix
    state = tmp_path / "run"
    state.mkdir()
    (state / "train_state.safetensors").write_bytes(b"\x00" * 40)
    x, y = unit_images((8, 1, 28, 28)).float(), torch.zeros(8, dtype=torch.long)
    _package_error(lambda: training.train(m, (x, y), "natural", 1, batch_size=8, progress=False, checkpoint_dir=state),
                   ValueError, "Delete it")
    _package_error(lambda: training.dissimilarity(torch.ones(4), torch.ones(4)), ValueError, "batch dimension")
    _package_error(lambda: load_config(None), TypeError, "YAML file")
    quadratic = models.QuadraticClassifier(torch.zeros(2, 4, 4), torch.zeros(2, 4))
    _package_error(lambda: quadratic(torch.ones(1, 5)), ValueError, "4 values")
    _package_error(lambda: quadratic(torch.ones(1, 4, dtype=torch.float64)), TypeError, "float32")
    table = pd.DataFrame({"eps": [0.1], "sample": [0], "label_kept": [1], "exceeded": [False],
                          "exceeded_euclidean": [False], "exceeded_cosine": [False], "ratio_euclidean": [0.5],
                          "ratio_cosine": [0.5]})
    _package_error(lambda: experiments.summarize(table, by=[]), ValueError, "at least one column")
    _package_error(lambda: experiments.summarize(table, by=["eps"]), TypeError, "bool")


def test_tour_seven_model_and_file_edges(tmp_path):
    """Tour 7's model-side findings: resuming another run, one recipe under two spellings, empty paths."""
    from attrbound_lite import data, training, zoo
    from attrbound_lite.sweep.config import SweepConfigError, load_config

    def mlp(hidden: int, beta: float) -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, hidden), torch.nn.Softplus(beta=beta),
                                   torch.nn.Linear(hidden, 3))

    xy = (torch.rand(12, 1, 4, 4), torch.arange(12) % 3)
    run = tmp_path / "run"
    training.train(mlp(8, 5.0), xy, "natural", 1, batch_size=4, progress=False, checkpoint_dir=run)
    # the folder of a finished run refuses a model of another width or activation (not resumed, no raw load error)
    for other in (mlp(12, 5.0), mlp(8, 1.0)):
        _package_error(lambda other=other: training.train(other, xy, "natural", 2, batch_size=4, progress=False,
                                                          checkpoint_dir=run), ValueError, "different training run")
    resumed = training.train(mlp(8, 5.0), xy, "natural", 2, batch_size=4, progress=False, checkpoint_dir=run)
    assert list(resumed["epoch"]) == [1, 2]
    _package_error(lambda: training.train(mlp(8, 5.0), xy, "natural", 2, batch_size=4, progress=False,
                                          checkpoint_dir=run, run_tag="init_seed=1"), ValueError, "different")
    _package_error(lambda: training.train(mlp(8, 5.0), xy, "natural", 1, progress=False, run_tag=1), TypeError,
                   "run_tag")
    # one recipe, one key, however its numbers are spelt
    spelt = [zoo.Recipe(dataset="mnist", method="ig_norm", model=dict(width=w, activation="softplus", beta=b,
                                                                      pool="avg"), options=dict(lam=lam))
             for w, b, lam in ((1, 10, 1), (1.0, 10.0, 1.0))]
    assert spelt[0].key == spelt[1].key
    assert type(spelt[0].model["width"]) is float and type(spelt[0].options["lam"]) is float
    for root, mirror in (("", None), (None, ""), ("  ", None)):
        _package_error(lambda r=root, m=mirror: data.load_dataset("mnist", "test", root=r, mirror=m, subset=2),
                       ValueError, "empty path")
    config = tmp_path / "sweep.yaml"
    config.write_bytes("# modèle réduit\nnorms: [l2]\n".encode("latin-1"))
    _package_error(lambda: load_config(config), SweepConfigError, "not UTF-8")
    ghost = models.MnistCNN(activation="softplus", width=0.125, pool="avg").to("meta")
    _package_error(lambda: checkpoints.save_checkpoint(ghost, tmp_path / "ghost.safetensors"), ValueError, "meta")


def test_tour_seven_numeric_edges():
    from attrbound_lite import evaluation
    x = torch.rand(3, 1, 4, 4)
    noisy = evaluation.sign_noise(x.bfloat16(), 0.1)  # per-sample streams hash bfloat16 rows too
    assert noisy.dtype == torch.bfloat16 and torch.equal(evaluation.sign_noise(x.bfloat16()[1:], 0.1), noisy[1:])
    scores = [torch.tensor(v, requires_grad=True) * 1.0 for v in (0.2, 0.4, 0.6)]  # collected in a loop
    assert stats.bootstrap_mean(scores).estimate == pytest.approx(0.4)
    m, images = _mnist_batch()
    _package_error(lambda: evaluation.ifia_by_ig_steps(m, (images, torch.zeros(2, dtype=torch.long)), "mnist",
                                                       torch.tensor(4)), TypeError, "ig_steps_grid")


def test_tour_eight_numeric_edges():
    """Tour 8's numeric findings against their oracles."""
    x = torch.rand(2, 1, 4, 4).half()
    ball = threat_models.L2Ball(0.5)
    # a zero float16 gradient is a zero l2 step (its norm underflowed to 0 and gave 0/0 = NaN)
    assert torch.equal(ball.step(x, torch.zeros_like(x), 0.1), x)
    assert torch.isfinite(ball.ascend(lambda z: (z * 0).sum(), x, 2, 0.1)).all()
    # a small float16 gradient gets a step of length alpha (its norm summed in float32, not from subnormals)
    far = threat_models.L2Ball(5.0)
    step = (far.step(x, torch.full_like(x, 1e-6), 0.1) - x).float().flatten(1).norm(dim=1)
    assert torch.allclose(step, torch.full_like(step, 0.1), rtol=2e-2)
    # PGD on a float16 model whose loss is saturated (zero gradient) stays finite
    saturated = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).half()
    with torch.no_grad():
        saturated[1].weight.zero_()
        saturated[1].bias.copy_(torch.tensor([100.0, 0.0, 0.0]))
    labels = torch.zeros(2, dtype=torch.long)
    assert torch.isfinite(attacks.PGD(saturated, 0.5, 0.1, 3, norm="l2")(x, labels)).all()
    # Pearson of a row whose spread is a few units in the last place of its mean (numpy in float64: 0.177)
    row = torch.tensor([[1.0, 1 + 2**-23, 1.0, 1 + 2**-22, 1.0]])
    oracle = np.corrcoef(row.double().numpy()[0], np.arange(5.0))[0, 1]
    assert metrics.pearson(row, torch.arange(5.0)[None]).item() == pytest.approx(oracle, rel=1e-5)
    # counts as 0-d integer tensors, as (pred == y).sum() gives them
    assert stats.wilson(torch.tensor(3), torch.tensor(10)) == stats.wilson(3, 10)
    _package_error(lambda: stats.wilson(torch.tensor(3.0), 10), ValueError, "0-d integer tensor")


def test_tour_eight_toy_stats_and_book_helper_edges(tmp_path):
    """Tour 8's findings in the toy oracles, stats, protocols and the book's table helpers."""
    import pandas as pd

    from attrbound_lite import experiments, protocols, toy
    from attrbound_lite.book import far, findings, tables
    quad = toy.toy_quadratic(0)
    # the dense-grid oracles refuse what would make them wrong
    _package_error(lambda: toy.grid_worst_case(quad, torch.zeros(2), -0.1), ValueError, "eps")
    _package_error(lambda: toy.grid_worst_case(quad, torch.zeros(2), 0.1, "linf", points=1), ValueError, "at least 2")
    _package_error(lambda: toy.linear_worst_case(torch.eye(2), -0.1, "l2"), ValueError, "eps")
    _package_error(lambda: toy.grid_worst_case(toy.toy_mlp(0).float(), torch.zeros(2), 0.1), TypeError, "double")
    # 2 numbers as a list are a point; a numpy Jacobian is a matrix
    listed = toy.grid_worst_case(quad, [0.2, -0.1], 0.1, points=21)
    assert listed.euclidean == toy.grid_worst_case(quad, torch.tensor([0.2, -0.1], dtype=torch.float64), 0.1,
                                                   points=21).euclidean
    assert toy.cosine_ball_minimum([1.0, 0.0], 0.5) == toy.cosine_ball_minimum(torch.tensor([1.0, 0.0]), 0.5)
    assert toy.linear_worst_case(np.eye(2) * 3, 0.1, "l2") == pytest.approx(0.3)
    table = toy.worst_case_table({"quadratic": (quad, torch.tensor([0.2, -0.1]))}, torch.tensor([0.05]), points=21)
    assert table["eps"].dtype == np.float64
    _package_error(lambda: protocols.rar_protocol("mnist", "eval"), ValueError, "architecture")
    # stats: bfloat16 values, pandas' missing value
    values = torch.rand(20)
    assert stats.bootstrap_mean(values.bfloat16()).estimate == pytest.approx(values.bfloat16().double().mean().item())
    assert stats.sig(pd.NA) == "n/a"
    # chapter 7's method tables: the reference, the columns, one row per image, n per method
    per_image = pd.DataFrame({"dataset": "mnist", "method": ["natural"] * 3 + ["aat"] * 2, "image": [0, 1, 2, 0, 1],
                              "topk_intersection": np.linspace(0.1, 0.5, 5), "kendall_tau": np.linspace(0.2, 0.6, 5),
                              "relative_bound": np.linspace(1.0, 2.0, 5)})
    summary = far.method_summary(per_image).set_index("method")
    assert summary.loc["natural", "n"] == 3 and summary.loc["aat", "n"] == 2
    _package_error(lambda: far.method_summary(per_image, reference="Natural"), ValueError, "reference")
    _package_error(lambda: far.method_summary(pd.concat([per_image, per_image.tail(1)])), ValueError, "repeated")
    _package_error(lambda: far.method_summary(per_image.drop(columns="relative_bound")), ValueError, "relative_bound")
    _package_error(lambda: far.method_summary(per_image.assign(dataset=np.nan)), ValueError, "no dataset")
    _package_error(lambda: far.best_method(per_image, "MNIST"), ValueError, "MNIST")
    _package_error(lambda: far.best_method(per_image, "mnist", metric="topk"), ValueError, "metric")
    _package_error(lambda: far.level_summary(per_image.assign(eps=0.1), "eps", ["natural", "AAT"]), ValueError,
                   "AAT")
    with pytest.raises(FileNotFoundError, match="chapter 06_validation"):  # one stem, not its characters
        findings.chapter_values(tmp_path, "06_validation")
    once = tables.readable(pd.DataFrame({"eps": [8 / 255, 0.3]}))
    assert tables.readable(once)["ε"].tolist() == once["ε"].tolist() == ["8/255", "0.3"]
    rows = pd.DataFrame({"eps": [0.1, 0.1], "dataset": ["mnist", np.nan], "sample": [0, 1], "label_kept": True,
                         "exceeded": False, "exceeded_euclidean": False, "exceeded_cosine": False,
                         "ratio_euclidean": 0.5, "ratio_cosine": 0.5})
    _package_error(lambda: experiments.summarize(rows, by=["dataset", "eps"]), ValueError, "grouping columns")


def test_tour_eight_model_zoo_and_cli_edges(tmp_path, capsys):
    """Tour 8's model-side findings: what a checkpoint records, what counts as smooth, recipes, the CLI's files."""
    import os

    from attrbound_lite import cli, zoo
    from attrbound_lite._io import make_dirs
    from attrbound_lite.sweep.config import SweepConfigError, load_config
    relu = models.MnistCNN(activation="relu", width=0.125)
    # a surrogate or a model edited in place would be saved as the architecture its config names: refused
    _package_error(lambda: checkpoints.save_checkpoint(models.smooth_relu(relu, 10.0), tmp_path / "s.safetensors"),
                   ValueError, "smooth_relu")
    edited = models.MnistCNN(activation="softplus", width=0.125, pool="avg")
    edited[2] = torch.nn.Tanh()
    _package_error(lambda: checkpoints.save_checkpoint(edited, tmp_path / "e.safetensors"), ValueError, "in place")
    weights = checkpoints.save_checkpoint(relu, tmp_path / "r.safetensors")
    assert checkpoints.load_checkpoint(weights)[1]["weights"]["sha256"] == checkpoints.sha256_file(weights)
    # what is smooth: Hardswish's gradient jumps; padding, resampling and dropout are linear
    kinked = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Hardswish(),
                                 torch.nn.Linear(8, 3))
    assert models.nonsmooth_modules(kinked) == ["2"]
    _package_error(lambda: models.smooth_surrogate(kinked, None), ValueError, "Hardswish")
    _package_error(lambda: models.smooth_surrogate(kinked, 10.0), ValueError, "piecewise linear")
    assert models.nonsmooth_modules(torch.nn.Sequential(torch.nn.FractionalMaxPool2d(2, output_size=2))) == ["0"]
    padded = torch.nn.Sequential(torch.nn.ZeroPad2d(1), torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(),
                                 torch.nn.Upsample(scale_factor=2), torch.nn.Dropout1d())
    assert models.is_piecewise_linear(padded)
    assert models.model_for_dataset("Fashion_MNIST", width=0.125).config == \
        models.model_for_dataset("fashion-mnist", width=0.125).config
    # a recipe whose method ignores an option it was given is refused, not hashed into a second key
    _package_error(lambda: zoo.Recipe(dataset="mnist", eps=0.3), ValueError, "natural training has no radius")
    sweep = {"data": {"name": "mnist", "n_samples": 4}, "norms": ["l2"], "eps": {"l2": [0.1]},
             "attacks": [{"type": "pgd", "steps": 2}],
             "models": [{"name": "m", "model": {"width": 0.25, "activation": "softplus", "beta": 10.0, "pool": "avg"},
                         "train": {"method": "pgd_at", "eps": 0.3, "lam": 2.0}}]}
    _package_error(lambda: load_config(sweep), SweepConfigError, "lam")
    # the results of `attrbound evaluate` never replace the checkpoint's own files
    smooth = models.MnistCNN(activation="softplus", width=0.125, pool="avg")
    run = tmp_path / "run"
    saved = checkpoints.save_checkpoint(smooth, run / "model.safetensors")
    before = saved.with_suffix(".json").read_bytes()
    for target in (saved.with_suffix(".json"), saved):
        code = cli.main(["evaluate", str(run), "--json", str(target), "--n-pgd", "0", "--n-attribution", "0",
                         "--dataset", "mnist", "--subset", "4", "--no-progress"])
        assert code != 0 and "file of the checkpoint itself" in capsys.readouterr().err
    assert saved.with_suffix(".json").read_bytes() == before
    # a compiled model is refused before evaluate measures anything, where IFIA will differentiate its gradients
    from attrbound_lite import evaluation
    compiled = torch.compile(smooth, backend="eager")
    images, labels = unit_images((4, 1, 28, 28)).float(), torch.zeros(4, dtype=torch.long)
    _package_error(lambda: evaluation.evaluate(compiled, (images, labels), "mnist", progress=False), TypeError,
                   "_orig_mod")
    # a folder behind a broken link is named
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    _package_error(lambda: make_dirs(tmp_path / "dangling"), ValueError, "broken symbolic link")


def test_tour_nine_numeric_edges():
    """Tour 9's numeric findings against their oracles."""
    from attrbound_lite import toy

    # a certificate covers the analytic softplus: PyTorch's with a low threshold (identity above it) is refused
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Softplus(1.0, threshold=0.5), torch.nn.Linear(4, 2))
    _package_error(lambda: certified.certified_bound(net.double(), torch.full((1, 2), 0.5, dtype=torch.float64),
                                                     0.1), ValueError, "threshold=0.5")
    # distances whose squares overflow or underflow float32 (numpy in float64 is the oracle)
    for value in (2e20, 3e-25):
        a = torch.full((1, 4), value)
        assert metrics.euclidean(a, torch.zeros_like(a)).item() == pytest.approx(2 * value, rel=1e-6)
    # float16 centres of mass whose sums pass 65504
    centre = metrics.mass_center(torch.full((1, 64, 64), 100.0, dtype=torch.float16))
    assert centre.dtype == torch.float16 and torch.equal(centre.float(), torch.tensor([[31.5, 31.5]]))
    # a linear model's saliency is constant: a package error, not autograd's
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    _package_error(lambda: bounds.dense_jacobian(attributions.Saliency(linear), torch.rand(2, 1, 2, 2)), ValueError,
                   "does not depend on the input")
    # a layer replaced in place: the input shapes it took before are probed again
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Softplus(), torch.nn.Linear(8, 3))
    x = torch.rand(2, 1, 4, 4)
    attributions.Saliency(model).attribute(x)
    model[1] = torch.nn.Linear(9, 8)
    _package_error(lambda: attributions.Saliency(model).attribute(x), ValueError, "cannot take inputs of shape")
    # the toys check their widths, sharpness and seeds (numpy integers are seeds)
    for options in ({"hidden": 0}, {"hidden": 2.5}, {"beta": 0.0}):
        _package_error(lambda options=options: toy.toy_mlp(**options), ValueError)
    assert torch.equal(toy.toy_mlp(np.int64(3))[0].weight, toy.toy_mlp(3)[0].weight)
    assert torch.equal(toy.toy_quadratic(np.int64(2)).Q, toy.toy_quadratic(2).Q)
    # a map without its second-order terms does not look differentiable; create_graph=True keeps them under no_grad
    smooth = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Softplus(), torch.nn.Linear(8, 3))
    leaf = torch.rand(2, 1, 4, 4, requires_grad=True)
    for explainer in (attributions.InputXGradient(smooth), attributions.IntegratedGradients(smooth, 4)):
        assert not explainer.attribute(leaf).requires_grad
        with torch.no_grad():
            kept = explainer.attribute(leaf, create_graph=True)
        (grad,) = torch.autograd.grad(kept.sum(), leaf)
        (oracle,) = torch.autograd.grad(explainer.attribute(leaf, create_graph=True).sum(), leaf)
        assert torch.allclose(grad, oracle)


def test_tour_nine_stats_results_and_adapter_edges(tmp_path):
    """Tour 9's findings in stats, results, the sweep config, validate_bounds and the Quantus/Captum adapters."""
    import pandas as pd

    from attrbound_lite import experiments, interop, results
    from attrbound_lite.sweep.config import load_config

    _package_error(lambda: stats.bootstrap_mean(np.array([1 + 2j, 3 - 1j])), TypeError, "complex")
    _package_error(lambda: stats.paired_rate_difference([0.5, 1, 0], [1, 0, 0]), ValueError, "True/False or 1/0")
    _package_error(lambda: stats.paired_rate_difference([np.nan, 1, 0], [1, 0, 0]), ValueError, "NaN outcome")
    for options in ({"confidence": 1.5}, {"n_resamples": 0}, {"seed": -1}):
        _package_error(lambda options=options: stats.paired_rate_difference([1, 0], [0, 0], **options))
    assert stats.paired_rate_difference([1, 0, 1], [0, 0, 1]) == stats.paired_rate_difference(
        [True, False, True], [False, False, True])
    _package_error(lambda: stats.Interval(0.1, 0.0, 0.2, 3, confidence=1.5), ValueError, "confidence")
    _package_error(lambda: stats.Interval(0.1, 0.0, 0.2, -3), ValueError, "n counts units")
    # results: names stay under the root, units once, configs finite; numpy numbers hash as Python's
    spec = dict(title="t", config={"n": 1}, keys=("i",), values=("v",), tolerance=0.0, units=("a",),
                compute=lambda unit, device, progress: pd.DataFrame({"i": [0, 0], "v": [1.0, 2.0]}),
                recompute=lambda rows, device: rows)
    _package_error(lambda: results.ResultSpec(name="../escaped", **spec), ValueError, "'../escaped'")
    _package_error(lambda: results.ResultSpec(name="r", **{**spec, "units": ("u", "u")}), ValueError, "each once")
    _package_error(lambda: results.ResultSpec(name="r", **{**spec, "units": ()}), ValueError, "at least one unit")
    _package_error(lambda: results.config_hash({"eps": float("nan")}), ValueError, "finite")
    assert results.config_hash({"n": np.int64(3)}) == results.config_hash({"n": 3})
    duplicated = results.ResultSpec(name="r", **spec)
    _package_error(lambda: results.build_results(duplicated, root=tmp_path, progress=False), ValueError,
                   "same keys")
    lacking = results.ResultSpec(name="r", **{**spec, "keys": ("idx",)})
    _package_error(lambda: results.build_results(lacking, root=tmp_path, progress=False), ValueError, "['idx']")
    _package_error(lambda: results.verify_results(duplicated, seed=1.5, root=tmp_path), TypeError, "seed")
    # a sweep config with a key written twice
    path = tmp_path / "twice.yml"
    path.write_text("model: mnist\neps: [0.1]\neps: [0.2]\n")
    _package_error(lambda: load_config(path), ValueError, "found the key 'eps' twice")
    # validate_bounds: an integer tensor of positions, an attack that is not a list
    _package_error(lambda: experiments._attack_specs(5), TypeError, "attacks must be")
    _package_error(lambda: experiments.AttackSpec(type="ifia").resolved(0), ValueError, "pixels")
    # Quantus: functions that change what is measured are refused (the scores would no longer match the bound)
    pytest.importorskip("quantus")
    model, x = _mnist_batch()
    x = torch.cat([x, x.flip(-1)[:1]])  # three images: batches of 2 and 1
    _package_error(lambda: interop.quantus_sensitivity(model, x[:2], None, eps=0.1,
                                                       perturb_func=lambda arr, **kw: arr), TypeError, "perturb_func")
    # a per-sample IG baseline follows the batches of Quantus and of WorstCaseBound
    baseline = torch.rand_like(x[:3]) * 0.1
    ig = {"n_steps": 4, "baseline": baseline}
    one = interop.quantus_sensitivity(model, x[:3], None, eps=0.1, attribution="integrated_gradients",
                                      attribution_options=ig, nr_samples=2)
    chunked = interop.quantus_sensitivity(model, x[:3], None, eps=0.1, attribution="integrated_gradients",
                                          attribution_options=ig, nr_samples=2, batch_size=2)
    assert chunked.scores.shape == (3,) and np.isfinite(chunked.scores).all()
    assert np.allclose(chunked.scores, one.scores, rtol=0.5)  # other noise draws, the same scale
    metric = interop.WorstCaseBound(eps=0.1, attribution="integrated_gradients", attribution_options=ig)
    whole = metric(model, x[:3], None, batch_size=3)
    assert np.allclose(metric(model, x[:3], None, batch_size=2), whole, rtol=1e-4)


def test_tour_nine_model_zoo_and_cli_edges(tmp_path, capsys):
    """Tour 9's model-side findings: slices of the zoo's CNNs, meta builds, checkpoints, configs, recipes, the CLI."""
    import json

    from safetensors.torch import save_file

    from attrbound_lite import cli, training, zoo

    # a slice of a zoo CNN is a plain Sequential of its layers (the penultimate features)
    cnn = models.MnistCNN(activation="softplus", width=0.125, pool="avg").eval()
    x = torch.rand(2, 1, 28, 28)
    features = cnn[:-1]
    assert type(features) is torch.nn.Sequential and torch.allclose(cnn[-1](features(x)), cnn(x))
    with torch.device("meta"):  # built without memory, as save_checkpoint's message says one may
        meta = models.MnistCNN(width=0.125)
    assert meta[0].mean.is_meta and meta.config["mean"] == cnn.config["mean"]
    # a checkpoint whose tensors are integers, or whose sidecar is damaged, is refused
    weights, sidecar = checkpoints.checkpoint_paths(checkpoints.save_checkpoint(cnn, tmp_path / "c.safetensors"))
    save_file({k: v.round().long() for k, v in cnn.state_dict().items()}, str(weights))
    record = json.loads(sidecar.read_text())
    record["weights"]["sha256"] = checkpoints.sha256_file(weights)
    sidecar.write_text(json.dumps(record))
    _package_error(lambda: checkpoints.load_checkpoint(weights), ValueError, "not floating point")
    for field, value, fragment in (("format_version", 0, "versions start at 1"), ("model", {"name": ["x"]},
                                                                                     "model.name must be a string")):
        sidecar.write_text(json.dumps({**record, field: value}))
        _package_error(lambda: checkpoints.load_checkpoint(weights), ValueError, fragment)
    # a derived PGD step size follows eps and steps; a given one stays
    config = training.TrainConfig(method="pgd_at", eps=0.3, steps=10)
    config.steps = 5
    assert config.alpha == pytest.approx(2.5 * 0.3 / 5)
    config.alpha = 0.01
    config.eps = 0.1
    assert config.alpha == 0.01
    # the zoo's names and recipes: study radii only, the IG-steps study at its own radius, subsets within the split
    _package_error(lambda: zoo.reference_name("mnist", "natural", eps=0.7), ValueError, "(0.1, 0.2, 0.3)")
    _package_error(lambda: zoo.reference_name("mnist", "ig_norm", eps=0.1, ig_steps=2), ValueError, "radius 0.3")
    assert zoo.reference_name("mnist", "ig_norm", ig_steps=2) == "mnist-study-ig_norm-ig2"
    _package_error(lambda: zoo.Recipe(dataset="cifar10-subset", n_train=5000), ValueError, "4,000 images")
    # initial weights of another data set or activation, with tensors of the same shapes, are refused
    recipe = zoo.Recipe(dataset="mnist", method="pgd_at", eps=0.3, model=dict(width=0.125, activation="softplus",
                                                                                beta=10.0, pool="avg"),
                        init=zoo.Recipe(dataset="mnist", model=dict(width=0.125, activation="softplus", beta=10.0,
                                                                    pool="avg")))
    fashion = models.model_for_dataset("fashion-mnist", width=0.125, activation="softplus", beta=10.0, pool="avg")
    relu = models.MnistCNN(activation="relu", width=0.125, pool="avg")
    for i, other in enumerate((fashion, relu)):
        path = checkpoints.save_checkpoint(other, tmp_path / f"other{i}.safetensors")
        _package_error(lambda path=path: zoo.initial_model(recipe, 0, path), ValueError, "pass the checkpoint of")
    own = checkpoints.save_checkpoint(models.model_for_dataset("mnist", **recipe.model), tmp_path / "own.safetensors")
    assert isinstance(zoo.initial_model(recipe, 0, own), models.MnistCNN)
    # a misspelt results root is named
    assert cli.main(["results", "list", "--root", str(tmp_path / "nope")]) == 2
    assert "no results folder" in capsys.readouterr().err


class _BufferModel(torch.nn.Module):
    """A classifier whose weights are buffers (frozen, no parameters): a softplus layer between two linear maps."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w1", torch.randn(16, 16, generator=g, dtype=dtype))
        self.register_buffer("w2", torch.randn(16, 3, generator=g, dtype=dtype))

    def forward(self, x):
        return torch.nn.functional.softplus(x.flatten(1) @ self.w1) @ self.w2


class _FunctionalReLU(torch.nn.Module):
    """A ReLU network written with ``F.relu`` in ``forward``: no ReLU module for a surrogate to replace."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.b(torch.nn.functional.relu(self.a(x.flatten(1))))


def test_tour_ten_numeric_edges():
    """Tour 10's numeric findings: models without parameters, data checked whole, flat objectives, blank maps."""
    from attrbound_lite import evaluation, experiments

    x = unit_images((6, 1, 4, 4)).float()
    buffered = _BufferModel()
    y = buffered(x).argmax(1)
    # a model whose weights are buffers is evaluated on the device and in the dtype of its buffers
    protocol = dict(eps=0.1, pgd_steps=2, pgd_alpha=0.05, ifia_k=4, eval_k=4, ifia_steps=2, ifia_alpha=0.05,
                    restarts=1)
    rows = evaluation.noise_per_image(buffered, x, y, attribution="saliency", **protocol)
    assert len(rows) == 6 and rows["label_kept"].dtype == bool
    table = experiments.validate_bounds(_BufferModel(torch.float64), (x, y), {"l2": [0.05]}, norms=["l2"],
                                        attacks=[{"type": "pgd", "steps": 2}], n_samples=2,
                                        bound_options={"max_iter": 5})
    assert len(table) == 2 and np.isfinite(table["bound_euclidean"]).all()
    # every image is checked, not only the first batch: NaN or 0-255 beyond image 256 are refused
    many = unit_images((300, 1, 4, 4)).float()
    for bad, fragment in ((math.nan, "NaN"), (255.0, "[0, 1]")):
        broken = many.clone()
        broken[299] = bad
        _package_error(lambda broken=broken: evaluation.noise_per_image(buffered, broken, buffered(many).argmax(1),
                                                                        attribution="saliency", **protocol),
                       ValueError, fragment)
    # a piecewise-linear model the surrogate cannot see: the attacks never move, and warn
    flat = _FunctionalReLU()
    labels = flat(x).argmax(1)
    for attack in (attacks.AttributionPGD(flat, "saliency", eps=0.1, alpha=0.02, steps=3),
                   attacks.IFIA(flat, "saliency", eps=0.1, alpha=0.02, steps=3, k=4)):
        with pytest.warns(UserWarning, match="exactly zero at every step"):  # it never left its starts, and says so
            attack(x, labels)
    # a blank image: its map's centre of mass is NaN, yet an iterate that keeps the label is found
    smooth = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 16), torch.nn.Softplus(),
                                 torch.nn.Linear(16, 3))
    blank = torch.cat([torch.zeros(1, 1, 4, 4), x[:2]])
    target = smooth(blank).argmax(1)
    result = attacks.IFIA(smooth, "input_x_gradient", eps=1e-4, alpha=2e-5, steps=3, k=4, kind="mass_center")(blank,
                                                                                                        target)
    assert result.label_kept.all() and torch.isnan(result.score[0]) and torch.isfinite(result.score[1:]).all()


def test_tour_ten_zoo_results_and_checkpoint_edges(tmp_path, capsys):
    """Tour 10's model-side findings: floors, damaged result manifests and rows, an edited sidecar."""
    import json
    import shutil

    from attrbound_lite import cli, results, zoo
    from attrbound_lite.book import budget

    _package_error(lambda: zoo.accuracy_floor(zoo.Recipe(dataset="cifar10")), ValueError, "not for 'cifar10'")
    # a copy of the committed grid, its manifest cut short or its rows' columns renamed with the checksum updated
    folder = tmp_path / budget.SPEC.name
    shutil.copytree(results.RESULTS_ROOT / budget.SPEC.name, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for field in ("rows_sha256", "hardware", "n_rows"):
        (folder / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != field}))
        _package_error(lambda: results.load_results(budget.SPEC, tmp_path), ValueError, f"lacks ['{field}']")
        assert cli.main(["results", "list", "--root", str(tmp_path)]) == 2  # a damaged manifest: an error (tour 17)
        said = capsys.readouterr()
        assert f"not usable: {folder / 'manifest.json'} lacks ['{field}']" in said.out
        assert f"error: {folder / 'manifest.json'} lacks ['{field}']" in said.err
    rows = (folder / "rows.csv").read_text().replace("topk_intersection", "intersection", 1)
    (folder / "rows.csv").write_text(rows)
    digest = results.file_digest(folder / "rows.csv")
    (folder / "manifest.json").write_text(json.dumps({**manifest, "rows_sha256": digest}))
    _package_error(lambda: results.load_results(budget.SPEC, tmp_path), ValueError, "edited along with its manifest")
    # a sidecar whose normalisation was edited disagrees with the weights' buffers
    cnn = models.MnistCNN(activation="softplus", width=0.125, pool="avg")
    weights, sidecar = checkpoints.checkpoint_paths(checkpoints.save_checkpoint(cnn, tmp_path / "m.safetensors"))
    record = json.loads(sidecar.read_text())
    record["model"]["config"]["mean"] = [0.5]
    sidecar.write_text(json.dumps(record))
    _package_error(lambda: checkpoints.load_checkpoint(weights), ValueError, "mean: [0.5] in the sidecar",
                   "it was edited")


def _low_curvature_net() -> torch.nn.Module:
    """A softplus net whose maps move almost linearly with the input: the global-curvature route is small there."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 6), torch.nn.Softplus(beta=0.01),
                              torch.nn.Linear(6, 2)).double().eval()
    with torch.no_grad():
        net[1].weight.mul_(10.0)
    return net


def test_tour_eleven_certificates_of_other_attributions_never_take_the_saliency_route():
    """A false certificate: the global-curvature route bounds the saliency map only, yet it was taken for
    input x gradient and IG whenever the routes included it (the default). Oracle: the deviation sampled points of
    the ball reach, which a certificate must not be below."""
    net = _low_curvature_net()
    x = torch.rand(2, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for name, options in (("input_x_gradient", {}), ("integrated_gradients", {"n_steps": 4})):
        cert = certified.certified_bound(net, x, 0.1, "l2", name, **options)
        assert torch.isinf(cert.routes["global_curvature"]).all() and "global_curvature" not in cert.route
        explainer = attributions.get_explainer(name, net, **options)
        clean = explainer.attribute(x, target=cert.target).detach()
        directions = torch.randn(64, *x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        reached = torch.zeros(len(x), dtype=torch.float64)
        for d in directions:
            z = (x + 0.1 * d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).clamp(0, 1)
            moved = explainer.attribute(z, target=cert.target).detach()
            reached = torch.maximum(reached, (moved - clean).flatten(1).norm(dim=1))
        assert (cert.euclidean >= reached).all(), (name, cert.euclidean, reached)
        # the route alone (also written twice) is refused for these attributions, as before
        for routes in (("global_curvature",), ("global_curvature", "global_curvature")):
            _package_error(lambda name=name, routes=routes, options=options: certified.certified_bound(
                net, x, 0.1, "l2", name, routes=routes, **options), ValueError, "saliency map only")
    # bfloat16 weights are certified as float16 ones are (in float64), not refused by numpy's hashing
    small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Softplus(beta=2.0),
                                torch.nn.Linear(3, 2))
    images = torch.rand(2, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    half = certified.certified_bound(copy.deepcopy(small).bfloat16(), images.bfloat16(), 0.05)
    assert torch.isfinite(half.euclidean).all()


def test_tour_eleven_numeric_edges():
    """Tour 11's other numeric findings: checked vectors, ragged samples, cluster labels, norms, a float radius."""
    from attrbound_lite import evaluation, jacobians, stats, toy

    net = _low_curvature_net()
    points = torch.rand(2, 1, 2, 2, dtype=torch.float64)
    hessian = jacobians.HessianAtPoints(net, points, torch.tensor([0, 1]))
    for bad in (torch.ones(2, 4, dtype=torch.float64), torch.ones(3, 1, 2, 2, dtype=torch.float64)):
        _package_error(lambda bad=bad: hessian.hvp(bad), ValueError, "shaped like the points")
    _package_error(lambda: hessian.hvp(np.ones((2, 1, 2, 2))), TypeError, "floating-point tensor")
    _package_error(lambda: stats.bootstrap_mean([[0.1, 0.2], [0.3]]), TypeError, "ragged")
    a, b = [True, False, True, True], [False, False, True, False]
    for groups, kind in ((np.array([[1, 2], [1, 2], [3, 4], [3, 4]]), TypeError), (["a", "a", None, "b"], ValueError),
                         ([1.0, 1.0, math.nan, 2.0], ValueError)):
        _package_error(lambda groups=groups: stats.paired_rate_difference(a, b, groups=groups), kind, "groups")
    clustered = stats.paired_rate_difference(a, b, groups=np.array([1, 1, 2, 2]))
    assert clustered.estimate == pytest.approx(0.5)
    tuples = stats.paired_rate_difference(a, b, groups=[("m", 1), ("m", 1), ("m", 2), ("m", 2)])  # (model, image)
    assert (tuples.low, tuples.high) == (clustered.low, clustered.high)
    _package_error(lambda: toy.linear_worst_case(2 * torch.eye(2), 0.1, "L2"), ValueError, "norm")
    assert toy.linear_worst_case(2 * torch.eye(2), 0.1, "l2") == pytest.approx(0.2)
    model = _BufferModel()
    x = unit_images((4, 1, 4, 4)).float()
    row = evaluation.evaluate(model, (x, model(x).argmax(1)), None, attribution="saliency", n_pgd=2, n_attribution=0,
                              eps=torch.tensor(0.1), pgd_steps=1, pgd_alpha=0.05, ifia_steps=1, ifia_alpha=0.05,
                              ifia_k=4, eval_k=4, restarts=1, progress=False)
    assert type(row["eps"]) is float and row["eps"] == pytest.approx(0.1)


def test_tour_eleven_model_results_and_sweep_edges(tmp_path):
    """Tour 11's findings in results, the sweep, recipes, training helpers, the quadratic oracle and summarize."""
    import json

    import pandas as pd
    import yaml

    from attrbound_lite import experiments, results, training, zoo
    from attrbound_lite.sweep import config_identity, load_config, plan_shards, report

    # a ResultSpec: keys as one string, a value named twice, functions that are not callables
    values = {"01": 1.0, "NA": math.nan, "null": 2.5}
    spec = dict(name="r", title="t", config={"n": 1}, keys=("k",), values=("v",), tolerance=0.0, units=("01", "NA"),
                compute=lambda unit, device, progress: pd.DataFrame({"k": list(values), "v": list(values.values())}),
                recompute=lambda rows, device: rows[["k"]].assign(v=[values[k] for k in rows["k"]]))
    _package_error(lambda: results.ResultSpec(**{**spec, "keys": "idx"}), TypeError, "'idx'", "('idx',)")
    _package_error(lambda: results.ResultSpec(**{**spec, "values": ("v", "v")}), ValueError, "each column once")
    for name in ("compute", "recompute"):
        _package_error(lambda name=name: results.ResultSpec(**{**spec, name: None}), TypeError, name, "NoneType")
    # configs with non-string keys (JSON would hash 1 as "1"); an empty root (an unset shell variable)
    _package_error(lambda: results.config_hash({1: "a"}), TypeError, "the key 1")
    _package_error(lambda: results.config_hash({"a": [{2: 3}]}), TypeError, "config['a'][0]")
    built = results.ResultSpec(**spec)
    _package_error(lambda: results.build_results(built, root="", progress=False), ValueError, "empty string")
    # text keys and units come back as text, "NA" and "null" included; a NaN recomputed as NaN agrees
    results.build_results(built, root=tmp_path, device="cpu", progress=False)
    rows = results.load_results(built, tmp_path)
    assert rows["unit"].tolist() == ["01"] * 3 + ["NA"] * 3 and rows["k"].tolist() == ["01", "NA", "null"] * 2
    assert rows.attrs["manifest"]["dtypes"] == {"unit": "str", "k": "str", "v": "float64"}
    check = results.verify_results(built, n=6, root=tmp_path, device="cpu")
    assert check["ok"].all() and int(check["committed"].isna().sum()) == 2
    # a manifest without dtypes (the results built before them) loads as before: inferred columns, unit as text
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    del manifest["dtypes"]  # (dropped from a manifest that has their hash: an edit, refused since tour 17)
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    _package_error(lambda: results.load_results(built, tmp_path), ValueError, "dtypes_sha256")
    del manifest["dtypes_sha256"]
    (tmp_path / "r" / "manifest.json").write_text(json.dumps(manifest))
    older = results.load_results(built, tmp_path)
    assert older["unit"].tolist() == rows["unit"].tolist() and older["k"].isna().sum() == 4
    # the sweep: the YAML file's own mapping where a loaded config is expected; a flag given as a string
    path = PACKAGE.parent / "configs" / "sweep-ci.yaml"
    raw = yaml.safe_load(path.read_text())
    _package_error(lambda: plan_shards(raw), TypeError, "load_config")
    _package_error(lambda: config_identity(raw, "cpu"), TypeError, "load_config")
    assert len(plan_shards(load_config(path))) == 4
    _package_error(lambda: report(tmp_path, quiet="no"), TypeError, "quiet")
    # a recipe with an option its method ignores (as train and `attrbound train` refuse it); the committed keep theirs
    _package_error(lambda: zoo.Recipe(dataset="mnist", method="pgd_at", options={"lam": 2.0}), ValueError,
                   "lam is ignored by pgd_at")
    _package_error(lambda: zoo.Recipe(dataset="mnist", options={"warmup_epochs": 0.5}), ValueError, "warmup_epochs")
    assert zoo.Recipe(dataset="mnist", method="ig_norm", options={"lam": 2.0}).options == {"lam": 2.0}
    assert zoo.REFERENCE["mnist-pgd_at"].options["ig_steps"] == 5
    # a bool as a number of epochs; integer maps; an empty batch of the oracle; a grouping column named twice
    _package_error(lambda: training.scaled_for_batch(training.TrainConfig(), 256, warmup_epochs=True), TypeError,
                   "warmup_epochs")
    maps = torch.ones(2, 3, dtype=torch.long)
    _package_error(lambda: training.dissimilarity(maps, maps), TypeError, "floating-point")
    oracle = models.QuadraticClassifier(torch.eye(3).repeat(2, 1, 1), torch.zeros(2, 3))
    assert oracle(torch.empty(0, 3)).shape == (0, 2)
    table = pd.DataFrame({"eps": [0.1], "sample": [0], "label_kept": [True], "exceeded": [False],
                          "exceeded_euclidean": [False], "exceeded_cosine": [False], "ratio_euclidean": [0.5],
                          "ratio_cosine": [0.5]})
    _package_error(lambda: experiments.summarize(table, by=["eps", "eps"]), ValueError, "more than once")
    assert len(experiments.summarize(table, by=["eps"])) == 1


def test_tour_twelve_targets_low_precision_and_sampled_radii():
    """Tour 12: complex targets refused everywhere a target is read; bfloat16 results reach numpy as float32; the
    sampled metrics take per-sample radii (sample i as in a call with eps[i] for every sample)."""
    import captum.attr

    from attrbound_lite import attributions, certified, evaluation, interop
    from attrbound_lite.region import region_bound

    m, x = _mnist_batch()
    complex_target = torch.tensor([1.7 + 0.5j, 2 + 0j])
    for call in (lambda: bounds.attribution_bound(m, x, 0.1, target=complex_target, max_iter=5),
                 lambda: region_bound(m, x, 0.1, target=complex_target, steps=1, restarts=1, max_iter=5),
                 lambda: certified.certified_bound(copy.deepcopy(m).double(), x.double(), 0.01, target=complex_target),
                 lambda: attributions.Saliency(m).attribute(x, target=complex_target),
                 lambda: interop.captum_bound(captum.attr.Saliency(m), x, complex_target, 0.1, max_iter=5)):
        _package_error(call, ValueError, "complex")
    half = copy.deepcopy(m).to(torch.bfloat16)
    result = bounds.attribution_bound(half, x.to(torch.bfloat16), 0.1, max_iter=5, max_dense_n=1)
    frame = result.to_dataframe()
    assert frame["euclidean"].dtype == np.float32 and np.isfinite(frame["euclidean"]).all()
    maps = interop.explain(half, x.to(torch.bfloat16), None)
    assert maps.dtype == np.float32 and maps.shape == tuple(x.shape)
    noise = evaluation.noise_per_image(half, x.to(torch.bfloat16), m(x).argmax(1), "mnist", attribution="saliency")
    assert len(noise) == 2 and noise["topk_intersection"].between(0, 1).all()
    _package_error(lambda: interop.quantus_sensitivity(half, x.to(torch.bfloat16), None, 0.1), TypeError,
                   "model.float()")
    eps = torch.tensor([0.05, 0.2])
    for run in (lambda e: interop.captum_sensitivity_max(m, x, None, e, n_perturb_samples=3),
                lambda e: interop.quantus_sensitivity(m, x, None, e, nr_samples=3)):
        both = run(eps)
        for i, radius in enumerate(eps.tolist()):
            assert both.scores[i] == pytest.approx(run(radius).scores[i], rel=1e-6)
    assert len(interop.captum_sensitivity_max(m, x, None, eps, n_perturb_samples=3).noise["perturb_radius"]) == 2
    _package_error(lambda: interop.captum_sensitivity_max(m, x, None, torch.tensor([0.1, 0.1, 0.1])), ValueError,
                   "eps")


def test_tour_twelve_training_checkpoint_and_cli_edges(tmp_path, capsys):
    """Tour 12: a TrainConfig with an option its method ignores is refused by train (a recipe's is not); NaN weights
    are neither saved nor loaded; an unwritable checkpoint path and a file as the book's --out are named."""
    import json

    from safetensors.torch import save_file

    from attrbound_lite import checkpoints, training, zoo
    from attrbound_lite.cli import main

    net = models.MnistCNN(width=0.25, activation="softplus", pool="avg")
    data = (unit_images((8, 1, 28, 28)).float(), torch.arange(8) % 10)
    for cfg, fragment in ((training.TrainConfig(method="natural", eps=0.1, batch_size=8), "eps is ignored"),
                          (training.TrainConfig(method="pgd_at", eps=0.1, lam=2.0, batch_size=8), "lam is ignored")):
        _package_error(lambda cfg=cfg: training.train(copy.deepcopy(net), data, cfg, progress=False), ValueError,
                       fragment)
    recipe = zoo.REFERENCE["mnist-pgd_at"].train_config()  # RAR's ig_steps, which PGD-AT ignores: kept, not refused
    assert "ig_steps" in recipe.model_fields_set
    training.train(copy.deepcopy(net), data, recipe.model_copy(update={"epochs": 1, "batch_size": 8, "steps": 1}),
                   progress=False, stop_after=1)
    scaled = training.scaled_for_batch(recipe, 16, base_batch=8)  # at another batch size too
    training.train(copy.deepcopy(net), data, scaled.model_copy(update={"epochs": 1, "steps": 1}), progress=False,
                   stop_after=1)
    natural = training.TrainConfig(method="natural", batch_size=8)  # a round trip sets every field, at its default
    training.train(copy.deepcopy(net), data, training.TrainConfig(**natural.to_dict()), progress=False, stop_after=1)
    low = copy.deepcopy(net).to(torch.bfloat16)  # its run's identity hashes the bfloat16 data as bytes
    history = training.train(low, (data[0].to(torch.bfloat16), data[1]), "natural", batch_size=8, progress=False,
                             checkpoint_dir=tmp_path / "state", stop_after=1)
    assert np.isfinite(history["loss"]).all()
    with pytest.raises(FloatingPointError, match=r"train in float32 \(model.float\(\)\)"):  # not "lower lr"
        training.train(copy.deepcopy(net).half(), (unit_images((32, 1, 28, 28)).half(), torch.arange(32) % 10),
                       "natural", batch_size=8, progress=False)
    path = checkpoints.save_checkpoint(net, tmp_path / "net.safetensors")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["1.weight"][0, 0, 0, 0] = math.nan
    save_file(state, str(path), metadata={"format": checkpoints.FORMAT})
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta["weights"]["sha256"] = checkpoints.sha256_file(path)
    sidecar.write_text(json.dumps(meta))
    _package_error(lambda: checkpoints.load_checkpoint(path), ValueError, "NaN or infinite", "1.weight")
    broken = copy.deepcopy(net)
    with torch.no_grad():
        broken[1].weight[0, 0, 0, 0] = math.inf
    _package_error(lambda: checkpoints.save_checkpoint(broken, tmp_path / "broken.safetensors"), ValueError, "1.weight")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _package_error(lambda: checkpoints.save_checkpoint(net, "/proc/attrbound-nowhere/net.safetensors"), ValueError,
                   "cannot create the folder '/proc/attrbound-nowhere'", "choose a folder you can write to")
    with pytest.raises(SystemExit) as exit_info:
        main(["book", "--out", str(blocker), "--only", "01_findings"])
    assert exit_info.value.code == 2 and "is an existing file, not a folder" in capsys.readouterr().err


def test_tour_thirteen_edited_sidecar_and_the_exact_limits_name(tmp_path):
    """Tour 13: an edited sidecar (beta, activation, pool) no longer builds another network around the saved weights:
    the weights' header records the model they were saved as; a file without it (the committed zoo's) still loads.
    The exact-Jacobian refusal names the caller's own limit (max_dense_n), which spectral_norm now takes too."""
    import json

    from safetensors.torch import save_file

    net = models.build_model("mnist_cnn", width=0.25, activation="softplus")
    path = checkpoints.save_checkpoint(net, tmp_path / "a" / "model.safetensors")
    sidecar = path.with_name("model.json")
    original = sidecar.read_text()
    for key, value in (("beta", 1.0), ("activation", "relu"), ("pool", "avg")):
        meta = json.loads(original)
        meta["model"]["config"][key] = value
        sidecar.write_text(json.dumps(meta))
        _package_error(lambda: checkpoints.load_checkpoint(path), ValueError, f"{key}: {value!r} in the sidecar",
                       "was saved as", "Restore it")
    sidecar.write_text(original)
    loaded, _ = checkpoints.load_checkpoint(path)
    x = unit_images((2, 1, 28, 28)).float()
    assert torch.equal(loaded(x), net.eval()(x))
    # a file written before the header carried the model: the sha256 and the normalisation are all it checks
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"format": checkpoints.FORMAT})
    meta = json.loads(original)
    meta["weights"]["sha256"] = checkpoints.sha256_file(path)
    sidecar.write_text(json.dumps(meta))
    assert torch.equal(checkpoints.load_checkpoint(path)[0](x), net(x))
    meta["model"]["config"]["width"] = 0.5  # there the weights' shapes are what refuses another architecture
    sidecar.write_text(json.dumps(meta))
    _package_error(lambda: checkpoints.load_checkpoint(path), ValueError, "do not fit")

    m, small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.Softplus(),
                                   torch.nn.Linear(8, 3)), torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
    for call in (lambda: bounds.attribution_bound(m, small, 0.1, method="exact", max_dense_n=8),
                 lambda: bounds.spectral_norm(m, small, method="exact", max_dense_n=8)):
        _package_error(call, ValueError, "raise max_dense_n")
    dense = torch.linalg.svdvals(bounds.dense_jacobian(attributions.Saliency(m), small))[:, 0]
    torch.testing.assert_close(bounds.spectral_norm(m, small, method="exact", max_dense_n=16), dense)


def test_tour_fourteen_names_results_metrics_and_checkpoint_folders(tmp_path):
    """Tour 14: names given as lists are refused by name; dense_jacobian checks its inputs; spectral_norm takes box;
    results functions check their spec and a manifest's config against its hash; an overflowing distance is inf;
    bootstrap wants a scalar statistic; stored_dtype knows the zoo's names; a new folder is a checkpoint path; a
    copied zoo folder's edited sidecar is refused by its manifest's sha256."""
    import json
    import shutil

    from attrbound_lite import evaluation, results, zoo
    from attrbound_lite.book import budget

    m = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Softplus(), torch.nn.Linear(8, 3))
    x = torch.rand(3, 6, generator=torch.Generator().manual_seed(0))
    for call in (lambda: bounds.attribution_bound(m, x, 0.1, attribution=["saliency"]),
                 lambda: region.region_bound(m, x, 0.1, attribution={"name": "saliency"}),
                 lambda: attacks.IFIA(m, ["saliency"], 0.1, 0.01, 2, k=3),
                 lambda: attributions.get_explainer(["saliency"], m)):
        _package_error(call, ValueError, "unknown attribution")
    _package_error(lambda: models.build_model(["mnist_cnn"]), ValueError, "unknown model")
    _package_error(lambda: evaluation.protocol(["mnist"]), ValueError, "no evaluation protocol")
    saliency = attributions.Saliency(m)
    _package_error(lambda: bounds.dense_jacobian(saliency, x.long()), TypeError, "floating point")
    _package_error(lambda: bounds.dense_jacobian(saliency, x[:0]), ValueError, "no sample")
    wide = 3 * x
    torch.testing.assert_close(bounds.spectral_norm(m, wide, box=False),
                               bounds.attribution_bound(m, wide, 0.1, box=False).sigma_max)
    _package_error(lambda: bounds.spectral_norm(m, wide), ValueError, "[0, 1]")

    _package_error(lambda: results.load_results("ch7_ifia_budget"), TypeError, "ResultSpec")
    _package_error(lambda: results.check_verified(budget.SPEC, "report"), TypeError, "verify_results")
    copy_root = tmp_path / "results"
    shutil.copytree(results.results_root() / budget.SPEC.name, copy_root / budget.SPEC.name)
    manifest_path = copy_root / budget.SPEC.name / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["config"]["steps"] = [1]
    manifest_path.write_text(json.dumps(manifest))
    _package_error(lambda: results.load_results(budget.SPEC, copy_root), ValueError, "config_hash")

    assert metrics.euclidean(torch.full((1, 4), 3e38), torch.full((1, 4), -3e38)).item() == math.inf
    _package_error(lambda: stats.bootstrap(lambda v: v * 2, [1.0, 2.0, 3.0]), TypeError, "one number")
    _package_error(lambda: stats.bootstrap(lambda v: "mean", [1.0, 2.0, 3.0]), TypeError, "one number")
    assert zoo.stored_dtype("mnist-natural") == torch.float32
    _package_error(lambda: zoo.stored_dtype("float128"), ValueError, "unknown reference model")

    saved = checkpoints.save_checkpoint(models.MnistCNN(width=0.0625), tmp_path / "runs" / "new_run")
    assert saved == tmp_path / "runs" / "new_run" / "model.safetensors" and checkpoints.load_checkpoint(saved.parent)
    folder = tmp_path / "zoo_copy"
    shutil.copytree(zoo.model_folder(zoo.REFERENCE["mnist-natural"], zoo.zoo_root()), folder)
    checkpoints.load_checkpoint(folder)  # a committed file: no model in its header, its manifest checks the sidecar
    record = json.loads((folder / "model.json").read_text())
    record["model"]["config"]["pool"] = "avg" if record["model"]["config"].get("pool") == "max" else "max"
    (folder / "model.json").write_text(json.dumps(record))
    _package_error(lambda: checkpoints.load_checkpoint(folder), ValueError, "manifest.json records")


def test_tour_fifteen_foreign_explainers_unused_attack_options_and_flat_jacobians():
    """Tour 15: a bound refuses an explainer built on another model (as the attacks do); WorstCaseBound refuses attack
    options without attack=True; dense_jacobian names get_explainer's real argument order and refuses the all-zero
    Jacobian of a piecewise-linear model."""
    from attrbound_lite import interop

    def net(activation):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), activation, torch.nn.Linear(8, 3))

    m, other = net(torch.nn.Softplus()), net(torch.nn.Softplus())
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    for call in (lambda: bounds.attribution_bound(m, x, 0.1, attribution=attributions.Saliency(other)),
                 lambda: bounds.spectral_norm(m, x, attributions.Saliency(other)),
                 lambda: region.region_bound(m, x, 0.1, attribution=attributions.Saliency(other))):
        _package_error(call, ValueError, "another model object")
    torch.testing.assert_close(bounds.attribution_bound(m, x, 0.1, attribution=attributions.Saliency(m)).sigma_max,
                               bounds.attribution_bound(m, x, 0.1).sigma_max)
    for option in ({"attack_steps": 5}, {"attack_alpha": 0.01}, {"attack_restarts": 3}):
        _package_error(lambda option=option: interop.WorstCaseBound(eps=0.1, **option), ValueError, "attack=True")
    assert interop.WorstCaseBound(eps=0.1, attack=True, attack_steps=5).attack_steps == 5
    _package_error(lambda: bounds.dense_jacobian("saliency", x), TypeError, "get_explainer('saliency', model)")
    _package_error(lambda: bounds.dense_jacobian(attributions.Saliency(net(torch.nn.ReLU())), x), ValueError,
                   "exactly zero", "smooth_relu")


def test_tour_fifteen_messages_name_what_a_user_types(tmp_path):
    """Tour 15's confusing messages: get_explainer with its arguments swapped names the swap (no model repr); the
    data mirror's messages name --mirror beside mirror=; evaluate refuses an IFIA or evaluation k larger than the
    saliency map before it runs PGD."""
    from attrbound_lite import data, evaluation

    m = models.MnistCNN(width=0.0625, activation="softplus", beta=10.0, pool="avg").eval()
    message = _package_error(lambda: attributions.get_explainer(m, "saliency"), TypeError, "swap the arguments")
    assert "Conv2d" not in message
    not_a_folder = tmp_path / "mirror.txt"
    not_a_folder.write_text("")
    with pytest.raises(FileNotFoundError, match="--mirror"):  # a path problem: FileNotFoundError, as open() gives
        data.load_dataset("mnist", "test", root=tmp_path, mirror=not_a_folder)
    x, y = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(4)
    for name in ("ifia_k", "eval_k"):
        _package_error(lambda name=name: evaluation.evaluate(m, (x, y), "mnist", n_pgd=4, n_attribution=2,
                                                             **{name: 785}),
                       ValueError, f"{name} = 785 exceeds the 784 pixels", f"--{name.replace('_', '-')}")


def test_tour_sixteen_certificate_sidecar_tolerance_and_sampled_units(tmp_path):
    """Tour 16: the certificate refuses an explainer of another model; an edited sidecar 'metadata' is refused; the
    eigensolvers' tol is at most 0.01 (a loose one reported too small a bound as converged); a sampled score's bound
    must be of its radius, norm and attribution; integer images get the '/ 255' fix from the models themselves; a
    metrics mask on the meta device, Holm's p_values, captum_bound's method=, unwritable files and channels-last
    images are named."""
    import json

    from attrbound_lite import interop
    from attrbound_lite._io import write_json

    m = models.MnistCNN(width=0.0625, activation="softplus", beta=10.0, pool="avg").eval()
    other = models.MnistCNN(width=0.0625, activation="softplus", beta=10.0, pool="avg").eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    _package_error(lambda: certified.certified_bound(m.double(), x.double(), 0.01,
                                                     attribution=attributions.Saliency(other.double())),
                   ValueError, "another model object")
    m, other = m.float(), other.float()

    weights = checkpoints.save_checkpoint(m, tmp_path / "run", {"data": {"name": "mnist"}, "seed": np.int64(3)})
    assert checkpoints.load_checkpoint(weights)[1]["metadata"]["seed"] == 3  # numpy values hash as they load
    sidecar = weights.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    record["metadata"]["data"]["name"] = "fashion-mnist"
    sidecar.write_text(json.dumps(record))
    _package_error(lambda: checkpoints.load_checkpoint(weights), ValueError, "'metadata' section", "was edited")

    for call in (lambda: bounds.attribution_bound(m, x, 0.1, tol=2.0), lambda: bounds.spectral_norm(m, x, tol=0.5),
                 lambda: bounds.BoundOptions(tol=0.02)):
        _package_error(call, ValueError, "at most 0.01")
    assert bounds.attribution_bound(m, x, 0.1, tol=0.01).sigma_max.shape == (2,)

    y = m(x).argmax(1)
    scores = interop.captum_sensitivity_max(m, x, y, 0.1, "linf", n_perturb_samples=2)
    scores.bound_in_same_units(bounds.attribution_bound(m, x, 0.1, "linf"))
    _package_error(lambda: scores.bound_in_same_units(bounds.attribution_bound(m, x, 0.5, "linf")), ValueError,
                   "radius 0.5", "radius 0.1")
    _package_error(lambda: scores.bound_in_same_units(bounds.attribution_bound(m, x, 0.1, "l2")), ValueError,
                   "norm='linf'")
    _package_error(lambda: scores.bound_in_same_units(bounds.attribution_bound(m, x, 0.1, "linf", "input_x_gradient")),
                   ValueError, "the same attribution")
    per_sample = interop.captum_sensitivity_max(m, x, y, torch.tensor([0.1, 0.2]), "linf", n_perturb_samples=2)
    per_sample.bound_in_same_units(bounds.attribution_bound(m, x, torch.tensor([0.1, 0.2]), "linf"))
    _package_error(lambda: per_sample.bound_in_same_units(bounds.attribution_bound(m, x, 0.1, "linf")), ValueError,
                   "radius 0.1", "[0.1, 0.2]")

    _package_error(lambda: m((255 * x).to(torch.uint8)), TypeError, "/ 255")
    _package_error(lambda: metrics.euclidean(torch.rand(3, 4), torch.rand(3, 4),
                                             mask=torch.ones(3, dtype=torch.bool, device="meta")),
                   ValueError, "meta device")
    _package_error(lambda: stats.holm("0.1"), TypeError, "p_values")
    import captum.attr as captum_attr
    _package_error(lambda: interop.captum_bound(captum_attr.Saliency(m), x, y, 0.1, method="exact"), TypeError,
                   "solver=")
    _package_error(lambda: write_json("/proc/attrbound-test.json", {}), ValueError, "/proc/attrbound-test.json")
    _package_error(lambda: bounds.attribution_bound(m, x.permute(0, 2, 3, 1).contiguous(), 0.1), ValueError,
                   "channels last")


# ------------------------------------------------------------------------------------------------ tour seventeen
def _tour_seventeen_rows(unit, device, progress):
    """A toy result's unit: text keys that read_csv would take for NaN, a NaN and an infinity among the values."""
    import pandas as pd

    k = int(unit[1:])
    return pd.DataFrame({"i": [0, 1, 2], "tag": ["a", "NA", "null"], "v": [k + 0.1, math.nan, math.inf],
                         "w": [1.0, 2.0, 3.0]})


def _tour_seventeen_again(rows, device):
    full = _tour_seventeen_rows(rows["unit"].iloc[0], device, False)
    return full[full["i"].isin(rows["i"])]


def _tour_seventeen_spec(**changes):
    from attrbound_lite import results

    return results.ResultSpec(**{**dict(name="toy", title="toy", config={"a": 1}, keys=("i", "tag"),
                                        values=("v", "w"), tolerance=1e-9, units=("u1", "u2"),
                                        compute=_tour_seventeen_rows, recompute=_tour_seventeen_again), **changes})


def _tour_seventeen_zoo_copy(tmp_path) -> tuple[Path, Path, dict]:
    """A copy of the committed mnist-natural folder: (root, its manifest's path, the manifest)."""
    import json
    import shutil

    from attrbound_lite import zoo

    recipe = zoo.REFERENCE["mnist-natural"]
    root = tmp_path / "zoo"
    shutil.copytree(zoo.zoo_root() / recipe.key, root / recipe.key)
    path = root / recipe.key / "manifest.json"
    return root, path, json.loads(path.read_text())


def test_tour_seventeen_edited_zoo_manifest_is_refused(tmp_path, capsys):
    """S1: an edited evaluation or history of a zoo manifest is refused by load_reference, zoo_table, verify_zoo and
    `zoo list` / `zoo verify` (committed manifests by the digest zoo.py holds, new ones by their content_sha256)."""
    import json

    from attrbound_lite import cli, zoo

    root, path, manifest = _tour_seventeen_zoo_copy(tmp_path)
    assert zoo.read_manifest("mnist-natural", root=root) == manifest  # the committed copy loads as it is
    for edited in ({**manifest, "evaluation": {**manifest["evaluation"], "clean_accuracy": 0.2}},
                   {**manifest, "history": {**manifest["history"], "accuracy": [0.5] * len(manifest["history"]
                                                                                           ["accuracy"])}}):
        path.write_text(json.dumps(edited))
        for call in (lambda: zoo.load_reference("mnist-natural", root=root), lambda: zoo.zoo_table(root=root)):
            _package_error(call, ValueError, "was edited", "--only mnist-natural")
        report = zoo.verify_zoo(["mnist-natural"], root=root, full=False, progress=False)
        assert not report["ok"].any() and "was edited" in report["detail"].iloc[0]
        assert cli.main(["zoo", "list", "--root", str(root)]) == 2
        assert "was edited" in capsys.readouterr().err
        assert cli.main(["zoo", "verify", "--only", "mnist-natural", "--no-full", "--root", str(root)]) == 1
        capsys.readouterr()
    # a manifest written from now on carries its own digest
    sealed = {**manifest, "content_sha256": zoo._manifest_digest(manifest)}
    path.write_text(json.dumps(sealed))
    assert zoo.read_manifest("mnist-natural", root=root)["evaluation"] == manifest["evaluation"]
    path.write_text(json.dumps({**sealed, "evaluation": {**manifest["evaluation"], "clean_accuracy": 0.2}}))
    _package_error(lambda: zoo.read_manifest("mnist-natural", root=root), ValueError, "its content_sha256")


def test_tour_seventeen_resumed_results_build_checks_its_parts(tmp_path):
    """S2: a damaged part is refused with its file and the fix, never merged into rows.csv."""
    from attrbound_lite import results

    spec = _tour_seventeen_spec()
    results.build_results(spec, root=tmp_path, progress=False)
    parts = tmp_path / "toy" / "parts" / spec.config_hash
    rows = (tmp_path / "toy" / "rows.csv").read_bytes()
    for damage in ("garbage\n1\n", "", (parts / "u2.csv").read_text()):  # not a table, empty, another unit's rows
        (parts / "u1.csv").write_text(damage)
        _package_error(lambda: results.build_results(spec, root=tmp_path, progress=False), ValueError,
                       str(parts / "u1.csv"), "delete", "--force")
    assert (tmp_path / "toy" / "rows.csv").read_bytes() == rows
    (parts / "u1.json").write_text("{")
    _package_error(lambda: results.build_results(spec, root=tmp_path, progress=False), ValueError,
                   str(parts / "u1.json"), "--force")
    results.build_results(spec, root=tmp_path, progress=False, force=True)
    assert (tmp_path / "toy" / "rows.csv").read_bytes() == rows


def test_tour_seventeen_results_part_without_record_is_computed_again(tmp_path):
    """R2: a part whose record (json) is missing is computed again, not a raw FileNotFoundError."""
    from attrbound_lite import results

    computed = []

    def counting(unit, device, progress):
        computed.append(unit)
        return _tour_seventeen_rows(unit, device, progress)

    spec = _tour_seventeen_spec(compute=counting)
    results.build_results(spec, root=tmp_path, progress=False)
    rows = (tmp_path / "toy" / "rows.csv").read_bytes()
    (tmp_path / "toy" / "parts" / spec.config_hash / "u1.json").unlink()
    results.build_results(spec, root=tmp_path, progress=False)
    assert computed == ["u1", "u2", "u1"] and (tmp_path / "toy" / "rows.csv").read_bytes() == rows


def test_tour_seventeen_results_dtypes_are_checked(tmp_path):
    """S3: an edited manifest dtypes (which decides which columns read as text) is refused: by its hash, and where
    a manifest has none (results built before it), by the rows (a column recorded as numbers that holds text)."""
    import json

    from attrbound_lite import results

    spec = _tour_seventeen_spec()
    results.build_results(spec, root=tmp_path, progress=False)
    path = tmp_path / "toy" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert list(results.load_results(spec, root=tmp_path)["tag"])[:3] == ["a", "NA", "null"]
    edited = {**manifest, "dtypes": {**manifest["dtypes"], "tag": "float64"}}
    path.write_text(json.dumps(edited))
    _package_error(lambda: results.load_results(spec, root=tmp_path), ValueError, "dtypes_sha256", "edited")
    older = {k: v for k, v in edited.items() if k != "dtypes_sha256"}
    path.write_text(json.dumps(older))
    _package_error(lambda: results.load_results(spec, root=tmp_path), ValueError, "'tag' is recorded as float64",
                   "holds text")
    path.write_text(json.dumps({k: v for k, v in manifest.items() if k != "dtypes_sha256"}))  # unedited, no hash
    assert list(results.load_results(spec, root=tmp_path)["tag"])[:3] == ["a", "NA", "null"]


def test_tour_seventeen_sampled_scores_check_the_targets():
    """S4: a bound of other classes than the sampled scores' is refused; the same classes are compared."""
    from attrbound_lite import interop

    m = models.MnistCNN(width=0.0625, activation="softplus", beta=10.0, pool="avg").eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = m(x).argmax(1)
    scores = interop.captum_sensitivity_max(m, x, y, 0.1, "l2", n_perturb_samples=2)
    assert scores.target.tolist() == y.tolist()
    scores.bound_in_same_units(bounds.attribution_bound(m, x, 0.1, "l2"))  # target=None: the predicted classes
    scores.bound_in_same_units(bounds.attribution_bound(m, x, 0.1, "l2", target=y))
    _package_error(lambda: scores.bound_in_same_units(bounds.attribution_bound(m, x, 0.1, "l2", target=(y + 1) % 10)),
                   ValueError, "classes", "target=")


def test_tour_seventeen_verdict_without_a_test_is_undecided():
    """S5: units that all agree (zero width, p-value NaN) support no direction."""
    for interval in (stats.across_seeds([0.1, 0.1, 0.1]), stats.bootstrap_mean([0.1] * 5)):
        assert interval.no_test and math.isnan(interval.p_value) and interval.sign == 0
        assert interval.low == interval.high == interval.estimate  # shown as it is: "0.100 (0.100 to 0.100)"
        assert stats.verdict(interval).startswith("not distinguishable with")
    assert stats.verdict(stats.across_seeds([0.1, 0.12, 0.11])) == "larger"  # a spread: a test, a direction
    assert stats.verdict(stats.wilson(10, 10)) == "larger"  # a rate: no p-value, a proper interval


def test_tour_seventeen_interval_holds_its_estimate():
    """S6: an estimate outside its own interval is refused; the package's intervals hold theirs."""
    _package_error(lambda: stats.Interval(5.0, 0.0, 1.0, 3), ValueError, "low <= estimate <= high", "5.0")
    _package_error(lambda: stats.Interval(-1.0, 0.0, 1.0, 3), ValueError, "low <= estimate <= high")
    assert str(stats.Interval(math.nan, math.nan, math.nan, 0)) == "n/a"
    assert stats.Interval(0.5, math.nan, math.nan, 1).n == 1
    values = np.random.default_rng(0).normal(0.02, 1.0, 30)
    for interval in (stats.bootstrap(lambda v: np.mean(v) ** 2, values), stats.wilson(7, 7),
                     stats.paired_rate_difference([True] * 6, [False] * 6)):
        assert interval.low <= interval.estimate <= interval.high, interval


def test_tour_seventeen_sig_formats_any_real_number():
    """R1: a Fraction is a real number: formatted, not a numpy TypeError; an int too large for a float is named."""
    from fractions import Fraction

    assert stats.sig(Fraction(1, 3)) == "0.333" and stats.sig(Fraction(3, 2), 2) == "1.5"
    _package_error(lambda: stats.sig(10 ** 400), ValueError, "sig formats numbers")


def test_tour_seventeen_result_values_must_be_numbers(tmp_path):
    """R3: a value column of text is refused at build time (verify_results compares values as numbers)."""
    import pandas as pd

    from attrbound_lite import results

    def text(unit, device, progress):
        return pd.DataFrame({"i": [0, 1], "tag": ["x", "y"], "v": ["low", "high"], "w": [1.0, 2.0]})

    spec = _tour_seventeen_spec(name="text", compute=text, recompute=lambda rows, device: text(None, device, False))
    _package_error(lambda: results.build_results(spec, root=tmp_path, progress=False), ValueError,
                   "value column 'v'", "'low'", "not numbers")


def test_tour_seventeen_worst_case_table_names_its_cases():
    """R4: cases given as a list (or eps as one number) are named, not an AttributeError."""
    from attrbound_lite import toy

    m, x = _mnist_batch()
    _package_error(lambda: toy.worst_case_table([1, 2], [0.1]), TypeError, "cases must be a dict",
                   "{name: (model, x)}")
    _package_error(lambda: toy.worst_case_table({"toy": m}, [0.1]), TypeError, "(model, x) pair")
    _package_error(lambda: toy.worst_case_table({"toy": (m, x[:1])}, 0.1), TypeError, "list of radii", "[0.1]")


def test_tour_seventeen_sha256_file_names_a_missing_file(tmp_path):
    """R5: a missing file is named with what to check, as load_checkpoint does."""
    missing = tmp_path / "nope" / "model.safetensors"
    with pytest.raises(FileNotFoundError, match="does not exist; check the path") as excinfo:
        checkpoints.sha256_file(missing)
    assert str(missing) in str(excinfo.value)
    filename, _, _ = innermost_frame(excinfo.tb)
    assert Path(filename).resolve().is_relative_to(PACKAGE)


def test_tour_seventeen_verify_results_equal_infinities_agree(tmp_path):
    """W1: an infinity recomputed as the same infinity agrees (inf - inf is NaN); another value does not."""
    from attrbound_lite import results

    spec = _tour_seventeen_spec()
    results.build_results(spec, root=tmp_path, progress=False)
    report = results.verify_results(spec, n=6, root=tmp_path)
    assert np.isinf(report["committed"]).any() and report["ok"].all(), report.to_string()
    results.check_verified(spec, report)

    def minus_infinity(rows, device):
        again = _tour_seventeen_again(rows, device)
        return again.assign(v=again["v"].replace(math.inf, -math.inf))

    report = results.verify_results(_tour_seventeen_spec(recompute=minus_infinity), n=6, root=tmp_path)
    assert not report.loc[np.isinf(report["committed"]), "ok"].any()


def test_tour_seventeen_verify_results_compares_as_stored(tmp_path):
    """W2: float32 values stored with 9 digits verify at tolerance 0 when recomputed exactly."""
    import pandas as pd

    from attrbound_lite import results

    def single(unit, device, progress):
        return pd.DataFrame({"i": [0, 1], "tag": ["x", "y"], "v": np.array([0.1, 1 / 3], dtype=np.float32),
                             "w": np.array([1, 2], dtype=np.float32)})

    spec = _tour_seventeen_spec(name="single", compute=single, digits=9, tolerance=0.0,
                                recompute=lambda rows, device: single(None, device, False))
    results.build_results(spec, root=tmp_path, progress=False)
    report = results.verify_results(spec, n=4, root=tmp_path)
    assert report["ok"].all(), report.to_string()

    def moved(rows, device):
        again = single(None, device, False)
        return again.assign(v=again["v"] + np.float32(1e-6))

    assert not results.verify_results(_tour_seventeen_spec(name="single", compute=single, digits=9, tolerance=0.0,
                                                           recompute=moved), n=4, root=tmp_path)["ok"].all()


def test_tour_seventeen_evaluate_refuses_ig_options_with_saliency(tmp_path, capsys):
    """C1: --ig-steps / --attack-ig-steps do nothing with --attribution saliency: refused by name."""
    from attrbound_lite import cli

    missing = str(tmp_path / "nope")
    for options, named in ((["--ig-steps", "2", "--attack-ig-steps", "2"], "--ig-steps/--attack-ig-steps are"),
                           (["--attack-ig-steps", "2"], "--attack-ig-steps is")):
        assert cli.main(["evaluate", missing, "--attribution", "saliency", *options]) == 2
        err = capsys.readouterr().err
        assert named in err and "--attribution saliency" in err and len(err.strip().splitlines()) == 1, err
    # with IG they are read: the command goes on (to the missing checkpoint)
    assert cli.main(["evaluate", missing, "--attribution", "integrated_gradients", "--ig-steps", "2"]) == 2
    assert "no checkpoint weights" in capsys.readouterr().err
    assert cli.main(["evaluate", missing, "--attribution", "saliency"]) == 2  # the defaults are not typed
    assert "no checkpoint weights" in capsys.readouterr().err


def test_tour_seventeen_results_list_fails_on_a_damaged_manifest(tmp_path, capsys):
    """C2: `results list` exits non-zero with the damaged manifest named on stderr, as `zoo list` does; a result not
    built yet is only listed."""
    import shutil

    from attrbound_lite import cli, results
    from attrbound_lite.book import budget

    assert cli.main(["results", "list", "--root", str(tmp_path)]) == 0  # nothing built: listed, not an error
    capsys.readouterr()
    shutil.copytree(results.RESULTS_ROOT / budget.SPEC.name, tmp_path / budget.SPEC.name)
    assert cli.main(["results", "list", "--root", str(tmp_path)]) == 0
    capsys.readouterr()
    (tmp_path / budget.SPEC.name / "manifest.json").write_text("{")
    assert cli.main(["results", "list", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attrbound results list: error: ") and "not a readable manifest" \
        in err[0], err


def test_tour_seventeen_book_names_an_unwritable_out(tmp_path):
    """C3: an --out the book cannot create is named with the fix, not as a raw OSError."""
    from attrbound_lite.book.runner import BookError, build_book

    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")  # a book without notebooks
    (tmp_path / "_config.yml").write_text("title: a book\n")
    (tmp_path / "notebooks").mkdir()
    with pytest.raises(BookError, match=r"--out .*/proc/attrbound-book.*choose a folder you can write to"):
        build_book(out="/proc/attrbound-book", root=tmp_path, render=False)


def test_tour_seventeen_verify_zoo_refuses_replay_names_it_does_not_verify():
    """C4: a replay name outside only would be ignored: refused by name."""
    from attrbound_lite import zoo

    _package_error(lambda: zoo.verify_zoo(["mnist-natural"], replay=["mnist-advaat"], full=False, progress=False),
                   ValueError, "['mnist-advaat']", "not among the models verified", "add them to only")


def test_tour_seventeen_attribution_class_names_the_instance():
    """C5: an attribution class (not an instance) is named with both fixes."""
    m, _ = _mnist_batch()
    for call in (lambda: attacks.AttributionPGD(m, attributions.Saliency, 0.1, 0.01, 2),
                 lambda: attributions.get_explainer(attributions.IntegratedGradients, m)):
        _package_error(call, TypeError, "pass an instance")
    _package_error(lambda: attacks.AttributionPGD(m, attributions.Saliency, 0.1, 0.01, 2), TypeError,
                   "Saliency(model)", "'saliency'")


# Tour 18 (held-out, 1,094 cases): the defects it found, each pinned.


def _tiny_mnist_model():
    torch.manual_seed(0)
    return models.MnistCNN(activation="softplus", beta=10.0, width=0.125, pool="avg").eval()


def test_tour_eighteen_paired_rates_that_all_agree_give_no_verdict():
    """S1: trials all discordant the same way (or one cluster) left every resample alike: no interval, no verdict."""
    for interval in (stats.paired_rate_difference([1, 1, 1], [0, 0, 0]),
                     stats.paired_rate_difference([1, 1, 0, 0], [0, 0, 0, 0], groups=["img0"] * 4)):
        assert interval.no_test and interval.low == interval.high == interval.estimate
        assert stats.verdict(interval).startswith("not distinguishable")
        assert 0 < interval.p_value <= 1  # McNemar's p is kept for holm
    # trials that vary still give an interval and a verdict where it excludes 0
    spread = stats.paired_rate_difference([1] * 40 + [0] * 10, [0] * 40 + [0] * 5 + [1] * 5)
    assert not spread.no_test and spread.low < spread.high and stats.verdict(spread) == "larger"


def test_tour_eighteen_warm_ups_longer_than_the_run_are_refused():
    """S2: a radius or learning-rate warm-up longer than the run never reaches eps (or lr), yet recorded them."""
    from attrbound_lite.config import ConfigError
    from attrbound_lite.training import TrainConfig, train

    with pytest.raises(ConfigError, match=r"warmup_epochs: a warm-up of 5 epochs is longer than the run \(1 epoch\)"):
        TrainConfig(method="pgd_at", epochs=1, eps=0.3, warmup_epochs=5)
    with pytest.raises(ConfigError, match="lr_warmup_epochs: .*full learning rate"):
        TrainConfig(method="natural", epochs=2, lr_warmup_epochs=3)
    TrainConfig(method="pgd_at", epochs=2, eps=0.3, warmup_epochs=2, lr_warmup_epochs=0.5)  # as long as the run: ok
    data = torch.utils.data.TensorDataset(torch.rand(4, 1, 28, 28), torch.arange(4))
    with pytest.raises(ConfigError, match="warmup_epochs"):
        train(_tiny_mnist_model(), data, "pgd_at", 1, eps=0.3, steps=1, warmup_epochs=5, batch_size=4, progress=False)


def test_tour_eighteen_evaluate_refuses_ig_options_with_saliency():
    """S3: the Python API ignored ig_steps / attack_ig_steps with saliency maps; now refused as the CLI does."""
    from attrbound_lite.evaluation import evaluate

    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    for options, named in (({"ig_steps": 2}, "ig_steps is ignored"),
                           ({"ig_steps": 2, "attack_ig_steps": 2}, "ig_steps and attack_ig_steps are ignored")):
        with pytest.raises(ValueError, match=named):
            evaluate(_tiny_mnist_model(), (x, y), "mnist", attribution="saliency", n_pgd=0, n_attribution=0,
                     progress=False, **options)
    out = evaluate(_tiny_mnist_model(), (x, y), "mnist", attribution="saliency", n_pgd=0, n_attribution=0,
                   progress=False)
    assert out["n_clean"] == 2


@pytest.mark.parametrize("n_resamples", [1, 2, 99])
def test_tour_eighteen_too_few_resamples_are_refused(n_resamples):
    """S4: one resample has no spread and was reported as units that all agree."""
    for call in (lambda: stats.bootstrap_mean([0.1, 0.9, 0.4, 0.6], n_resamples=n_resamples),
                 lambda: stats.paired_rate_difference([1, 0, 1], [0, 0, 1], n_resamples=n_resamples)):
        with pytest.raises(ValueError, match="n_resamples .* at least|n_resamples .*>= 100"):
            call()
    assert not stats.bootstrap_mean([0.1, 0.9, 0.4, 0.6], n_resamples=100).no_test


def test_tour_eighteen_interval_fields_are_checked():
    """S5, R1: p-values outside [0, 1] and non-numeric fields are refused by name."""
    for p in (1.5, -0.1):
        with pytest.raises(ValueError, match="p_value is a probability"):
            stats.Interval(0.1, 0.05, 0.2, 3, p_value=p)
    assert math.isnan(stats.Interval(0.1, 0.05, 0.2, 3).p_value)
    for args, field in ((("0.1", 0, 0.2, 3), "estimate"), ((0.1, None, 0.2, 3), "low"), ((0.1, 0, [0.2], 3), "high")):
        with pytest.raises(TypeError, match=f"Interval's {field} must be one real number"):
            stats.Interval(*args)
    with pytest.raises(TypeError, match="contains' value must be one real number"):
        stats.Interval(0.1, 0, 0.2, 3).contains("0.1")
    assert stats.Interval(np.float32(0.1), 0, 0.2, 3).contains(np.float64(0.15))


def test_tour_eighteen_verify_zoo_refuses_an_unknown_device():
    """S6: verify_zoo accepted device="gpu" (every other entry point refuses it)."""
    from attrbound_lite import zoo

    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        zoo.verify_zoo(["mnist-natural"], device="gpu", full=False, replay=[], progress=False)


def test_tour_eighteen_repeated_ig_steps_grid_is_refused():
    """S7: a repeated number of IG steps gave identical rows."""
    from attrbound_lite.evaluation import ifia_by_ig_steps

    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"ig_steps_grid repeats \[2\]"):
        ifia_by_ig_steps(_tiny_mnist_model(), (x, y), "mnist", [2, 2], n_attribution=1, progress=False)


def test_tour_eighteen_worst_case_table_needs_a_radius():
    """R2: an empty radius list reached pandas' KeyError."""
    from attrbound_lite import toy

    with pytest.raises(ValueError, match="empty eps_list"):
        toy.worst_case_table({"mlp": (toy.toy_mlp(), torch.tensor([[0.3, -0.2]], dtype=torch.float64))}, [])


def test_tour_eighteen_protocols_read_the_data_set_spellings_load_dataset_reads():
    """W1: "MNIST" and "fashion_mnist" were refused by the evaluation protocols, accepted by load_dataset."""
    from attrbound_lite.evaluation import evaluate, protocol

    assert protocol("MNIST") == protocol("mnist") and protocol("fashion_mnist") == protocol("fashion-mnist")
    out = evaluate(_tiny_mnist_model(), (torch.rand(2, 1, 28, 28), torch.tensor([0, 1])), "MNIST", n_pgd=2,
                   n_attribution=0, progress=False)
    assert out["n_clean"] == 2
