"""Matrix-free sigma_max and the Jacobian operators against exact Jacobians (torch.func) and their SVD."""

import copy

import pytest
import torch
from conftest import DEVICES, oracle_jacobian, small_cnn

from attrbound_lite.attributions import Attribution, get_explainer
from attrbound_lite.bounds import attribution_bound, dense_jacobian, spectral_norm
from attrbound_lite.jacobians import HessianAtPoints, JacobianOperator

ATTRIBUTIONS = ["saliency", "input_x_gradient", "integrated_gradients"]
N_STEPS = 6


def _setup(attribution, dtype=torch.float64, in_ch=1, side=8, seed=0, batch=3):
    model = small_cnn(in_ch=in_ch, side=side, seed=seed, dtype=dtype)
    x = torch.rand(batch, in_ch, side, side, generator=torch.Generator().manual_seed(seed + 10), dtype=dtype)
    target = model(x).argmax(1)
    options = {"n_steps": N_STEPS} if attribution == "integrated_gradients" else {}
    return model, x, target, options


@pytest.fixture(scope="module", params=ATTRIBUTIONS)
def oracle_case(request):
    attribution = request.param
    model, x, target, options = _setup(attribution, in_ch=2)
    jac = oracle_jacobian(model, x, target, attribution, N_STEPS)
    return attribution, model, x, target, options, jac


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_sigma_max_matches_svd_float64(oracle_case, method):
    attribution, model, x, target, options, jac = oracle_case
    expected = torch.linalg.svdvals(jac)[:, 0]
    tol, max_iter = (1e-10, 300) if method == "lanczos" else (1e-12, 20000)
    result = attribution_bound(model, x, 0.1, attribution=attribution, method=method, tol=tol, max_iter=max_iter,
                               **options)
    rel = ((result.sigma_max - expected).abs() / expected).max().item()
    # Power iteration stops on a stalled estimate; its error ~ tol^(1/2) relative when gaps are small.
    assert rel < (1e-6 if method == "lanczos" else 1e-5), rel
    assert result.converged.all()
    assert (result.products == result.iterations * (1 if attribution == "saliency" else 2)).all()


def test_sigma_max_matches_svd_float32(oracle_case):
    attribution, model, x, target, options, jac = oracle_case
    expected = torch.linalg.svdvals(jac)[:, 0]
    result = attribution_bound(copy.deepcopy(model).float(), x.float(), 0.1, attribution=attribution, tol=1e-5,
                               **options)
    assert result.sigma_max.dtype == torch.float32
    assert ((result.sigma_max.double() - expected).abs() / expected).max().item() < 1e-3


def test_exact_method_matches_oracle(oracle_case):
    attribution, model, x, target, options, jac = oracle_case
    explainer = get_explainer(attribution, model, **options)
    torch.testing.assert_close(dense_jacobian(explainer, x, target), jac, rtol=1e-9, atol=1e-12)
    result = attribution_bound(model, x, 0.1, attribution=attribution, method="exact", **options)
    torch.testing.assert_close(result.sigma_max, torch.linalg.svdvals(jac)[:, 0], rtol=1e-10, atol=0)


def test_operator_products_match_oracle(oracle_case):
    """J v, J^T u and J^T J v of the matrix-free operator equal the oracle matrix products."""
    attribution, model, x, target, options, jac = oracle_case
    op = get_explainer(attribution, model, **options).jacobian_operator(x, target)
    gen = torch.Generator().manual_seed(3)
    v = torch.randn(x.shape[0], op.n, generator=gen, dtype=x.dtype)
    torch.testing.assert_close(op.matvec(v), torch.einsum("bij,bj->bi", jac, v), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(op.rmatvec(v), torch.einsum("bji,bj->bi", jac, v), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(op.gram(v), torch.einsum("bji,bjk,bk->bi", jac, jac, v), rtol=1e-9, atol=1e-12)


def test_analytic_jacobian_forms():
    """REFERENCE section 3: J_ixg = diag(g) + diag(x) H and
    J_ig = diag(mean_k g(z_k)) + diag(x - b) (1/m) sum_k (k/m) H(z_k), against jacrev of the attributions."""
    model, x, target, _ = _setup("saliency", batch=2)
    n, m = x[0].numel(), N_STEPS
    for i in range(x.shape[0]):
        xi, c = x[i], int(target[i])

        def logit(z, c=c):
            return model(z[None])[0, c]

        grad = lambda z: torch.func.grad(logit)(z).reshape(n)  # noqa: E731
        hess = lambda z: torch.func.hessian(logit)(z).reshape(n, n)  # noqa: E731
        flat = xi.reshape(n)
        analytic_ixg = torch.diag(grad(xi)) + torch.diag(flat) @ hess(xi)
        torch.testing.assert_close(analytic_ixg, oracle_jacobian(model, x[i:i + 1], target[i:i + 1],
                                                                 "input_x_gradient")[0])
        points = [xi * k / m for k in range(1, m + 1)]
        analytic_ig = torch.diag(sum(grad(z) for z in points) / m) + torch.diag(flat) @ (
            sum((k / m) * hess(z) for k, z in zip(range(1, m + 1), points, strict=True)) / m)
        torch.testing.assert_close(analytic_ig, oracle_jacobian(model, x[i:i + 1], target[i:i + 1],
                                                                "integrated_gradients", m)[0])


def test_ig_chunked_operator_equals_unchunked():
    model, x, target, _ = _setup("integrated_gradients")
    v = torch.randn(x.shape[0], x[0].numel(), dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    full = get_explainer("integrated_gradients", model, n_steps=5).jacobian_operator(x, target)
    chunked = get_explainer("integrated_gradients", model, n_steps=5, internal_batch_size=4).jacobian_operator(
        x, target)
    torch.testing.assert_close(chunked.gram(v), full.gram(v))


def test_ig_baseline_passes_through():
    model, x, target, _ = _setup("integrated_gradients", batch=2)
    baseline = 0.5
    bound = attribution_bound(model, x, 0.1, attribution="integrated_gradients", method="exact", n_steps=4,
                              baseline=baseline)
    with_zero = attribution_bound(model, x, 0.1, attribution="integrated_gradients", method="exact", n_steps=4)
    assert not torch.allclose(bound.sigma_max, with_zero.sigma_max)
    # IG from baseline b is IG of the shifted model z -> f(z + b) from 0, at x - b: an independent oracle
    oracle = oracle_jacobian(_Shifted(model, baseline), x - baseline, target, "integrated_gradients", 4)
    torch.testing.assert_close(bound.sigma_max, torch.linalg.svdvals(oracle)[:, 0])


class _Shifted(torch.nn.Module):
    def __init__(self, model, shift):
        super().__init__()
        self.model, self.shift = model, shift

    def forward(self, z):
        return self.model(z + self.shift)


def test_lanczos_beats_power_in_products():
    model, x, target, _ = _setup("saliency", side=10, batch=4)
    lz = attribution_bound(model, x, 0.1, tol=1e-6, max_iter=500)
    pw = attribution_bound(model, x, 0.1, method="power", tol=1e-6, max_iter=5000)
    assert lz.products.sum() < pw.products.sum()


@pytest.mark.parametrize("attribution", ATTRIBUTIONS)
def test_bound_is_deterministic_and_batch_independent(attribution):
    """Samples converge at different iterations, so the running-rows operator is rebuilt on subsets; the
    result must equal sample-by-sample runs."""
    model, x, target, options = _setup(attribution, batch=6)
    a = attribution_bound(model, x, 0.1, attribution=attribution, tol=1e-10, max_iter=200, **options)
    assert len(set(a.iterations.tolist())) > 1  # the shrinking path is exercised
    b = attribution_bound(model, x, 0.1, attribution=attribution, tol=1e-10, max_iter=200, **options)
    assert torch.equal(a.sigma_max, b.sigma_max)
    single = torch.cat([attribution_bound(model, x[i:i + 1], 0.1, attribution=attribution, tol=1e-10, max_iter=200,
                                          **options).sigma_max for i in range(6)])
    torch.testing.assert_close(a.sigma_max, single, rtol=1e-8, atol=0)


def test_per_sample_ig_baselines():
    """A (B, ...) baseline follows its samples through the shrinking operator and the exact oracle."""
    model, x, target, _ = _setup("integrated_gradients", batch=6)
    baseline = torch.rand(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(8))
    lz = attribution_bound(model, x, 0.1, attribution="integrated_gradients", n_steps=4, baseline=baseline,
                           tol=1e-10, max_iter=200)
    ex = attribution_bound(model, x, 0.1, attribution="integrated_gradients", n_steps=4, baseline=baseline,
                           method="exact")
    torch.testing.assert_close(lz.sigma_max, ex.sigma_max, rtol=1e-8, atol=0)
    one = attribution_bound(model, x[2:3], 0.1, attribution="integrated_gradients", n_steps=4,
                            baseline=baseline[2:3], method="exact")
    torch.testing.assert_close(ex.sigma_max[2:3], one.sigma_max)


@pytest.mark.parametrize("attribution", ["saliency", "input_x_gradient"])
def test_power_iteration_is_accurate_at_the_default_tolerance(attribution):
    model, x, target, _ = _setup(attribution, side=10, batch=4)
    exact = attribution_bound(model, x, 0.1, attribution=attribution, method="exact").sigma_max
    power = attribution_bound(model, x, 0.1, attribution=attribution, method="power", max_iter=5000)
    assert power.converged.all()
    assert ((power.sigma_max - exact).abs() / exact).max() < 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_device(device):
    model, x, target, _ = _setup("saliency", dtype=torch.float32)
    result = attribution_bound(model.to(device), x.to(device), 0.1, norm="linf")
    assert result.sigma_max.device.type == device
    cpu = spectral_norm(model.cpu(), x, tol=1e-6)
    torch.testing.assert_close(result.sigma_max.cpu(), cpu, rtol=1e-3, atol=0)


class _SmoothGrad(Attribution):
    """A new attribution defined outside the package: SmoothGrad with fixed noise,
    ``A(x) = (1/s) sum_j grad f_c(x + noise_j)``, whose Jacobian ``(1/s) sum_j H(x + noise_j)`` is symmetric."""

    name = "smoothgrad"

    def __init__(self, model, noise):
        super().__init__(model)
        self.noise = noise  # (s, *input shape of one sample)

    @property
    def path_points(self):
        return self.noise.shape[0]

    def _points(self, inputs):
        return (inputs[None] + self.noise[:, None]).reshape(-1, *inputs.shape[1:])  # (s * B, ...), noise-major

    def attribute_with_logits(self, inputs, target=None, create_graph=False):
        logits = self.model(inputs)
        target = logits.argmax(1) if target is None else target
        s = self.noise.shape[0]
        points = self._points(inputs)
        with torch.enable_grad():
            if not points.requires_grad:
                points = points.detach().requires_grad_(True)
            selected = self.model(points).gather(1, target.repeat(s)[:, None]).sum()
            (grad,) = torch.autograd.grad(selected, points, create_graph=create_graph)
        return grad.view(s, *inputs.shape).mean(0), logits

    def jacobian_operator(self, inputs, target):
        s = self.noise.shape[0]
        hessian = HessianAtPoints(self.model, self._points(inputs.detach()), target.repeat(s))

        def matvec(v):
            return hessian.hvp(v.repeat(s, *([1] * (v.ndim - 1)))).view(s, *inputs.shape).mean(0)

        return JacobianOperator(inputs, hessian, matvec, symmetric=True)


def test_new_attribution_plugs_into_the_bounds():
    """An attribution that provides ``jacobian_operator`` gets matrix-free bounds without any change to
    bounds.py; the oracle is the dense Jacobian of its own ``attribute`` (method="exact") and its SVD."""
    model, x, target, _ = _setup("saliency", in_ch=2)
    noise = 0.05 * torch.randn(4, *x.shape[1:], generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    explainer = _SmoothGrad(model, noise)
    exact = attribution_bound(model, x, 0.1, attribution=explainer, method="exact")
    jac = dense_jacobian(explainer, x, target)
    torch.testing.assert_close(jac, jac.transpose(1, 2), rtol=1e-8, atol=1e-10)  # symmetric, as declared
    for norm in ("l2", "linf"):
        fast = attribution_bound(model, x, 0.1, norm=norm, attribution=explainer, tol=1e-10, max_iter=300)
        torch.testing.assert_close(fast.sigma_max, exact.sigma_max, rtol=1e-6, atol=0)
        assert fast.attribution == "smoothgrad"
    linf = attribution_bound(model, x, 0.1, norm="linf", attribution=explainer, method="exact")
    torch.testing.assert_close(linf.linf_abs_rowsum, 0.1 * jac.abs().sum(2).norm(dim=1))


def test_attribution_without_operator_gets_a_clear_error():
    model, x, _, _ = _setup("saliency")

    class Plain(Attribution):
        def attribute_with_logits(self, inputs, target=None, create_graph=False):
            return get_explainer("saliency", self.model).attribute_with_logits(inputs, target, create_graph)

    with pytest.raises(NotImplementedError, match="no matrix-free Jacobian.*method='exact'"):
        attribution_bound(model, x, 0.1, attribution=Plain(model))
    exact = attribution_bound(model, x, 0.1, attribution=Plain(model), method="exact")
    torch.testing.assert_close(exact.sigma_max, attribution_bound(model, x, 0.1, method="exact").sigma_max)
