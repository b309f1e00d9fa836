"""Attributions: shapes and targets, the axioms of Integrated Gradients, differentiability."""

import pytest
import torch
from conftest import oracle_attribution, small_cnn

from attrbound_lite.attributions import InputXGradient, IntegratedGradients, Saliency, get_explainer

EXPLAINERS = [Saliency, InputXGradient, lambda m: IntegratedGradients(m, n_steps=7)]


@pytest.fixture(scope="module")
def model_and_inputs():
    model = small_cnn(in_ch=2, seed=3)
    x = torch.rand(4, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return model, x


@pytest.mark.parametrize("make", EXPLAINERS)
def test_shape_and_targets(model_and_inputs, make):
    model, x = model_and_inputs
    explainer = make(model)
    predicted = model(x).argmax(1)
    default = explainer.attribute(x)
    assert default.shape == x.shape and not default.requires_grad
    torch.testing.assert_close(default, explainer.attribute(x, target=predicted))
    by_int = explainer.attribute(x, target=2)
    torch.testing.assert_close(by_int, explainer.attribute(x, target=torch.full((4,), 2)))
    name = explainer.name
    fn = oracle_attribution(model, name, 7)
    expected = torch.stack([fn(x[i], 2) for i in range(4)])
    torch.testing.assert_close(by_int, expected)


def test_ig_completeness_at_200_steps(trained_toy):
    """sum IG(x) -> f_c(x) - f_c(b): within 1% at 200 steps (right Riemann sums), on a trained model
    whose logit gaps are far from zero."""
    model, x, _ = trained_toy
    x = x[:8]
    for baseline in (None, 0.3):
        ig = IntegratedGradients(model, n_steps=200, baseline=baseline)
        attr = ig.attribute(x)
        c = model(x).argmax(1)
        b = torch.zeros_like(x) if baseline is None else torch.full_like(x, baseline)
        gap = (model(x) - model(b)).gather(1, c[:, None]).squeeze(1)
        assert (gap.abs() > 0.5).all()
        total = attr.flatten(1).sum(1)
        assert ((total - gap).abs() <= 0.01 * gap.abs()).all(), (total, gap)
        # ... and the error shrinks with more steps (a consistency check of the Riemann sum)
        coarse = IntegratedGradients(model, n_steps=20, baseline=baseline).attribute(x).flatten(1).sum(1)
        assert (total - gap).abs().sum() < (coarse - gap).abs().sum()


def test_ig_one_step_is_right_riemann(model_and_inputs):
    """m = 1 with right sums is (x - b) * grad f(x), i.e. input x gradient for b = 0."""
    model, x = model_and_inputs
    torch.testing.assert_close(IntegratedGradients(model, n_steps=1).attribute(x), InputXGradient(model).attribute(x))


def test_ig_internal_batch_size_changes_nothing(model_and_inputs):
    model, x = model_and_inputs
    full = IntegratedGradients(model, n_steps=9).attribute(x)
    chunked = IntegratedGradients(model, n_steps=9, internal_batch_size=5).attribute(x)
    torch.testing.assert_close(full, chunked)


@pytest.mark.parametrize("make", EXPLAINERS)
def test_create_graph_gradients_match_finite_differences(model_and_inputs, make):
    model, x = model_and_inputs
    explainer = make(model)
    target = model(x).argmax(1)
    w = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(5))
    direction = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(6))

    def loss(z):
        return (w * explainer.attribute(z, target=target, create_graph=True)).sum()

    xg = x.clone().requires_grad_(True)
    attr = explainer.attribute(xg, target=target, create_graph=True)
    assert attr.requires_grad
    (grad,) = torch.autograd.grad((w * attr).sum(), xg)
    h = 1e-5
    fd = (loss(x + h * direction) - loss(x - h * direction)) / (2 * h)
    assert (grad * direction).sum().item() == pytest.approx(fd.item(), rel=1e-6)


def test_without_create_graph_no_graph_is_kept(model_and_inputs):
    model, x = model_and_inputs
    assert not Saliency(model).attribute(x.clone().requires_grad_(True)).requires_grad


def test_get_explainer_and_rebind(model_and_inputs):
    model, x = model_and_inputs
    ig = get_explainer("integrated_gradients", model, n_steps=3)
    other = small_cnn(in_ch=2, seed=9)
    rebound = ig.rebind(other)
    assert rebound.model is other and rebound.n_steps == 3 and ig.model is model
    with pytest.raises(ValueError, match="unknown attribution"):
        get_explainer("gradcam", model)
    with pytest.raises(ValueError, match="takes no options"):
        get_explainer("saliency", model, n_steps=3)


@pytest.mark.parametrize("bad, match", [
    (torch.full((2, 2, 8, 8), float("nan"), dtype=torch.float64), "NaN or inf"),
    (torch.rand(8, dtype=torch.float64), "batch-first"),
    (torch.zeros(2, 2, 8, 8, dtype=torch.long), "floating-point"),
])
def test_bad_inputs(model_and_inputs, bad, match):
    model, _ = model_and_inputs
    with pytest.raises((ValueError, TypeError), match=match):
        Saliency(model).attribute(bad)


def test_bad_targets(model_and_inputs):
    model, x = model_and_inputs
    with pytest.raises(ValueError, match="target classes must lie"):
        Saliency(model).attribute(x, target=3)
    with pytest.raises(ValueError, match="shape"):
        Saliency(model).attribute(x, target=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_steps"):
        IntegratedGradients(model, n_steps=0)
