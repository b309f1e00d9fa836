"""attrbound_lite.interop against the real Captum and Quantus (the `compare` extra).

Without the extra these tests are skipped, unless ``ATTRBOUND_REQUIRE_COMPARE=1`` or ``ATTRBOUND_REQUIRE_BOOK=1``
(set by ``.ci/run``, whose ``ensure-venv.sh --book`` installs the compare extra too) makes that an error.

The oracle of the sampled metrics is ``QuadraticClassifier``: its saliency is affine in the input
(``g(x + d) = g(x) + Q_c d``), so the first-order bound is exact and no sample can exceed it.
"""

from __future__ import annotations

import ast
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

if os.environ.get("ATTRBOUND_REQUIRE_COMPARE") == "1" or os.environ.get("ATTRBOUND_REQUIRE_BOOK") == "1":
    import captum.attr as ca
    import quantus
else:
    ca = pytest.importorskip("captum.attr", reason="the compare extra is not installed")
    quantus = pytest.importorskip("quantus", reason="the compare extra is not installed")

from attrbound_lite import interop  # noqa: E402
from attrbound_lite.attributions import get_explainer  # noqa: E402
from attrbound_lite.bounds import attribution_bound  # noqa: E402
from attrbound_lite.models import MnistCNN, QuadraticClassifier  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients:UserWarning")

EPS = 0.1
PACKAGE = Path(__file__).resolve().parents[1] / "attrbound_lite"


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    model = MnistCNN(activation="softplus", beta=10.0, width=0.25, pool="avg").double().eval()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x, model(x).argmax(1)


def quadratic(n: int = 6, classes: int = 3, dtype=torch.float64, batch: int = 4):
    g = torch.Generator().manual_seed(3)
    m = torch.randn(classes, n, n, generator=g, dtype=torch.float64)
    model = QuadraticClassifier(m + m.transpose(1, 2), torch.randn(classes, n, generator=g, dtype=torch.float64))
    model = model.to(dtype).eval()
    x = torch.rand(batch, n, generator=g, dtype=torch.float64).to(dtype)
    return model, x, model(x).argmax(1)


# --- captum_bound: the mapping is right -------------------------------------------------------------------------

CASES = [
    ("saliency", lambda m: ca.Saliency(m), {"abs": False}, {}, {}),
    ("input_x_gradient", lambda m: ca.InputXGradient(m), {}, {}, {}),
    ("integrated_gradients", lambda m: ca.IntegratedGradients(m), {"n_steps": 5, "method": "riemann_right"},
     {"n_steps": 5}, {}),
    ("integrated_gradients", lambda m: ca.IntegratedGradients(m),
     {"n_steps": 3, "method": "riemann_right", "baselines": 0.25}, {"n_steps": 3, "baseline": 0.25}, {}),
]


@pytest.mark.parametrize("name, build, captum_kwargs, options, _", CASES,
                         ids=["saliency", "input_x_gradient", "ig", "ig_baseline"])
def test_captum_attribution_equals_the_package_and_the_bound_is_the_packages(cnn, name, build, captum_kwargs,
                                                                           options, _):
    model, x, y = cnn
    explainer = build(model)
    # the oracle that the mapping is right: Captum's own map is the package's map
    theirs = explainer.attribute(x, target=y, **captum_kwargs)
    ours = get_explainer(name, model, **options).attribute(x, target=y)
    # Captum's IG takes its alphas and step sizes in float32 (torch.linspace, .float()) even for a float64 model
    tol = 1e-6 if name == "integrated_gradients" else 1e-12
    torch.testing.assert_close(theirs, ours, rtol=tol, atol=tol * ours.abs().max().item())
    got = interop.captum_bound(explainer, x, y, EPS, "l2", seed=3, **captum_kwargs)
    want = attribution_bound(model, x, EPS, "l2", attribution=name, target=y, seed=3, **options)
    assert got.attribution == name
    for field in ("euclidean", "sigma_max", "attribution_norm", "cosine", "target"):
        assert torch.equal(getattr(got, field), getattr(want, field)), field


def test_captum_bound_list_target_and_solver(cnn):
    model, x, y = cnn
    got = interop.captum_bound(ca.InputXGradient(model), x, y.tolist(), EPS, "l2", solver="power", seed=1)
    want = attribution_bound(model, x, EPS, "l2", attribution="input_x_gradient", target=y, method="power", seed=1)
    assert got.method == "power" and torch.equal(got.euclidean, want.euclidean)


def test_abs_saliency_gets_the_signed_bound_which_holds_for_the_absolute_map():
    model, x, y = quadratic()
    signed = attribution_bound(model, x, EPS, "linf", target=y, method="exact")
    got = interop.captum_bound(ca.Saliency(model), x, y, EPS, "linf", solver="exact")  # abs=True, Captum's default
    assert got.attribution == "abs_saliency"
    assert torch.equal(got.euclidean, signed.euclidean) and torch.isnan(got.linf_lower).all()
    # | |g(x + d)| - |g(x)| | <= |g(x + d) - g(x)| elementwise: corners of the box, the l-inf extreme points
    explainer = ca.Saliency(model)
    gen = torch.Generator().manual_seed(0)
    base = explainer.attribute(x, target=y)  # abs=True
    for _ in range(20):
        d = EPS * (2 * torch.randint(0, 2, x.shape, generator=gen) - 1).to(x.dtype)
        moved = explainer.attribute(x + d, target=y)
        assert ((moved - base).norm(dim=1) <= got.euclidean * (1 + 1e-9)).all()


# --- captum_bound: refusals -------------------------------------------------------------------------------------


def test_captum_bound_refuses_what_the_package_cannot_express(cnn):
    model, x, y = cnn
    ig = ca.IntegratedGradients(model)
    with pytest.raises(ValueError, match=r"'gausslegendre' \(Captum's default\).*method='riemann_right'"):
        interop.captum_bound(ig, x, y, EPS)
    with pytest.raises(ValueError, match=r"'riemann_trapezoid' cannot be expressed.*method='riemann_right'"):
        interop.captum_bound(ig, x, y, EPS, method="riemann_trapezoid")
    with pytest.raises(ValueError, match=r"multiply_by_inputs=False.*cannot be expressed"):
        interop.captum_bound(ca.IntegratedGradients(model, multiply_by_inputs=False), x, y, EPS,
                             method="riemann_right")
    with pytest.raises(TypeError, match=r"forward_func must be a torch.nn.Module.*not on model.forward"):
        interop.captum_bound(ca.Saliency(lambda t: model(t)), x, y, EPS, abs=False)
    with pytest.raises(TypeError, match=r"supports captum.attr.Saliency.*got captum.*GradientShap"):
        interop.captum_bound(ca.GradientShap(model), x, y, EPS)
    with pytest.raises(TypeError, match=r"\['n_steps'\] are keywords of IntegratedGradients.attribute"):
        interop.captum_bound(ca.Saliency(model), x, y, EPS, n_steps=5)
    with pytest.raises(TypeError, match="abs is a keyword of Saliency.attribute"):
        interop.captum_bound(ca.InputXGradient(model), x, y, EPS, abs=False)
    with pytest.raises(ValueError, match="additional_forward_args is not supported"):
        interop.captum_bound(ca.InputXGradient(model), x, y, EPS, additional_forward_args=(1,))
    with pytest.raises(TypeError, match="one input tensor"):
        interop.captum_bound(ca.InputXGradient(model), (x,), y, EPS)


def test_missing_extra_names_the_install_command(monkeypatch, cnn):
    model, x, y = cnn
    monkeypatch.setitem(sys.modules, "captum.attr", None)  # what an uninstalled package looks like to import
    with pytest.raises(ImportError, match=r'pip install "attrbound-lite\[compare\]"'):
        interop.captum_bound(object(), x, y, EPS)


def test_captum_and_quantus_are_imported_lazily():
    tree = ast.parse((PACKAGE / "interop.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top for a in n.names} | {n.module for n in top if isinstance(n, ast.ImportFrom)}
    assert not {m for m in names if m and m.split(".")[0] in ("captum", "quantus")}
    init = (PACKAGE / "__init__.py").read_text()
    assert "interop" not in init


# --- WorstCaseBound inside quantus.evaluate ---------------------------------------------------------------------


def test_worst_case_bound_inside_quantus_evaluate_equals_the_packages_bound():
    model, x, y = quadratic(dtype=torch.float32)  # quantus.explain feeds Captum float32 tensors
    metric = interop.WorstCaseBound(EPS, "linf", attribution=None, method="exact")
    absolute = interop.WorstCaseBound(EPS, "linf", attribution=None, relative=False, method="exact")
    sampled = quantus.MaxSensitivity(lower_bound=EPS, nr_samples=50, disable_warnings=True)
    np.random.seed(0)  # noqa: NPY002  # Quantus's noise
    results = quantus.evaluate(metrics={"bound": metric, "absolute": absolute, "max_sensitivity": sampled},
                               xai_methods={"Gradient": {"xai_lib": "captum", "method": "Gradient"}},  # signed
                               model=model, x_batch=x.numpy(), y_batch=y.numpy())
    want = attribution_bound(model, x, EPS, "linf", target=y, method="exact", seed=0)
    np.testing.assert_array_equal(results["Gradient"]["bound"], (want.euclidean / want.attribution_norm).numpy())
    np.testing.assert_array_equal(results["Gradient"]["absolute"], want.euclidean.numpy())
    assert len(metric.bound_results) == 1 and metric.all_evaluation_scores == results["Gradient"]["bound"]
    # Quantus's own sampled value, on the exact oracle, stays below the bound (float32 rounding aside)
    assert (np.asarray(results["Gradient"]["max_sensitivity"]) <= np.asarray(results["Gradient"]["bound"])
            * (1 + 1e-4)).all()


def test_worst_case_bound_with_the_package_explain_and_the_attack():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", attribution=None, attack=True, attack_steps=10, method="exact")
    results = quantus.evaluate(metrics={"attack": metric}, xai_methods={"input_x_gradient": interop.explain},
                               explain_func_kwargs={}, model=model, x_batch=x.numpy(), y_batch=y.numpy())
    scores = np.asarray(results["input_x_gradient"]["attack"])
    bound = metric.bound_results[0]
    assert bound.attribution == "input_x_gradient" and scores.shape == (4,)
    attack = metric.attack_results[0]
    np.testing.assert_allclose(scores, (attack.deviation.euclidean / bound.attribution_norm).numpy())
    assert attack.label_kept.all() and (scores > 0).all()


def test_worst_case_bound_attack_stays_below_the_exact_bound():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", "saliency", relative=False, attack=True, attack_steps=15,
                                    attack_restarts=2, method="exact")
    scores = np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), batch_size=3))
    bound = torch.cat([r.euclidean for r in metric.bound_results]).numpy()
    assert len(metric.bound_results) == 2 and len(metric.attack_results) == 2
    assert (scores <= bound * (1 + 1e-9)).all() and (scores >= 0.5 * bound).all()


def test_worst_case_bound_refuses_what_it_cannot_infer():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS)
    with pytest.raises(ValueError, match="no attribution to bound: pass attribution="):
        metric(model=model, x_batch=x.numpy(), y_batch=y.numpy())
    with pytest.raises(ValueError, match=r"'IntegratedGradients'.*riemann_trapezoid.*attribution='integrated_grad"):
        metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(),
               explain_func_kwargs={"method": "IntegratedGradients"})
    with pytest.raises(ValueError, match="softmax=True is not supported"):
        interop.WorstCaseBound(EPS)(model=model, x_batch=x.numpy(), y_batch=y.numpy(), softmax=True)
    with pytest.raises(ValueError, match="unknown attribution"):
        interop.WorstCaseBound(EPS, attribution="lime")


# --- the sampled metrics ----------------------------------------------------------------------------------------


def test_sampled_metrics_give_one_finite_score_per_sample(cnn):
    model, x, y = cnn
    n = x[0].numel()
    captum = interop.captum_sensitivity_max(model, x, y, EPS, "l2", n_perturb_samples=3)
    assert captum.noise["perturb_radius"] == pytest.approx(EPS / math.sqrt(n))
    results = [captum] + [interop.quantus_sensitivity(model, x.numpy(), y.numpy(), EPS, "linf", kind=kind,
                                                      nr_samples=3) for kind in interop.SENSITIVITY_KINDS]
    bound = attribution_bound(model, x, EPS, "l2", target=y)
    for result in results:
        assert result.scores.shape == (2,) and np.isfinite(result.scores).all() and (result.scores > 0).all()
    assert results[1].noise["lower_bound"] == EPS and results[3].noise["perturb_std"] == pytest.approx(
        EPS / math.sqrt(3))
    np.testing.assert_allclose(captum.bound_in_same_units(bound), (bound.euclidean / bound.attribution_norm).numpy())
    assert results[3].comparable is None  # LocalLipschitzEstimate normalises by max|A| by default
    with pytest.raises(ValueError, match="no comparable bound"):
        results[3].bound_in_same_units(bound)
    ig = interop.captum_sensitivity_max(model, x, None, EPS, "linf", "integrated_gradients", n_perturb_samples=2,
                                        n_steps=2)
    assert np.isfinite(ig.scores).all()


def test_sampled_metrics_are_reproducible_and_leave_the_global_generators_alone():
    model, x, y = quadratic()
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002
    before = torch.rand(1), np.random.rand()  # noqa: NPY002
    torch.manual_seed(5)
    np.random.seed(5)  # noqa: NPY002
    first = interop.quantus_sensitivity(model, x, y, EPS, "l2", nr_samples=5, seed=7)
    second = interop.captum_sensitivity_max(model, x, y, EPS, "l2", seed=7)
    assert (torch.rand(1), np.random.rand()) == before  # noqa: NPY002
    np.testing.assert_array_equal(first.scores, interop.quantus_sensitivity(model, x, y, EPS, "l2", nr_samples=5,
                                                                            seed=7).scores)
    np.testing.assert_array_equal(second.scores, interop.captum_sensitivity_max(model, x, y, EPS, "l2", seed=7).scores)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_sampled_metrics_never_exceed_the_exact_bound_of_the_quadratic_oracle(norm):
    model, x, y = quadratic()
    bound = attribution_bound(model, x, EPS, norm, target=y, method="exact")
    sampled = [interop.captum_sensitivity_max(model, x, y, EPS, norm, n_perturb_samples=50),
               interop.quantus_sensitivity(model, x, y, EPS, norm, kind="max", nr_samples=100),
               interop.quantus_sensitivity(model, x, y, EPS, norm, kind="avg", nr_samples=100),
               interop.quantus_sensitivity(model, x, y, EPS, norm, kind="lipschitz", nr_samples=100, normalise=False)]
    assert sampled[3].comparable == "sigma_max"
    for result in sampled:
        limit = result.bound_in_same_units(bound)
        assert (result.scores <= limit * (1 + 1e-5)).all(), (result.metric, result.scores, limit)
        assert (result.scores > 0.05 * limit).all(), (result.metric, result.scores, limit)  # not vacuous
    assert (sampled[2].scores <= sampled[1].scores).all()  # the mean below the max


# --------------------------------------------------------------------------- the input contract (issue 20)
# The package's own errors at interop's edges, never Captum's, Quantus's or torch's, for an input the package can
# check; and per-sample radii.


@pytest.fixture
def cnn32():
    """A float32 MNIST CNN (it declares its input_shape) and two images."""
    torch.manual_seed(0)
    model = MnistCNN(activation="softplus", beta=10.0, width=0.25, pool="avg").eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    return model, x, model(x).argmax(1)


class _NotAModule:
    """A callable that is no Module; calling ``eval`` on it fails the test (it must be refused before)."""

    def __call__(self, x):
        return x.flatten(1)[:, :3]

    def eval(self):
        raise AssertionError("eval() was called on a model that is not a Module")

    def parameters(self):
        raise AssertionError("parameters() was called on a model that is not a Module")


def _adapters(model, x, y, eps=EPS):
    """Each adapter's call on (model, x, y, eps), as thunks."""
    return {
        "captum_bound": lambda: interop.captum_bound(ca.Saliency(model), x, y, eps, abs=False),
        "worst_case_bound": lambda: interop.WorstCaseBound(eps, "l2", "saliency")(model=model, x_batch=x, y_batch=y),
        "captum_sensitivity_max": lambda: interop.captum_sensitivity_max(model, x, y, eps, n_perturb_samples=2),
        "quantus_sensitivity": lambda: interop.quantus_sensitivity(model, x, y, eps, nr_samples=2),
    }


# --- 1. uint8 images and values outside [0, 1] ------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["captum_bound", "worst_case_bound", "captum_sensitivity_max",
                                     "quantus_sensitivity"])
def test_uint8_images_are_refused_with_the_fix(cnn32, adapter):
    model, x, y = cnn32
    pixels = (x * 255).round().to(torch.uint8)
    with pytest.raises(TypeError, match=r"uint8.*/ 255"):
        _adapters(model, pixels, y)[adapter]()
    if adapter in ("worst_case_bound", "quantus_sensitivity"):  # numpy in: Quantus's currency
        with pytest.raises(TypeError, match=r"uint8 array.*/ 255"):
            _adapters(model, pixels.numpy(), y.numpy())[adapter]()
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        _adapters(model, x * 255, y)[adapter]()


def test_explain_refuses_integer_arrays_but_takes_noise_outside_the_box(cnn32):
    model, x, y = cnn32
    with pytest.raises(TypeError, match=r"int64 array.*/ 255"):
        interop.explain(model, (x.numpy() * 255).astype(np.int64), y.numpy())
    # Quantus's noise is not clipped to [0, 1]: explain (which Quantus calls on perturbed inputs) must take it
    moved = interop.explain(model, (x + 0.2).numpy(), y.numpy())
    assert moved.shape == x.shape and np.isfinite(moved).all()


# --- 2. non-positive batch sizes, sample counts and steps ------------------------------------------------------


def test_non_positive_counts_are_refused_by_the_package():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", "saliency", method="exact")
    for size in (-1, 0, 1.5):
        with pytest.raises(ValueError, match=r"batch_size must be a positive integer"):
            metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), batch_size=size)
    with pytest.raises(ValueError, match=r"attack_steps must be a positive integer, got 0"):
        interop.WorstCaseBound(EPS, "l2", "saliency", attack=True, attack_steps=0)
    with pytest.raises(ValueError, match=r"attack_restarts must be a positive integer, got 0"):
        interop.WorstCaseBound(EPS, "l2", "saliency", attack=True, attack_restarts=0)
    with pytest.raises(ValueError, match=r"n_perturb_samples must be a positive integer, got 0"):
        interop.captum_sensitivity_max(model, x, y, EPS, n_perturb_samples=0)
    with pytest.raises(ValueError, match=r"n_steps must be a positive integer, got 0"):
        interop.captum_sensitivity_max(model, x, y, EPS, attribution="integrated_gradients", n_steps=0)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        interop.quantus_sensitivity(model, x, y, EPS, batch_size=0)
    with pytest.raises(ValueError, match=r"nr_samples must be a positive integer, got 0"):
        interop.quantus_sensitivity(model, x, y, EPS, nr_samples=0)


# --- 3. captum_sensitivity_max checks everything up front ------------------------------------------------------


def test_captum_sensitivity_max_checks_its_inputs_up_front():
    model, x, y = quadratic()
    nan = x.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        interop.captum_sensitivity_max(model, nan, y, EPS)
    with pytest.raises(ValueError, match="empty batch"):
        interop.captum_sensitivity_max(model, x[:0], y[:0], EPS)
    with pytest.raises(TypeError, match=r"must be a torch.Tensor, got ndarray"):
        interop.captum_sensitivity_max(model, x.numpy(), y, EPS)
    with pytest.raises(ValueError, match=r"target classes must lie in \[0, 2\]"):
        interop.captum_sensitivity_max(model, x, torch.tensor([0, 1, 2, 3]), EPS)


# --- 4. quantus.evaluate with the package's IG ----------------------------------------------------------------


@pytest.mark.parametrize("key, kwargs", [("IntegratedGradients", {"attribution": "integrated_gradients"}),
                                         ("IG", {"attribution": "integrated_gradients"}),
                                         ("integrated_gradients", {})])
def test_quantus_evaluate_with_the_packages_integrated_gradients(key, kwargs):
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", attribution=None, method="exact")
    sampled = quantus.MaxSensitivity(lower_bound=EPS / np.sqrt(x.shape[1]), nr_samples=5, disable_warnings=True,
                                     display_progressbar=False)
    results = quantus.evaluate(metrics={"bound": metric, "sampled": sampled}, xai_methods={key: interop.explain},
                               explain_func_kwargs={**kwargs, "n_steps": 4}, model=model, x_batch=x.numpy(),
                               y_batch=y.numpy())
    want = attribution_bound(model, x, EPS, "l2", attribution="integrated_gradients", target=y, method="exact",
                             n_steps=4)
    assert metric.bound_results[0].attribution == "integrated_gradients"
    np.testing.assert_allclose(results[key]["bound"], (want.euclidean / want.attribution_norm).numpy(), rtol=1e-12)
    assert np.isfinite(results[key]["sampled"]).all()
    # the map quantus.evaluate explains is the one bounded
    ours = interop.explain(model, x.numpy(), y.numpy(), method=key, **kwargs, n_steps=4)
    from attrbound_lite.attributions import get_explainer
    np.testing.assert_array_equal(ours, get_explainer("integrated_gradients", model, n_steps=4).attribute(
        x, target=y).detach().numpy())


def test_explain_names_the_fix_for_a_key_it_cannot_read():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", attribution=None, method="exact")
    # raised by the package's explain, before Quantus calls any metric (no KeyError 'call_kwargs_empty')
    with pytest.raises(ValueError, match=r"xai_methods key 'IG'.*explain_func_kwargs=\{'attribution'"):
        quantus.evaluate(metrics={"bound": metric}, xai_methods={"IG": interop.explain}, explain_func_kwargs={},
                         model=model, x_batch=x.numpy(), y_batch=y.numpy())


# --- 5. per-sample radii ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_captum_bound_takes_per_sample_radii_equal_to_scalar_calls(norm):
    model, x, y = quadratic()
    radii = torch.tensor([0.05, 0.1, 0.2, 0.3], dtype=torch.float64)
    got = interop.captum_bound(ca.Saliency(model), x, y, radii, norm, abs=False, solver="exact")
    for i in range(x.shape[0]):
        one = interop.captum_bound(ca.Saliency(model), x[i:i + 1], y[i:i + 1], float(radii[i]), norm, abs=False,
                                   solver="exact")
        for field in ("euclidean", "sigma_max", "attribution_norm", "cosine"):
            torch.testing.assert_close(getattr(got, field)[i:i + 1], getattr(one, field), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="per-sample eps has 3 entries but the batch has 4"):
        interop.captum_bound(ca.Saliency(model), x, y, radii[:3], norm, abs=False)


@pytest.mark.parametrize("attack", [False, True])
def test_worst_case_bound_takes_per_sample_radii_equal_to_scalar_calls(attack):
    model, x, y = quadratic()
    radii = torch.tensor([0.02, 0.05, 0.1, 0.04], dtype=torch.float64)  # small enough to keep every label
    options = dict(attack=attack, method="exact", relative=False) | ({"attack_steps": 5} if attack else {})
    scores = interop.WorstCaseBound(radii, "l2", "saliency", **options)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), batch_size=3)  # the radii follow the batches
    for i in range(x.shape[0]):
        one = interop.WorstCaseBound(float(radii[i]), "l2", "saliency", **options)(
            model=model, x_batch=x[i:i + 1].numpy(), y_batch=y[i:i + 1].numpy())
        if attack:  # the random start differs with the batch: below the bound of its own radius, and close to it
            bound = interop.WorstCaseBound(float(radii[i]), "l2", "saliency", method="exact", relative=False)(
                model=model, x_batch=x[i:i + 1].numpy(), y_batch=y[i:i + 1].numpy())
            assert 0.5 * bound[0] <= scores[i] <= bound[0] * (1 + 1e-9)
            assert 0.5 * bound[0] <= one[0] <= bound[0] * (1 + 1e-9)
        else:
            assert scores[i] == pytest.approx(one[0], rel=1e-12)
    with pytest.raises(ValueError, match="per-sample eps has 4 entries but the batch has 2"):
        interop.WorstCaseBound(radii, "l2", "saliency")(model=model, x_batch=x[:2].numpy(), y_batch=y[:2].numpy())


# --- 6. every adapter: the model, the inputs against the model, numpy scalar radii ------------------------------


@pytest.mark.parametrize("adapter", ["worst_case_bound", "captum_sensitivity_max", "quantus_sensitivity"])
def test_a_model_that_is_not_a_module_is_refused_before_eval(adapter):
    _, x, y = quadratic()
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module.*got _NotAModule"):
        _adapters(_NotAModule(), x, y)[adapter]()


def test_explain_refuses_a_model_that_is_not_a_module():
    _, x, y = quadratic()
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module.*got _NotAModule"):
        interop.explain(_NotAModule(), x.numpy(), y.numpy())


def _bad_inputs(x):
    return {
        "float64 for a float32 model": (x.double(), TypeError, r"are torch.float64 but the model's parameters are "
                                                               r"torch.float32"),
        "three channels": (x.expand(-1, 3, -1, -1).contiguous(), ValueError, r"takes .* of shape \(B, 1, 28, 28\)"),
        "another image size": (x[:, :, :20, :20].contiguous(), ValueError, r"takes .* of shape \(B, 1, 28, 28\)"),
        "no batch dimension": (x[0], ValueError, r"add it with \w+\[None\]"),
    }


@pytest.mark.parametrize("case", ["float64 for a float32 model", "three channels", "another image size",
                                  "no batch dimension"])
@pytest.mark.parametrize("adapter", ["captum_bound", "worst_case_bound", "captum_sensitivity_max",
                                     "quantus_sensitivity"])
def test_inputs_the_model_cannot_take_get_the_packages_error(cnn32, adapter, case):
    model, x, y = cnn32
    bad, error, message = _bad_inputs(x)[case]
    target = y if bad.ndim == 4 else y[:1]
    with pytest.raises(error, match=message):
        _adapters(model, bad, target)[adapter]()


def test_a_model_without_input_shape_is_probed_and_named(cnn32):
    _, x, y = cnn32
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softplus(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 3)).eval()
    three = x.expand(-1, 3, -1, -1).contiguous()
    for name, call in _adapters(model, three, y % 3).items():
        with pytest.raises(ValueError, match=r"cannot take .* of shape \(2, 3, 28, 28\)"):
            call()
            pytest.fail(name)
    with pytest.raises(ValueError, match=r"cannot take inputs of shape \(2, 3, 28, 28\)"):
        interop.explain(model, three.numpy(), (y % 3).numpy())


def test_numpy_floats_for_quantus_are_cast_to_the_models_dtype(cnn32):
    model, x, y = cnn32  # float32 model, float64 arrays (numpy's default)
    metric = interop.WorstCaseBound(EPS, "l2", "saliency")
    assert np.isfinite(metric(model=model, x_batch=x.double().numpy(), y_batch=y.numpy())).all()
    sampled = interop.quantus_sensitivity(model, x.double().numpy(), y.numpy(), EPS, nr_samples=2)
    assert np.isfinite(sampled.scores).all()


def test_numpy_scalar_radii_are_accepted_everywhere(cnn32):
    model, x, y = cnn32
    for name, call in _adapters(model, x, y, eps=np.float32(EPS)).items():
        assert call() is not None, name
    for bad in (0.0, -1, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="eps must be a positive finite number"):
            interop.WorstCaseBound(bad)
        with pytest.raises(ValueError, match="eps must be a positive finite number"):
            interop.captum_bound(ca.Saliency(model), x, y, bad, abs=False)


def test_worst_case_bound_without_targets_explains_the_prediction():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", "saliency", method="exact", attack=True, attack_steps=3)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=None)
    assert len(scores) == 4 and torch.equal(metric.bound_results[0].target, y)


def test_targets_that_are_not_class_indices_are_refused_by_the_package():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", "saliency", method="exact")
    with pytest.raises(TypeError, match=r"y_batch must be integer class indices.*dtype <U1"):
        metric(model=model, x_batch=x.numpy(), y_batch=np.array(list("abcd")))
    with pytest.raises(ValueError, match=r"target classes must lie in \[0, 2\]"):
        metric(model=model, x_batch=x.numpy(), y_batch=np.array([0, 1, 2, 7]))
    with pytest.raises(ValueError, match=r"target classes must lie in \[0, 2\]"):
        interop.quantus_sensitivity(model, x, np.array([0, 1, 2, 7]), EPS, nr_samples=2)
    assert repr(interop.WorstCaseBound(torch.full((4,), EPS))).startswith("WorstCaseBound(eps=<4 per sample>")


def test_quantus_explain_integrated_gradients_is_refused_naming_the_packages_explain():
    model, x, y = quadratic()
    metric = interop.WorstCaseBound(EPS, "l2", attribution=None)
    with pytest.raises(ValueError, match=r"riemann_trapezoid.*xai_methods=\{'IntegratedGradients': "
                                         r"attrbound_lite.interop.explain\}"):
        metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), explain_func=quantus.explain,
               explain_func_kwargs={"method": "IntegratedGradients"})


# --- 7. the input contract (issue 20): the package's error, naming the argument, never a raw or silent one --------
# Targets of another length or shape than the batch, floating-point targets, precomputed attributions of the
# wrong shape, an attribution and a method that disagree, flags that are not bools, radii on the 'meta' device,
# and an explainer built on another model than the attack's. Each row: (call, exception, message fragment).


def _contract_context():
    model, x, y = quadratic()
    other, _, _ = quadratic()  # the same weights, another model object
    radii = torch.full((x.shape[0],), EPS, dtype=x.dtype)
    return {"model": model, "other": other, "x": x, "y": y, "radii": radii}


def _wcb(c, **call):
    metric = interop.WorstCaseBound(EPS, "l2", "saliency", method="exact")
    return metric(model=c["model"], x_batch=c["x"].numpy(), **{"y_batch": c["y"].numpy(), **call})


def _sens(c, **options):
    return interop.quantus_sensitivity(c["model"], c["x"], options.pop("y", c["y"].numpy()), EPS, nr_samples=2,
                                       **options)


def _explain(c, targets, **options):
    return interop.explain(c["model"], c["x"].numpy(), targets, **options)


def _apgd(c, **options):
    from attrbound_lite.attacks import AttributionPGD
    return AttributionPGD(c["model"], options.pop("explainer", "saliency"), options.pop("eps", EPS), EPS / 4, 2,
                          **options)


META = torch.tensor(EPS, device="meta")

REFUSED = {
    # interop: y_batch / y / targets against the batch (4 inputs), and floats
    "wcb y_batch of 3": (lambda c: _wcb(c, y_batch=c["y"].numpy()[:3]), ValueError,
                         r"y_batch must give one class per sample.*\(4,\), got shape \(3,\)"),
    "wcb y_batch of 1": (lambda c: _wcb(c, y_batch=c["y"].numpy()[:1]), ValueError, r"y_batch .*got shape \(1,\)"),
    "wcb y_batch 2x2": (lambda c: _wcb(c, y_batch=c["y"].numpy().reshape(2, 2)), ValueError,
                        r"y_batch .*got shape \(2, 2\)"),
    "wcb y_batch floats": (lambda c: _wcb(c, y_batch=c["y"].numpy().astype(float)), TypeError,
                           r"y_batch must be integer class indices, got floating-point"),
    "wcb a_batch of 3": (lambda c: _wcb(c, a_batch=np.zeros((3, 6))), ValueError,
                         r"a_batch .*shape \(3, 6\).*x_batch \(4, 6\)"),
    "wcb a_batch too narrow": (lambda c: _wcb(c, a_batch=np.zeros((4, 5))), ValueError, r"a_batch .*\(4, 5\)"),
    "wcb a_batch flat": (lambda c: _wcb(c, a_batch=np.zeros(4)), ValueError, r"a_batch .*shape \(4,\)"),
    "wcb softmax 'no'": (lambda c: _wcb(c, softmax="no"), TypeError, "softmax must be True or False"),
    "wcb channel_first 'no'": (lambda c: _wcb(c, channel_first="no"), TypeError, "channel_first must be True or"),
    "wcb relative 'no'": (lambda c: interop.WorstCaseBound(EPS, relative="no"), TypeError,
                          "relative must be True or False"),
    "wcb attack 1": (lambda c: interop.WorstCaseBound(EPS, attack=1), TypeError, "attack must be True or False"),
    "wcb return_aggregate 'yes'": (lambda c: interop.WorstCaseBound(EPS, return_aggregate="yes"), TypeError,
                                   "return_aggregate must be True or False"),
    "wcb eps meta": (lambda c: interop.WorstCaseBound(META), ValueError, r"eps is a tensor on the 'meta' device"),
    "sens y of 3": (lambda c: _sens(c, y=c["y"].numpy()[:3]), ValueError, r"y must give one class per sample"),
    "sens y of 1": (lambda c: _sens(c, y=c["y"].numpy()[:1]), ValueError, r"y .*got shape \(1,\)"),
    "sens y floats": (lambda c: _sens(c, y=c["y"].numpy().astype(np.float32)), TypeError,
                      "y must be integer class indices, got floating-point"),
    "sens a_batch": (lambda c: _sens(c, a_batch=np.zeros((3, 6))), TypeError,
                     r"\['a_batch'\] are arguments of the metric's call"),
    "sens normalise 'no'": (lambda c: _sens(c, normalise="no"), TypeError, "normalise must be True or False"),
    "sens return_aggregate 'no'": (lambda c: _sens(c, return_aggregate="no"), TypeError,
                                   "return_aggregate must be True or False"),
    "explain 3.0": (lambda c: _explain(c, 2.0), TypeError, r"targets must be integer class indices, got floating"),
    "explain float tensor": (lambda c: _explain(c, c["y"].float()), TypeError, r"targets must be integer class"),
    "explain targets 2x2": (lambda c: _explain(c, c["y"].numpy().reshape(2, 2)), ValueError,
                            r"targets must give one class per sample"),
    "explain attribution and method": (lambda c: _explain(c, c["y"].numpy(), attribution="saliency",
                                                          method="IntegratedGradients"), ValueError,
                                       r"attribution='saliency' and method='IntegratedGradients'.*disagree"),
    "explain method 3": (lambda c: _explain(c, c["y"].numpy(), method=3), TypeError, "method .*must be a string"),
    "explain attribution list": (lambda c: _explain(c, c["y"].numpy(), attribution=["saliency"]), TypeError,
                                 "attribution must be"),
    # threat models
    "to('cpu')": (lambda c: _threat(c["radii"]).to("cpu"), TypeError, r"like must be a torch.Tensor.*got str"),
    "to(None)": (lambda c: _threat(EPS).to(None), TypeError, r"like must be a torch.Tensor.*got NoneType"),
    "ball eps meta": (lambda c: _threat(META), ValueError, "eps is a tensor on the 'meta' device"),
    "ascend random_start 'no'": (lambda c: _threat(EPS).ascend(lambda z: z.sum(1), c["x"], 1, 0.01,
                                                               random_start="no"), TypeError,
                                 "random_start must be True or False"),
    "step alpha meta": (lambda c: _threat(EPS).step(c["x"], c["x"], META), ValueError, "alpha .*'meta' device"),
    "repeat '2'": (lambda c: _threat(c["radii"]).repeat("2"), ValueError, "repeats must be a positive integer"),
    # attacks
    "explainer of another model": (lambda c: _apgd(c, explainer=get_explainer("saliency", c["other"])), ValueError,
                                   "built on another model object"),
    "IFIA explainer of another model": (lambda c: _ifia(c, get_explainer("integrated_gradients", c["other"],
                                                                         n_steps=2)),
                                        ValueError, "built on another model object"),
    "per_restart 'no'": (lambda c: _apgd(c, per_restart="no"), TypeError, "per_restart must be True or False"),
    "per_restart 1": (lambda c: _apgd(c, per_restart=1), TypeError, "per_restart must be True or False"),
    "compile 'no'": (lambda c: _apgd(c, compile="no"), ValueError, "compile must be True, False or a torch.compile"),
    "random_start 'no'": (lambda c: _pgd(c, random_start="no"), TypeError, "random_start must be True or False"),
    "eps meta": (lambda c: _apgd(c, eps=META), ValueError, "eps is a tensor on the 'meta' device"),
    "per-sample eps meta": (lambda c: _apgd(c, eps=c["radii"].to("meta")), ValueError, r"eps .*'meta'.*\(4,\)"),
    "alpha meta": (lambda c: _pgd(c, alpha=META), ValueError, r"alpha \(the step size\) is a tensor on the 'meta'"),
}


def _threat(eps):
    from attrbound_lite.threat_models import L2Ball
    return L2Ball(eps)


def _ifia(c, explainer):
    from attrbound_lite.attacks import IFIA
    return IFIA(c["model"], explainer, EPS, EPS / 4, 2, k=2)


def _pgd(c, **options):
    from attrbound_lite.attacks import PGD
    return PGD(c["model"], EPS, options.pop("alpha", EPS / 4), 2, **options)


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_input_gets_the_packages_error_naming_the_argument(case):
    call, error, fragment = REFUSED[case]
    with pytest.raises(error, match=fragment) as caught:
        call(_contract_context())
    assert caught.value.__traceback__ is not None
    frames = [frame.filename for frame in __import__("traceback").extract_tb(caught.value.__traceback__)]
    assert "attrbound_lite" in frames[-1], frames[-1]  # raised by the package itself, not inside torch / Quantus


def test_valid_inputs_still_work_and_give_the_same_numbers():
    c = _contract_context()
    model, x, y = c["model"], c["x"], c["y"]
    plain = _wcb(c)
    # precomputed attributions of the right shape (or summed over an axis) are accepted and change nothing
    assert _wcb(c, a_batch=np.ones((4, 6))) == plain and _wcb(c, a_batch=np.ones((4, 1))) == plain
    assert _wcb(c, softmax=None, channel_first=np.True_) == plain and _wcb(c, softmax=np.False_) == plain
    flags = interop.WorstCaseBound(EPS, "l2", "saliency", method="exact", relative=np.True_, attack=np.False_)
    assert flags(model=model, x_batch=x.numpy(), y_batch=y.numpy()) == plain
    # one class for all: a Python or numpy int or a 0-d tensor
    one = _wcb(c, y_batch=np.zeros(4, dtype=np.int64))
    assert _wcb(c, y_batch=0) == one and _wcb(c, y_batch=np.int64(0)) == one and _wcb(c, y_batch=torch.tensor(0)) == one
    # explain: an attribution and a method that agree, or a method key that names nothing, are the attribution's map
    ig = _explain(c, y.numpy(), attribution="integrated_gradients", n_steps=3)
    for method in ("IntegratedGradients", "integrated_gradients", "IG"):
        np.testing.assert_array_equal(_explain(c, y.numpy(), attribution="integrated_gradients", method=method,
                                               n_steps=3), ig)
    np.testing.assert_array_equal(_explain(c, torch.tensor(1)), _explain(c, np.ones(4, dtype=np.int32)))
    assert np.isfinite(_sens(c, normalise=np.False_, abs=False).scores).all()
    # attacks: numpy bools, an explainer built on the attack's own model, a per-sample ThreatModel moved by a tensor
    from attrbound_lite.attributions import Saliency
    first = _apgd(c, per_restart=True, seed=2)(x, y)
    again = _apgd(c, per_restart=np.True_, explainer=Saliency(model), compile=np.False_, seed=2)(x, y)
    assert torch.equal(first.x_adv, again.x_adv) and first.x_adv.shape == (4, 6)
    assert torch.equal(_pgd(c, random_start=np.False_)(x, y), _pgd(c, random_start=False)(x, y))
    moved = _threat(c["radii"].float()).to(x)
    assert moved.eps.dtype == x.dtype and _threat(EPS).to(x).eps == EPS
    assert _threat(c["radii"]).repeat(np.int64(2)).eps.shape == (8,)
