"""Bounds against problems whose answer is known: a quadratic model per class (closed form) and a 2-D
smooth toy whose worst case a dense grid over the ball finds."""

import itertools
import math

import pytest
import torch
from torch import nn

from attrbound_lite.attacks import AttributionPGD
from attrbound_lite.attributions import Saliency
from attrbound_lite.bounds import attribution_bound, cosine_bound, dense_jacobian
from attrbound_lite.models import QuadraticClassifier


def quadratic(n=6, seed=0, Q0=None, b0=None):
    """Class 0: x^T Q0 x / 2 + b0^T x with a large b0, so class 0 stays predicted near x = 0.5; class 1: 0."""
    gen = torch.Generator().manual_seed(seed)
    if Q0 is None:
        a = torch.randn(n, n, generator=gen, dtype=torch.float64)
        Q0 = (a + a.T) / 2
    if b0 is None:
        b0 = 20 + torch.rand(n, generator=gen, dtype=torch.float64)
    Q = torch.stack([Q0, torch.zeros_like(Q0)])
    b = torch.stack([b0, torch.zeros_like(b0)])
    return QuadraticClassifier(Q, b).eval(), Q0


def test_quadratic_saliency_jacobian_is_Q():
    model, Q0 = quadratic()
    x = torch.full((2, 6), 0.5, dtype=torch.float64)
    jac = dense_jacobian(Saliency(model), x, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(jac, Q0.expand(2, 6, 6))


@pytest.mark.parametrize("method", ["lanczos", "power", "exact"])
def test_quadratic_l2_bound_is_exact(method):
    model, Q0 = quadratic()
    eps = 0.1
    x = torch.rand(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.2 + 0.4
    result = attribution_bound(model, x, eps, method=method, tol=1e-12, max_iter=5000)
    expected = eps * torch.linalg.matrix_norm(Q0, ord=2)
    torch.testing.assert_close(result.euclidean, expected.expand(3), rtol=1e-6 if method == "power" else 1e-10,
                               atol=0)


def test_attribution_pgd_reaches_the_quadratic_bound():
    """For a quadratic, A(x + d) - A(x) = Q d exactly: the l2 bound eps ||Q||_2 is the true worst case."""
    model, _ = quadratic()
    eps = 0.1
    x = torch.full((4, 6), 0.5, dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    bound = attribution_bound(model, x, eps, norm="l2", tol=1e-12)
    attack = AttributionPGD(model, "saliency", eps=eps, alpha=0.05, steps=60, norm="l2", restarts=2)
    result = attack(x, y)
    assert result.label_kept.all()
    achieved = result.deviation.euclidean
    assert (achieved >= 0.99 * bound.euclidean).all(), (achieved / bound.euclidean)
    assert (achieved <= bound.euclidean * (1 + 1e-9)).all()  # exact bound: never exceeded


def test_cosine_bound_is_attained():
    """Q = s I in 2-D: A(x + d) = A(x) + s d fills the whole disc of radius r = s eps, so the smallest
    cosine over the ball is exactly the tangent value sqrt(1 - r^2 / a^2)."""
    s, eps = 2.0, 0.1
    model, _ = quadratic(n=2, Q0=s * torch.eye(2, dtype=torch.float64),
                         b0=torch.tensor([0.3, -0.2], dtype=torch.float64))
    x = torch.full((1, 2), 0.5, dtype=torch.float64)
    bound = attribution_bound(model, x, eps, norm="l2")
    a = Saliency(model).attribute(x)
    # dense grid over the disc: worst cosine of the true attributions
    r = torch.linspace(0, eps, 201, dtype=torch.float64)
    theta = torch.linspace(0, 2 * math.pi, 2001, dtype=torch.float64)
    d = torch.stack([torch.outer(r, theta.cos()), torch.outer(r, theta.sin())], -1).reshape(-1, 2)
    perturbed = Saliency(model).attribute(x + d, target=0)
    worst = nn.functional.cosine_similarity(perturbed, a.expand_as(perturbed), dim=1).min()
    assert bound.cosine.item() == pytest.approx(worst.item(), abs=1e-5)
    assert bound.cosine.item() <= worst.item() + 1e-12
    attack = AttributionPGD(model, "saliency", eps=eps, alpha=0.02, steps=100, norm="l2", objective="cosine",
                            restarts=3)(x, torch.zeros(1, dtype=torch.long))
    assert attack.deviation.cosine.item() == pytest.approx(bound.cosine.item(), abs=1e-4)


def test_cosine_bound_formula():
    r = torch.tensor([0.0, 0.6, 1.0, 2.0])
    a = torch.tensor([1.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(cosine_bound(r, a), torch.tensor([1.0, 0.8, -1.0, -1.0]))


class Toy2D(nn.Module):
    """A smooth 2-D, 2-class classifier: a small tanh/softplus network on (B, 2) inputs."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 8), nn.Softplus(2.0), nn.Linear(8, 2))
        self.double().eval()

    def forward(self, x):
        return self.net(x)


def _grid(norm, eps, points=301):
    t = torch.linspace(-eps, eps, points, dtype=torch.float64)
    d = torch.cartesian_prod(t, t)
    return d if norm == "linf" else d[d.norm(dim=1) <= eps]


@pytest.mark.parametrize("attribution", ["saliency", "input_x_gradient", "integrated_gradients"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_toy_bounds_dominate_dense_grid_worst_case(attribution, norm):
    model = Toy2D()
    x = torch.tensor([[0.3, 0.6], [0.7, 0.2], [0.5, 0.5]], dtype=torch.float64)
    options = {"n_steps": 20} if attribution == "integrated_gradients" else {}
    from attrbound_lite.attributions import get_explainer
    explainer = get_explainer(attribution, model, **options)
    for eps in (1e-3, 1e-2):
        bound = attribution_bound(model, x, eps, norm=norm, attribution=attribution, tol=1e-12, **options)
        for i in range(x.shape[0]):
            d = _grid(norm, eps)
            c = bound.target[i].expand(d.shape[0])
            a0 = explainer.attribute(x[i:i + 1], target=bound.target[i:i + 1])
            a = explainer.attribute(x[i] + d, target=c)
            kept = model(x[i] + d).argmax(1) == c
            worst = (a - a0)[kept].norm(dim=1).max()
            worst_cos = nn.functional.cosine_similarity(a[kept], a0.expand_as(a[kept]), dim=1).min()
            # first-order bound vs the true nonlinear worst case: equal up to O(eps^2) terms
            assert bound.euclidean[i] >= worst * (1 - 5 * eps), (eps, bound.euclidean[i], worst)
            assert bound.cosine[i] <= worst_cos + 1e-6
            if norm == "l2" and eps == 1e-3:  # and tight for small eps
                assert bound.euclidean[i] <= worst * (1 + 1e-2)


def test_linf_bounds_bracket_the_exact_vertex_maximum():
    """max over s in {-1, 1}^n of eps ||J s||_2 (brute force, n = 10) lies between the sign-iteration lower
    estimate and the upper bound; both upper bounds are valid."""
    torch.manual_seed(0)
    n = 10
    model = nn.Sequential(nn.Linear(n, 12), nn.Softplus(2.0), nn.Linear(12, 3)).double().eval()
    x = torch.rand(4, n, dtype=torch.float64)
    eps = 0.05
    bound = attribution_bound(model, x, eps, norm="linf", tol=1e-12)
    jac = dense_jacobian(Saliency(model), x, bound.target)
    vertices = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)), dtype=torch.float64)  # (1024, n)
    exact = eps * torch.einsum("bij,vj->bvi", jac, vertices).norm(dim=2).amax(1)
    assert (bound.linf_lower <= exact * (1 + 1e-12)).all()
    assert (bound.linf_lower >= 0.9 * exact).all()
    assert (bound.euclidean >= exact * (1 - 1e-12)).all()
    assert (bound.linf_sqrt_n >= exact * (1 - 1e-12)).all()
    assert (bound.linf_abs_rowsum >= exact * (1 - 1e-12)).all()
    torch.testing.assert_close(bound.euclidean, torch.minimum(bound.linf_sqrt_n, bound.linf_abs_rowsum))
    assert set(bound.linf_smaller) <= {"sqrt_n", "abs_rowsum"}


def test_linf_without_dense_uses_sqrt_n():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 12), nn.Softplus(2.0), nn.Linear(12, 3)).double().eval()
    x = torch.rand(2, 10, dtype=torch.float64)
    bound = attribution_bound(model, x, 0.05, norm="linf", max_dense_n=5)
    assert torch.isnan(bound.linf_abs_rowsum).all()
    assert bound.linf_smaller == ["sqrt_n", "sqrt_n"]
    torch.testing.assert_close(bound.euclidean, bound.linf_sqrt_n)
    torch.testing.assert_close(bound.linf_sqrt_n, 0.05 * math.sqrt(10) * bound.sigma_max)
