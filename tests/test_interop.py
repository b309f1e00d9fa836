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
