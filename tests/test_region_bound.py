"""The curvature-aware region bound against oracles: a constant-Hessian model, a closed-form maximiser, a dense grid
on a 2-D toy, the worst case of the toy itself, and the point bound it must never fall below."""

import copy

import pytest
import torch
from conftest import DEVICES, small_cnn
from torch import nn

from attrbound_lite.config import ConfigError
from attrbound_lite.models import QuadraticClassifier
from attrbound_lite.region import region_bound
from attrbound_lite.toy import grid_worst_case, toy_mlp


def _cnn_case(batch=3, dtype=torch.float64, seed=0):
    model = small_cnn(side=6, seed=seed, dtype=dtype)
    x = torch.rand(batch, 1, 6, 6, generator=torch.Generator().manual_seed(seed + 10), dtype=dtype)
    return model, x


def test_constant_hessian_gives_the_point_bound():
    """f_c = x^T Q_c x / 2 + b_c^T x: the saliency Jacobian Q_c is the same everywhere, so S = sigma_max(Q_c)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 16, 16, generator=g, dtype=torch.float64)
    model = QuadraticClassifier(q + q.transpose(1, 2), torch.randn(3, 16, generator=g, dtype=torch.float64))
    x = torch.rand(4, 1, 4, 4, generator=g, dtype=torch.float64)
    for norm in ("l2", "linf"):
        r = region_bound(model, x, 0.1, norm, steps=5, restarts=2, tol=1e-10)
        expected = torch.linalg.matrix_norm((model.Q + model.Q.transpose(1, 2)).detach() / 2, 2)[r.target]
        torch.testing.assert_close(r.sigma_max, expected, rtol=1e-8, atol=0)
        torch.testing.assert_close(r.euclidean, r.point.euclidean, rtol=1e-8, atol=0)


class _SeparableCubic(nn.Module):
    """``f_0(x) = sum_i a_i x_i^3 / 6``, ``f_1 = 0``: the saliency Jacobian of class 0 is ``diag(a_i x_i)``."""

    def __init__(self, a):
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x):
        f0 = (self.a * x.flatten(1) ** 3 / 6).sum(1) + 10  # class 0 wins everywhere in [0, 1]
        return torch.stack([f0, torch.zeros_like(f0)], 1)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_separable_cubic_reaches_its_known_maximiser(norm):
    """sigma_max(J(z)) = max_i |a_i z_i|; with x = 0.5 everywhere and the largest |a_i| at i*, the supremum over the
    ball and the box is |a_i*| min(1, 0.5 + eps), reached by moving coordinate i* alone (l2) or all (l-inf)."""
    a = torch.linspace(0.5, 2.0, 16, dtype=torch.float64)
    model, x, eps = _SeparableCubic(a), torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64), 0.2
    r = region_bound(model, x, eps, norm, steps=10, tol=1e-10)
    torch.testing.assert_close(r.point.sigma_max, torch.full((2,), 2.0 * 0.5, dtype=torch.float64))
    torch.testing.assert_close(r.sigma_max, torch.full((2,), 2.0 * 0.7, dtype=torch.float64), rtol=1e-6, atol=0)
    assert r.argmax.flatten(1)[:, -1].allclose(torch.tensor(0.7, dtype=torch.float64))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_ascent_reaches_the_dense_grid_supremum_on_a_toy(norm):
    """2-D softplus MLP, balls inside the box: the ascent finds at least 99% of the grid's max sigma_max(J(z)),
    and no more than the grid allows (its resolution)."""
    model = toy_mlp(seed=0, beta=1.0)
    for i, point in enumerate([(0.5, 0.5), (0.3, 0.6), (0.7, 0.4)]):
        x = torch.tensor([point], dtype=torch.float64)
        grid = grid_worst_case(model, x, 0.2, norm, points=151)
        r = region_bound(model, x, 0.2, norm, steps=20, restarts=3, seed=i)
        assert 0.99 * grid.sigma_sup <= r.sigma_max.item() <= 1.001 * grid.sigma_sup, (point, grid.sigma_sup)


def test_region_bound_holds_where_the_first_order_bound_is_exceeded():
    """On the toy at eps = 0.3 the true worst case (dense grid, label kept) beats the first-order bound; the region
    bound, estimated by ascent, stays above it (the mean-value inequality)."""
    model = toy_mlp(seed=0, beta=1.0)
    exceeded = 0
    for point in [(0.3, 0.6), (0.7, 0.4), (0.5, 0.5)]:
        x = torch.tensor([point], dtype=torch.float64)
        worst = grid_worst_case(model, x, 0.3, "l2", points=151).euclidean
        r = region_bound(model, x, 0.3, "l2", steps=20, restarts=3)
        exceeded += worst > r.point.euclidean.item()
        assert worst <= r.euclidean.item(), point
    assert exceeded >= 2  # the test is about the case the point bound gets wrong


@pytest.mark.parametrize("attribution", ["saliency", "input_x_gradient", "integrated_gradients"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_never_below_the_point_bound_and_batch_independent(attribution, norm):
    model, x = _cnn_case(batch=3)
    options = {"n_steps": 3} if attribution == "integrated_gradients" else {}
    r = region_bound(model, x, 0.05, norm, attribution, steps=3, power_steps=2, tol=1e-10, **options)
    assert (r.sigma_max >= r.point.sigma_max).all() and (r.euclidean >= r.point.euclidean).all()
    assert (r.cosine <= r.point.cosine).all() and (r.gain >= 1).all()
    assert ((r.argmax - x).flatten(1).norm(p=float("inf") if norm == "linf" else 2, dim=1) <= 0.05 + 1e-12).all()
    assert ((r.argmax >= 0) & (r.argmax <= 1)).all()
    single = torch.cat([region_bound(model, x[i:i + 1], 0.05, norm, attribution, steps=3, power_steps=2, tol=1e-10,
                                     **options).sigma_max for i in range(3)])
    torch.testing.assert_close(r.sigma_max, single, rtol=1e-7, atol=0)
    frame = r.to_dataframe()
    assert len(frame) == 3 and {"sigma_max", "euclidean", "point_euclidean", "gain"} <= set(frame.columns)


def test_random_starts_follow_their_samples_whatever_the_batch():
    """Three starts per image and IG with a baseline per image (the path that repeats baselines per start): the batch
    equals the images one by one, and reordering the batch reorders the results."""
    model, x = _cnn_case(batch=3)
    baseline = torch.rand(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    kwargs = dict(attribution="integrated_gradients", n_steps=3, baseline=baseline, steps=2, restarts=3, tol=1e-10)
    batch = region_bound(model, x, 0.05, **kwargs).sigma_max
    single = torch.cat([region_bound(model, x[i:i + 1], 0.05, **{**kwargs, "baseline": baseline[i:i + 1]}).sigma_max
                        for i in range(3)])
    torch.testing.assert_close(batch, single, rtol=1e-7, atol=0)
    order = torch.tensor([2, 0, 1])
    shuffled = region_bound(model, x[order], 0.05, **{**kwargs, "baseline": baseline[order]}).sigma_max
    torch.testing.assert_close(shuffled, batch[order], rtol=1e-7, atol=0)


def test_restarts_only_add():
    model, x = _cnn_case(batch=2)
    one = region_bound(model, x, 0.1, steps=4, tol=1e-10)
    more = region_bound(model, x, 0.1, steps=4, restarts=3, tol=1e-10)
    assert (more.sigma_max >= one.sigma_max * (1 - 1e-9)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_float32_and_devices_agree_with_float64_cpu(device):
    model, x = _cnn_case(batch=2)
    reference = region_bound(model, x, 0.05, steps=4, tol=1e-8)
    fast = region_bound(copy.deepcopy(model).float().to(device), x.float().to(device), 0.05, steps=4, tol=1e-5)
    assert fast.sigma_max.dtype == torch.float32 and fast.sigma_max.device.type == device
    torch.testing.assert_close(fast.sigma_max.cpu().double(), reference.sigma_max, rtol=1e-3, atol=0)


def test_bad_inputs_get_clear_errors():
    model, x = _cnn_case(batch=1)
    with pytest.raises(ValueError, match="eps"):
        region_bound(model, x, 0.0)
    with pytest.raises(ValueError, match="norm"):
        region_bound(model, x, 0.1, "l1")
    with pytest.raises(ValueError, match="NaN"):
        region_bound(model, torch.full_like(x, float("nan")), 0.1)
    with pytest.raises(ConfigError, match="steps"):
        region_bound(model, x, 0.1, steps=0)
    with pytest.raises(ConfigError, match="restarts"):
        region_bound(model, x, 0.1, restarts=0)
    relu = small_cnn(side=6, activation="relu")
    with pytest.raises(ValueError, match="surrogate_beta"):
        region_bound(relu, x, 0.1)
    r = region_bound(relu, x, 0.1, surrogate_beta=5.0, steps=2)  # the surrogate's curvature, as the point bound
    assert r.sigma_max.isfinite().all()
