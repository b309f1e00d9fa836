import math

import numpy as np
import pytest
import torch
from conftest import DEVICES
from scipy import stats

from attrbound_lite.metrics import (
    cosine,
    euclidean,
    kendall_tau,
    mass_center,
    mass_center_shift,
    pearson,
    saliency_map,
    spearman,
    topk_intersection,
)

PAIR_METRICS = [euclidean, cosine, pearson, spearman, kendall_tau, mass_center_shift]
DTYPES = [torch.float32, torch.float64]


def _rand(*shape, dtype=torch.float64, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------- identical / reversed
@pytest.mark.parametrize("dtype", DTYPES)
def test_identical_maps(dtype):
    a = _rand(3, 2, 5, 6, dtype=dtype) + 0.1
    exp = {euclidean: 0.0, cosine: 1.0, pearson: 1.0, spearman: 1.0, kendall_tau: 1.0,
           mass_center_shift: 0.0}
    for f, v in exp.items():
        out = f(a, a.clone())
        assert out.shape == (3,) and out.dtype == dtype
        torch.testing.assert_close(out, torch.full((3,), v, dtype=dtype), atol=1e-6, rtol=0)
    torch.testing.assert_close(topk_intersection(a, a.clone(), 7), torch.ones(3, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reversed_and_negated(dtype):
    a = torch.stack([torch.arange(10.0), torch.arange(10.0) ** 2]).to(dtype)
    rev = a.flip(1)
    torch.testing.assert_close(spearman(a, rev), torch.full((2,), -1.0, dtype=dtype))
    torch.testing.assert_close(kendall_tau(a, rev), torch.full((2,), -1.0, dtype=dtype))
    torch.testing.assert_close(cosine(a, -a), torch.full((2,), -1.0, dtype=dtype))
    torch.testing.assert_close(pearson(a, -a), torch.full((2,), -1.0, dtype=dtype))
    # monotone transforms keep rank metrics at 1
    torch.testing.assert_close(spearman(a, a.exp()), torch.ones(2, dtype=dtype))
    torch.testing.assert_close(kendall_tau(a, a**3), torch.ones(2, dtype=dtype))


def test_hand_values():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(euclidean(a, b), torch.tensor([5.0, math.sqrt(2)]))
    torch.testing.assert_close(cosine(a, b), torch.tensor([0.0, 0.0]))
    # cosine conventions: both zero -> 1, exactly one zero -> 0
    z = torch.zeros(2, 3)
    torch.testing.assert_close(cosine(z, z), torch.ones(2))
    torch.testing.assert_close(cosine(z, torch.ones(2, 3)), torch.zeros(2))
    # huge / tiny values neither overflow nor underflow in float32
    big = torch.tensor([[1e30, 2e30, 3e30]])
    tiny = torch.tensor([[1e-38, 2e-38, 3e-38]])
    torch.testing.assert_close(cosine(big, tiny), torch.ones(1))
    # constant samples -> NaN for correlations
    c = torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
    d = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    for f in (pearson, spearman, kendall_tau):
        out = f(c, d)
        assert torch.isnan(out[0]) and out[1].item() == pytest.approx(1.0)


# ----------------------------------------------------------------------- oracles
@pytest.mark.parametrize("n", [2, 7, 40, 257])
def test_scipy_oracles_with_ties(n):
    g = torch.Generator().manual_seed(n)
    a = torch.randint(0, 5, (6, n), generator=g).double()
    b = torch.randint(0, 5, (6, n), generator=g).double()
    b[0] = a[0]  # identical sample
    b[1] = 4 - a[1]  # reversed sample
    b[2] = a[2] + torch.rand(n, generator=g, dtype=torch.float64)  # only a tied
    a3, b3 = a.view(6, 1, n), b.view(6, 1, n)  # non-trivial trailing shape
    ours = {"kendall": kendall_tau(a3, b3), "spearman": spearman(a3, b3),
            "pearson": pearson(a3, b3)}
    for i in range(6):
        x, y = a[i].numpy(), b[i].numpy()
        if len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
            for v in ours.values():
                assert torch.isnan(v[i])
            continue
        ref = {"kendall": stats.kendalltau(x, y)[0], "spearman": stats.spearmanr(x, y)[0],
               "pearson": stats.pearsonr(x, y)[0]}
        for key, r in ref.items():
            np.testing.assert_allclose(ours[key][i].item(), r, rtol=1e-6, atol=1e-12, err_msg=key)


def test_float32_matches_float64():
    a, b = _rand(4, 3, 8, 8, seed=1), _rand(4, 3, 8, 8, seed=2)
    a[:, :, :4] = 0.0  # ties
    for f in PAIR_METRICS:
        torch.testing.assert_close(f(a.float(), b.float()).double(), f(a, b), rtol=1e-4, atol=1e-5)


def test_kendall_chunking_matches_unchunked():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 6, (5, 2, 11), generator=g).double()
    b = torch.randint(0, 6, (5, 2, 11), generator=g).double()
    full = kendall_tau(a, b)
    for max_pairs in (1, 7, 22, 23, 60, 150, 10**9):
        chunked = kendall_tau(a, b, _max_pairs=max_pairs)
        torch.testing.assert_close(chunked, full, rtol=0, atol=1e-12)
    ref = [stats.kendalltau(x.flatten().numpy(), y.flatten().numpy())[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(full.numpy(), ref, rtol=1e-6)


# ------------------------------------------------------------------------- top-k
def test_topk_hand_constructed():
    a = torch.tensor([[9.0, 8.0, 7.0, 0.0, 0.5, 0.1], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    b = torch.tensor([[9.0, 8.0, 0.0, 7.0, 0.5, 0.1], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    torch.testing.assert_close(topk_intersection(a, b, 3), torch.tensor([2 / 3, 0.0]))
    torch.testing.assert_close(topk_intersection(a, b, 1), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(topk_intersection(a, b, 6), torch.tensor([1.0, 1.0]))
    # works on maps: top-2 pixels of 2x2 maps share one index
    m1 = torch.tensor([[[1.0, 0.9], [0.0, 0.1]]])
    m2 = torch.tensor([[[1.0, 0.0], [0.8, 0.1]]])
    torch.testing.assert_close(topk_intersection(m1, m2, 2), torch.tensor([0.5]))


# ------------------------------------------------------ saliency / centre of mass
def test_saliency_map():
    attr = torch.tensor([[[[1.0, -2.0], [0.0, 3.0]], [[-1.0, 0.0], [2.0, 1.0]]]])  # (1, 2, 2, 2)
    expected = torch.tensor([[[2.0, 2.0], [2.0, 4.0]]]) / 10.0
    torch.testing.assert_close(saliency_map(attr), expected)
    expected3 = torch.tensor([[[0.0, 2.0], [2.0, 4.0]]]) / 8.0  # (B, H, W): abs + normalise
    torch.testing.assert_close(saliency_map(attr.sum(1)), expected3)
    s = saliency_map(torch.randn(4, 3, 5, 7, generator=torch.Generator().manual_seed(0)))
    assert s.shape == (4, 5, 7) and (s >= 0).all()
    torch.testing.assert_close(s.sum(dim=(1, 2)), torch.ones(4))
    z = saliency_map(torch.zeros(2, 3, 4, 4))
    assert z.shape == (2, 4, 4) and (z == 0).all()


def test_mass_center_and_shift():
    m = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]],
                      [[0.0, 0.0, 3.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]])
    # sample 0: rows (0*1 + 1*2 + 2*1)/4 = 1, cols same = 1
    # sample 1: rows (0*3 + 1*1)/4 = 0.25, cols (2*3 + 2*1)/4 = 2
    torch.testing.assert_close(mass_center(m), torch.tensor([[1.0, 1.0], [0.25, 2.0]]))
    # (B, C, H, W) attributions go through saliency_map first; scale-invariant
    torch.testing.assert_close(mass_center(-5 * m[:, None]), mass_center(m))
    p, q = torch.zeros(1, 5, 6), torch.zeros(1, 5, 6)
    p[0, 0, 0], q[0, 3, 4] = 1.0, 2.0
    torch.testing.assert_close(mass_center_shift(p, q), torch.tensor([5.0]))
    torch.testing.assert_close(mass_center_shift(p[:, None], q[:, None]), torch.tensor([5.0]))
    assert torch.isnan(mass_center(torch.zeros(1, 3, 3))).all()
    with pytest.raises(ValueError, match="negative"):
        mass_center(-m)


# -------------------------------------------------------------------------- mask
@pytest.mark.parametrize("f", PAIR_METRICS + [topk_intersection, mass_center, saliency_map])
def test_mask_nan_exactly_where_false(f):
    a, b = _rand(4, 2, 3, 3, seed=4), _rand(4, 2, 3, 3, seed=5)
    mask = torch.tensor([True, False, True, False])
    if f is topk_intersection:
        call = lambda **kw: f(a, b, 4, **kw)  # noqa: E731
    elif f in (mass_center, saliency_map):
        call = lambda **kw: f(a, **kw)  # noqa: E731
    else:
        call = lambda **kw: f(a, b, **kw)  # noqa: E731
    plain, masked = call(), call(mask=mask)
    assert masked.shape == plain.shape
    nan = torch.isnan(masked).reshape(4, -1)
    assert nan[~mask].all() and not nan[mask].any()
    torch.testing.assert_close(masked[mask], plain[mask])
    with pytest.raises(ValueError, match="mask"):
        call(mask=mask[:3])
    with pytest.raises(ValueError, match="bool"):
        call(mask=mask.float())


# -------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("f", PAIR_METRICS + [lambda a, b, **kw: topk_intersection(a, b, 2, **kw)])
def test_bad_inputs(f):
    a = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="identical shapes"):
        f(a, torch.rand(2, 3, 4, 5))
    bad = a.clone()
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        f(a, bad)
    if f is not mass_center_shift:  # needs maps; 1-D vectors lack the batch dim
        with pytest.raises(ValueError, match="batch dimension"):
            f(torch.rand(5), torch.rand(5))


@pytest.mark.parametrize("k", [0, -1, 17, 2.0])
def test_bad_k(k):
    with pytest.raises(ValueError, match="1 <= k <= n"):
        topk_intersection(torch.rand(2, 16), torch.rand(2, 16), k)


def test_bad_shapes_for_maps():
    with pytest.raises(ValueError, match="expected"):
        saliency_map(torch.rand(2, 3))
    with pytest.raises(ValueError, match="expected"):
        mass_center(torch.rand(2, 1, 3, 3, 3))
    with pytest.raises(ValueError, match="batch dimension"):
        mass_center(torch.rand(3))
    with pytest.raises(ValueError, match="NaN"):
        saliency_map(torch.full((1, 2, 2), float("inf")))


@pytest.mark.parametrize("device", DEVICES)
def test_device_matches_cpu(device):
    """Runs on every available device (CUDA only where present; no skipped test elsewhere)."""
    a, b = _rand(3, 3, 6, 6, seed=6), _rand(3, 3, 6, 6, seed=7)
    a[:, :, :2] = 0.0
    mask = torch.tensor([True, False, True])
    for f in PAIR_METRICS:
        out = f(a.to(device), b.to(device), mask=mask.to(device))
        assert out.device.type == device
        torch.testing.assert_close(out.cpu(), f(a, b, mask=mask), equal_nan=True)
    torch.testing.assert_close(
        topk_intersection(a.to(device), b.to(device), 9).cpu(), topk_intersection(a, b, 9)
    )
    torch.testing.assert_close(mass_center(a.to(device)).cpu(), mass_center(a))
