"""Oracle tests of ``certified.certified_bound`` (auto_LiRPA golden-reference style: table-driven, seeded).

The promise: per sample, a PROVEN upper bound on ``sup ||A(x + d) - A(x)||_2`` over ``||d||_p <= eps`` intersected
with the box [0, 1]^n. The oracles share no code with the certificate:

1. a dense grid of the ball ∩ box on smooth 2-D and 3-D softplus MLPs (>= 1,000 random draws, zero failures);
2. one-hidden-layer networks with an explicit Hessian (``first_order``) and 2,000 random points of the ball ∩ box;
3. eps -> 0: the interval-Hessian route tends to the first-order bound (toys and a float64 MNIST CNN);
4. monotone in eps, route by route;
5. a batch equals one-by-one calls, per-sample eps tensors equal scalar calls;
6. attribution PGD never exceeds it (a small CNN; the float64 MNIST zoo model, marked slow);
7. refusals by name.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import data_mirror, small_cnn
from torch import nn

from attrbound_lite import attacks, models, toy, zoo
from attrbound_lite.attributions import InputXGradient, IntegratedGradients, Saliency
from attrbound_lite.certified import ROUTES, certified_bound

SLACK = 1e-9           # relative slack allowed between the oracle's worst case and the certificate
IG_STEPS = 4           # integrated gradients' Riemann points in the grid oracle (same in the certificate)
EPS_LIST = (1e-3, 0.01, 0.05, 0.2, 0.5)
ATTRIBUTIONS = ("saliency", "input_x_gradient", "integrated_gradients")
NORMS = ("l2", "linf")
GRID_POINTS = {2: 60, 3: 20}   # per coordinate: 60 x 60 in 2-D, 20^3 in 3-D
DRAWS_PER_CASE = 14           # 12 models x 3 attributions x 2 norms x 14 = 1,008 draws


# --------------------------------------------------------------------------- helpers
def softplus_mlp(d: int, h: int, beta: float, seed: int, layers: int = 2) -> nn.Module:
    """``Linear(d, h), Softplus(beta), [Linear(h, h), Softplus(beta)], Linear(h, 2)``, float64, N(0, 1) weights."""
    g = torch.Generator().manual_seed(seed)
    mods: list[nn.Module] = [nn.Linear(d, h), nn.Softplus(beta)]
    if layers == 2:
        mods += [nn.Linear(h, h), nn.Softplus(beta)]
    model = nn.Sequential(*mods, nn.Linear(h, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (1.0 if p.ndim == 2 else 0.5))
    return model.eval()


def ig_steps(name: str) -> dict:
    """The certificate's options for ``name``: the oracle's Riemann points for integrated gradients, else none."""
    return {"n_steps": IG_STEPS} if name == "integrated_gradients" else {}


def explainer(name: str, model: nn.Module, n_steps: int = IG_STEPS):
    if name == "saliency":
        return Saliency(model)
    if name == "input_x_gradient":
        return InputXGradient(model)
    return IntegratedGradients(model, n_steps=n_steps)


def random_inputs(k: int, d: int, g: torch.Generator) -> torch.Tensor:
    """k points of [0, 1]^d: uniform, with coordinates snapped to the faces; the first is a corner, the second on a
    face."""
    x = torch.rand(k, d, generator=g, dtype=torch.float64)
    snap = torch.rand(k, d, generator=g) < 0.3
    faces = torch.randint(0, 2, (k, d), generator=g).double()
    x = torch.where(snap, faces, x)
    x[0] = faces[0]
    x[1, 0] = faces[1, 0]
    return x


def ball_box_grid(x: torch.Tensor, eps: float, norm: str, points: int, g: torch.Generator,
                  sphere: int = 256) -> torch.Tensor:
    """A dense grid of ``B_p(x, eps) ∩ [0, 1]^d`` (points of the bounding box filtered to the ball), with, for l2,
    ``sphere`` points of the sphere pulled into the box (clamping keeps them in the ball: |clamp(z)_j - x_j| <=
    |z_j - x_j| for x in the box)."""
    d = x.numel()
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    axes = [torch.linspace(float(lo[j]), float(hi[j]), points, dtype=torch.float64) for j in range(d)]
    z = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    if norm == "linf":
        return z  # the ball ∩ box is the box [lo, hi]: the grid holds its corners and faces
    z = z[(z - x).norm(dim=1) <= eps]
    u = torch.randn(sphere, d, generator=g, dtype=torch.float64)
    on_sphere = (x + eps * u / u.norm(dim=1, keepdim=True)).clamp(0, 1)
    return torch.cat([z, on_sphere])


def worst_deviation(model, name, x, points_per_sample, target):
    """``max_z ||A(z) - A(x_i)||_2`` over each sample's points, all attributions in one batch."""
    exp = explainer(name, model)
    idx = torch.cat([torch.full((p.shape[0],), i, dtype=torch.long) for i, p in enumerate(points_per_sample)])
    z = torch.cat(points_per_sample)
    a_x = exp.attribute(x, target=target).detach()
    a_z = exp.attribute(z, target=target[idx]).detach()
    dev = (a_z - a_x[idx]).flatten(1).norm(dim=1)
    return torch.zeros(x.shape[0], dtype=dev.dtype).scatter_reduce(0, idx, dev, "amax", include_self=True)


def sample_ball_box(x: torch.Tensor, eps: torch.Tensor, norm: str, count: int, g: torch.Generator) -> torch.Tensor:
    """``count`` random points of each ``B_p(x_i, eps_i) ∩ [0, 1]^n``: (B * count, n), sample-major. Uniform in the
    ball (l2: direction times radius U^(1/n); half of them on the sphere), then clamped into the box."""
    b, n = x.shape
    if norm == "l2":
        u = torch.randn(b, count, n, generator=g, dtype=x.dtype)
        u = u / u.norm(dim=2, keepdim=True)
        r = torch.rand(b, count, 1, generator=g, dtype=x.dtype) ** (1 / n)
        r[:, : count // 2] = 1.0
        d = u * r
    else:
        d = torch.rand(b, count, n, generator=g, dtype=x.dtype) * 2 - 1
        d[:, : count // 2] = d[:, : count // 2].sign()  # vertices of the cube
    return (x[:, None] + eps.view(b, 1, 1) * d).clamp(0, 1).reshape(b * count, n)


# --------------------------------------------------------------------------- 1. dense-grid oracle
GRID_CASES = [(d, h, beta) for d in (2, 3) for h in (4, 8) for beta in (1.0, 5.0, 10.0)]


@pytest.mark.parametrize("attribution", ATTRIBUTIONS)
@pytest.mark.parametrize("d", (2, 3))
def test_dense_grid_oracle_never_exceeds_the_certificate(d, attribution):
    """Zero failures over 12 models x 3 attributions x 2 norms x 14 draws (1,008 draws in all, 168 per case)."""
    failures, draws = [], 0
    for case, (dd, h, beta) in enumerate(GRID_CASES):
        if dd != d:
            continue
        model = softplus_mlp(d, h, beta, seed=100 + case)
        for k, norm in enumerate(NORMS):
            g = torch.Generator().manual_seed(1000 * case + 10 * k + ATTRIBUTIONS.index(attribution))
            x = random_inputs(DRAWS_PER_CASE, d, g)
            eps = torch.tensor(EPS_LIST, dtype=torch.float64)[torch.randint(0, len(EPS_LIST), (DRAWS_PER_CASE,),
                                                                            generator=g)]
            eps[: len(EPS_LIST)] = torch.tensor(EPS_LIST, dtype=torch.float64)
            cert = certified_bound(model, x, eps, norm, attribution, **ig_steps(attribution), chunk_size=DRAWS_PER_CASE)
            grids = [ball_box_grid(x[i], float(eps[i]), norm, GRID_POINTS[d], g) for i in range(x.shape[0])]
            worst = worst_deviation(model, attribution, x, grids, cert.target)
            bound = cert.euclidean.detach()
            assert torch.isfinite(bound).all()
            draws += x.shape[0]
            for i in torch.nonzero(worst > bound * (1 + SLACK)).flatten().tolist():
                failures.append(f"d={d} h={h} beta={beta} {norm} x={x[i].tolist()} eps={float(eps[i])}: grid "
                                f"{float(worst[i]):.6g} > certificate {float(bound[i]):.6g} ({cert.route[i]})")
    assert draws == 6 * len(NORMS) * DRAWS_PER_CASE
    assert not failures, f"{len(failures)} of {draws} draws exceed the certificate:\n" + "\n".join(failures[:20])


# --------------------------------------------------------------------------- 2. explicit Hessians
def explicit_hessian(model: nn.Sequential, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``H(x) = W^T diag(v_c * sigma''(W x + b)) W`` for ``f = V softplus_beta(W x + b) + c``, with PyTorch's
    softplus (second derivative 0 where beta a > 20)."""
    first, act, last = model[0], model[1], model[2]
    w, b, beta = first.weight.detach(), first.bias.detach(), float(act.beta)
    v = last.weight.detach()[target]                       # (B, h)
    a = x @ w.T + b
    s = torch.sigmoid(beta * a)
    d2 = torch.where(beta * a > 20, torch.zeros_like(a), beta * s * (1 - s))
    return torch.einsum("hi,bh,hj->bij", w, v * d2, w)


HESSIAN_CASES = [(2, 4, 1.0), (2, 16, 10.0), (3, 8, 5.0), (4, 6, 3.0), (5, 12, 10.0), (6, 3, 1.0)]


@pytest.mark.parametrize("d,h,beta", HESSIAN_CASES)
def test_one_hidden_layer_first_order_and_random_points(d, h, beta):
    g = torch.Generator().manual_seed(d * 100 + h)
    model = softplus_mlp(d, h, beta, seed=7 * d + h, layers=1)
    x = random_inputs(5, d, g)
    eps = torch.tensor((1e-3, 0.01, 0.05, 0.2, 0.5), dtype=torch.float64)
    for norm in NORMS:
        cert = certified_bound(model, x, eps, norm, "saliency", chunk_size=8)
        hess = explicit_hessian(model, x, cert.target)
        # the explicit Hessian is the saliency Jacobian PyTorch differentiates (sanity of the formula)
        auto = torch.stack([torch.func.hessian(lambda z, c=int(c): model(z[None])[0, c])(x[i])
                            for i, c in enumerate(cert.target)])
        torch.testing.assert_close(hess, auto, rtol=1e-10, atol=1e-12)
        sigma = torch.linalg.matrix_norm(hess, 2)
        expected = eps * (sigma if norm == "l2" else torch.minimum(hess.abs().sum(2).norm(dim=1), math.sqrt(d) * sigma))
        first = cert.first_order.detach()
        # the certificate widens sigma_max by (1 + 1e-9) and is that of the analytic softplus: PyTorch's Softplus is
        # the identity where beta a > 20, which moves sigma'' there by at most beta * 2.1e-9
        ratio = first / expected
        assert (ratio >= 1 - 1e-8).all() and (ratio - 1 <= 1e-8).all(), \
            f"{norm}: first_order / (eps ||H(x)||) - 1 = {(ratio - 1).tolist()}"
        # the certificate is at least the deviation at 2,000 random points of each ball ∩ box
        z = sample_ball_box(x, eps, norm, 2000, g)
        idx = torch.arange(x.shape[0]).repeat_interleave(2000)
        a_x = Saliency(model).attribute(x, target=cert.target).detach()
        a_z = Saliency(model).attribute(z, target=cert.target[idx]).detach()
        dev = (a_z - a_x[idx]).norm(dim=1).view(x.shape[0], 2000).amax(1)
        bound = cert.euclidean.detach()
        assert (dev <= bound * (1 + SLACK)).all(), f"{norm}: sampled {dev.tolist()} > certificate {bound.tolist()}"


# --------------------------------------------------------------------------- 3. eps -> 0
@pytest.mark.parametrize("attribution", ATTRIBUTIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_interval_hessian_tends_to_first_order_on_the_toys(norm, attribution):
    g = torch.Generator().manual_seed(3)
    for seed, beta in ((0, 1.0), (1, 5.0), (2, 10.0)):
        model = toy.toy_mlp(seed=seed, hidden=16, beta=beta)
        x = random_inputs(8, 2, g)
        cert = certified_bound(model, x, 1e-4, norm, attribution, **ig_steps(attribution), chunk_size=8)
        ratio = (cert.routes["interval_hessian"] / cert.first_order).detach()
        assert (ratio >= 1).all() and (ratio <= 1.05).all(), \
            f"toy_mlp(seed={seed}, beta={beta}) {norm} {attribution}: interval_hessian / first_order = {ratio.tolist()}"


# l-infinity radii move an image much further (up to sqrt(n) eps in l2): the limit is checked at a smaller radius
CNN_LIMIT_EPS = {"l2": 1e-4, "linf": 1e-5}


@pytest.mark.parametrize("norm", NORMS)
def test_interval_hessian_tends_to_first_order_on_the_mnist_reference_model(norm, mnist_four):
    """The trained MNIST reference model (float64): the interval-Hessian route within 5 % of the first-order bound
    at l2 radius 1e-4 and l-infinity radius 1e-5 (l2 scale up to 2.8e-4)."""
    model, _ = zoo.load_reference("mnist-natural", device="cpu")
    model = model.double()
    x = mnist_four[0][:2].double()
    cert = certified_bound(model, x, CNN_LIMIT_EPS[norm], norm, "saliency", routes=("interval_hessian",))
    ratio = cert.routes["interval_hessian"] / cert.first_order
    assert (ratio >= 1).all() and (ratio <= 1.05).all(), \
        f"mnist-natural {norm}: interval_hessian / first_order at eps={CNN_LIMIT_EPS[norm]} = {ratio.tolist()}"


# --------------------------------------------------------------------------- 4. monotone in eps
RADII = torch.tensor((1e-3, 0.01, 0.03, 0.1, 0.3, 0.6), dtype=torch.float64)


@pytest.mark.parametrize("attribution", ATTRIBUTIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_monotone_in_eps(norm, attribution):
    g = torch.Generator().manual_seed(5)
    for d, h, beta in ((2, 8, 5.0), (3, 4, 10.0), (3, 8, 1.0)):
        model = softplus_mlp(d, h, beta, seed=d + h)
        for x in random_inputs(3, d, g):
            cert = certified_bound(model, x.expand(len(RADII), d).contiguous(), RADII, norm, attribution,
                                   **ig_steps(attribution), chunk_size=len(RADII))
            for route in ROUTES:
                values = cert.routes[route].detach()
                if not torch.isfinite(values).all():
                    continue
                assert (values[1:] >= values[:-1]).all(), \
                    f"d={d} beta={beta} x={x.tolist()} {route}: not monotone over {RADII.tolist()}: {values.tolist()}"
            euclid = cert.euclidean.detach()
            assert (euclid[1:] >= euclid[:-1]).all(), f"x={x.tolist()}: {euclid.tolist()}"


# --------------------------------------------------------------------------- 5. batch equals one by one
def _batch_cases():
    g = torch.Generator().manual_seed(6)
    yield "mlp3", softplus_mlp(3, 8, 5.0, seed=11), random_inputs(3, 3, g)
    yield "cnn", small_cnn(seed=2, beta=3.0), torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("attribution", ATTRIBUTIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_batch_equals_one_by_one(norm, attribution):
    eps_each = torch.tensor((0.01, 0.05, 0.2), dtype=torch.float64)
    ig = ig_steps(attribution)
    for name, model, x in _batch_cases():
        batch = certified_bound(model, x, 0.05, norm, attribution, **ig)
        single = torch.cat([certified_bound(model, x[i:i + 1], 0.05, norm, attribution, **ig).euclidean
                            for i in range(3)])
        torch.testing.assert_close(batch.euclidean, single, rtol=1e-10, atol=0, msg=f"{name}: batch != one by one")
        per_sample = certified_bound(model, x, eps_each, norm, attribution, **ig)
        scalar = torch.stack([certified_bound(model, x, float(e), norm, attribution, **ig).euclidean[i]
                              for i, e in enumerate(eps_each)])
        torch.testing.assert_close(per_sample.euclidean, scalar, rtol=1e-10, atol=0,
                                   msg=f"{name}: per-sample eps != scalar calls")
        for route in ROUTES:
            torch.testing.assert_close(per_sample.routes[route], torch.stack([
                certified_bound(model, x[i:i + 1], float(e), norm, attribution, **ig).routes[route][0]
                for i, e in enumerate(eps_each)]), rtol=1e-10, atol=0, msg=f"{name}: route {route}")


# --------------------------------------------------------------------------- 6. no attack exceeds it
@pytest.mark.parametrize("attribution", ATTRIBUTIONS)
@pytest.mark.parametrize("norm,eps", (("l2", 0.5), ("linf", 0.05)))
def test_attribution_pgd_never_exceeds_it_on_a_small_cnn(norm, eps, attribution):
    model = small_cnn(seed=3, beta=3.0)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    exp = explainer(attribution, model)
    result = attacks.AttributionPGD(model, exp, eps=eps, alpha=eps / 4, steps=20, norm=norm, restarts=2)(x, y)
    cert = certified_bound(model, x, eps, norm, attribution, target=y, **ig_steps(attribution))
    reached = result.deviation.euclidean
    assert result.label_kept.all()
    assert (reached <= cert.euclidean.detach() * (1 + SLACK)).all(), \
        f"attack {reached.tolist()} > certificate {cert.euclidean.tolist()}"


@pytest.fixture(scope="module")
def mnist_four(data_root):
    from attrbound_lite.data import load_dataset
    ds = load_dataset("mnist", "test", root=data_root, mirror=data_mirror(), download=False)
    return ds.images[:4].double(), ds.labels[:4]


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps", (("l2", 0.05), ("linf", 1 / 255)))
def test_attribution_pgd_never_exceeds_it_on_the_zoo_model(mnist_four, norm, eps):
    m, _ = zoo.load_reference("mnist-natural", device="cpu")
    m = m.double()
    x, y = mnist_four
    result = attacks.AttributionPGD(m, "saliency", eps=eps, alpha=eps / 4, steps=20, norm=norm)(x, y)
    cert = certified_bound(m, x, eps, norm, "saliency", target=y)
    reached = result.deviation.euclidean
    kept = result.label_kept
    assert kept.any()
    assert (reached[kept] <= cert.euclidean.detach()[kept] * (1 + SLACK)).all(), \
        f"attack {reached.tolist()} > certificate {cert.euclidean.tolist()}"


# --------------------------------------------------------------------------- 7. refusals
def _x(n=2):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


@pytest.mark.parametrize("surrogate_beta", (None, 10.0))
def test_max_pooling_is_refused_by_name(surrogate_beta):
    """Refused with the module's name ('2' in the Sequential) and what it is."""
    with pytest.raises(ValueError, match=r"'2'") as err:
        certified_bound(small_cnn(pool="max"), _x(), 0.01, surrogate_beta=surrogate_beta)
    assert "MaxPool2d" in str(err.value) or "max-pool" in str(err.value), str(err.value)


def test_batch_norm_is_refused_by_name():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Softplus(3.0), nn.Flatten(),
                          nn.Linear(128, 3)).double().eval()
    with pytest.raises(ValueError, match=r"BatchNorm2d") as err:
        certified_bound(model, _x(), 0.01)
    assert "'1'" in str(err.value)


def test_relu_needs_a_surrogate_and_says_so():
    relu = small_cnn(activation="relu", seed=4)
    with pytest.raises(ValueError, match="surrogate_beta"):
        certified_bound(relu, _x(), 0.01)
    cert = certified_bound(relu, _x(), 0.01, surrogate_beta=10.0)
    assert cert.surrogate is True and torch.isfinite(cert.euclidean).all()
    smooth = certified_bound(models.smooth_relu(relu, 10.0), _x(), 0.01, target=cert.target)
    assert smooth.surrogate is False
    torch.testing.assert_close(cert.euclidean, smooth.euclidean, rtol=1e-12, atol=0)
    assert certified_bound(small_cnn(seed=4), _x(), 0.01, surrogate_beta=10.0).surrogate is False


@pytest.mark.parametrize("kwargs,match", [
    (dict(routes=("bogus",)), "bogus"),
    (dict(routes=()), "route"),
    (dict(routes=("interval_hessian", "nope")), "nope"),
    (dict(attribution="gradcam"), "gradcam"),
    (dict(attribution="smoothgrad"), "smoothgrad"),
])
def test_unknown_route_or_attribution_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        certified_bound(small_cnn(), _x(), 0.01, **kwargs)


class _Residual(nn.Sequential):
    """A Sequential whose forward is not the chain of its children."""

    def forward(self, x):
        return super().forward(x) + x.sum(1, keepdim=True)


class _ScaledLinear(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize("model, match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), nn.Softplus(), nn.Flatten(),
                   nn.Linear(2 * 4 * 4, 2)).double(), "circular"),
    (nn.Sequential(_Residual(nn.Linear(3, 3), nn.Softplus(), nn.Linear(3, 1)), nn.Linear(1, 2)).double(), "_Residual"),
    (nn.Sequential(_ScaledLinear(3, 3), nn.Softplus(), nn.Linear(3, 2)).double(), "overrides the forward pass"),
    (nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)).double(), "no softplus"),
])
def test_networks_it_would_misread_are_refused(model, match):
    """Other padding, Sequential or layer subclasses with their own forward, and an affine model."""
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64) if isinstance(model[0], nn.Conv2d) else \
        torch.rand(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        certified_bound(model, x, 0.05)


def test_an_integrated_gradients_instance_keeps_its_steps_and_baseline():
    model = softplus_mlp(3, 8, 5.0, seed=1)
    x = torch.rand(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    given = certified_bound(model, x, 0.05, "l2", IntegratedGradients(model, n_steps=3, baseline=0.25))
    named = certified_bound(model, x, 0.05, "l2", "integrated_gradients", n_steps=3, baseline=0.25)
    torch.testing.assert_close(given.euclidean, named.euclidean, rtol=0, atol=0)
    torch.testing.assert_close(given.attribution_norm,
                               IntegratedGradients(model, 3, 0.25).attribute(x).flatten(1).norm(dim=1))


def test_a_per_sample_baseline_follows_the_chunks():
    """A (B, ...) IG baseline with chunks smaller than the batch: the same as one chunk."""
    model = softplus_mlp(3, 4, 5.0, seed=3)
    g = torch.Generator().manual_seed(4)
    x, b = torch.rand(4, 3, dtype=torch.float64, generator=g), torch.rand(4, 3, dtype=torch.float64, generator=g)
    one = certified_bound(model, x, 0.05, "linf", "integrated_gradients", n_steps=3, baseline=b, chunk_size=4)
    chunked = certified_bound(model, x, 0.05, "linf", "integrated_gradients", n_steps=3, baseline=b, chunk_size=1)
    torch.testing.assert_close(one.euclidean, chunked.euclidean, rtol=1e-12, atol=0)


def test_the_operator_norms_follow_changed_weights():
    """The cached operator norms are keyed on the weights' contents: an in-place change is seen."""
    model = softplus_mlp(3, 8, 5.0, seed=5, layers=1)
    x = torch.rand(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    before = certified_bound(model, x, 0.1, routes=("global_curvature",)).euclidean
    with torch.no_grad():
        model[0].weight.data.mul_(3)  # does not bump the tensor's version counter
    after = certified_bound(model, x, 0.1, routes=("global_curvature",)).euclidean
    fresh = certified_bound(copy.deepcopy(model), x, 0.1, routes=("global_curvature",)).euclidean
    torch.testing.assert_close(after, fresh)
    assert (after > before).all()


def test_global_curvature_alone_is_refused_for_other_maps():
    model = softplus_mlp(3, 4, 5.0, seed=7)
    with pytest.raises(ValueError, match="saliency map only"):
        certified_bound(model, torch.rand(1, 3, dtype=torch.float64), 0.1, attribution="input_x_gradient",
                        routes=("global_curvature",))
