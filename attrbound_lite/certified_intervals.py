"""``certified``'s interval arithmetic: the analytic softplus and its derivatives on intervals, and their propagation.

Intervals are held as centre and radius in float64, every radius widened outward (``MARGIN``, ``ROUNDING``) so that
rounding cannot make a bound smaller than the true one. ``_propagate`` carries an input box (the ball intersected
with [0, 1]) through the network's affine blocks and softplus activations: pre-activation intervals (the tighter of
interval arithmetic and the mean-value form) and, where asked, interval Jacobians. ``certified`` builds the three
routes of ``certified_bound`` on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__: list[str] = []


MARGIN = 1e-9          # relative outward widening of every interval radius (float64 rounding)
ROUNDING = 1e-12       # widening of affine outputs, relative to |W| (|c| + r): float64 sums of up to 4,000 terms


# --------------------------------------------------------------------------- softplus and its derivatives
def _sp0(a, beta):  # the analytic softplus, log(1 + exp(beta a)) / beta, without overflow
    return a.clamp_min(0) + torch.log1p(torch.exp(-(beta * a).abs())) / beta


def _sp1(a, beta):  # its derivative, sigmoid(beta a)
    return torch.sigmoid(beta * a)


def _sp2(a, beta):  # its second derivative, beta s (1 - s), as beta sigmoid(beta a) sigmoid(-beta a) (no cancellation)
    return beta * torch.sigmoid(beta * a) * torch.sigmoid(-beta * a)


def _widen(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return r + MARGIN * (r + c.abs()) + 1e-300


def _mul(ac, ar, bc, br):
    """``(ac +- ar)(bc +- br)`` as midpoint and radius."""
    return ac * bc, ac.abs() * br + ar * bc.abs() + ar * br


def _from_bounds(lo, hi):
    return (lo + hi) / 2, (hi - lo) / 2


def _softplus_intervals(a_lo, a_hi, beta):
    """The intervals of ``sigma``, ``sigma'`` and ``sigma''`` over ``[a_lo, a_hi]`` (midpoint, radius)."""
    h = _from_bounds(_sp0(a_lo, beta), _sp0(a_hi, beta))
    d1 = _from_bounds(_sp1(a_lo, beta), _sp1(a_hi, beta))
    nearest = torch.clamp(torch.zeros_like(a_lo), a_lo, a_hi)
    d2 = _from_bounds(torch.minimum(_sp2(a_lo, beta), _sp2(a_hi, beta)), _sp2(nearest, beta))
    return [(c, _widen(r, c)) for c, r in (h, d1, d2)]


# --------------------------------------------------------------------------- interval propagation
@dataclass
class _Layers:
    """Values at x and intervals on the set, per hidden layer k (pre-activation a_k, after block k)."""

    shapes: list          # activation shape after each block (without batch)
    d1: list              # (c, r) of sigma'(a_k) on the set, (B, *shape_k)
    d2: list              # (c, r) of sigma''(a_k)
    s: list               # (c, r) of the backward signal s_k = df_c/dh_k
    grad: tuple           # (c, r) of the input gradient on the set, (B, *x_shape)
    d1_x: list            # sigma'(a_k(x))
    d2_x: list            # sigma''(a_k(x))
    s_x: list             # s_k(x)
    grad_x: torch.Tensor  # the input gradient at x
    jac: list             # per layer (J_k(x), J_k centre, J_k radius), transposed: (B, n, *shape_k); empty unless asked


def _propagate(blocks, betas, x, lo, hi, eps_t, norm: str, target, jacobians: bool) -> _Layers:
    """Forward and backward: values at x and intervals over ``S = {z in [lo, hi]: ||z - x||_norm <= eps}``.

    Each pre-activation interval is the intersection of two valid ones: interval arithmetic (``W c +- |W| r``; for the
    first block also ``W x + b +- eps ||W_i||_q``) and, with ``jacobians``, the mean-value form ``a_k(x) +- eps
    sup_z ||(J_k)_i(z)||_q`` with the row norms of the Jacobian interval, exact at first order in eps.
    """
    batch, n, x_shape = x.shape[0], x[0].numel(), x.shape[1:]
    c, r = _from_bounds(lo, hi)
    h_x = x
    q = 2 if norm == "l2" else 1
    eps_rows = eps_t.view(-1, *([1] * x.ndim))
    shapes, d1s, d2s, d1xs, d2xs, jac = [], [], [], [], [], []
    j_x = j_c = j_r = None
    for k, (block, beta) in enumerate(zip(blocks[:-1], betas, strict=True)):
        a_x = block.forward(h_x)
        a_c, a_r = block.forward(c), block.absolute(r)
        a_r = a_r + ROUNDING * (block.absolute(c.abs()) + a_r)  # the rounding of W c (cancellation included)
        lo_k, hi_k = a_c - a_r, a_c + a_r
        if k == 0:
            rows = block.row_norms(x_shape, norm)
            if rows is not None:  # exact for the ball: W x + b +- eps ||W_i||_q
                rad = rows * eps_t.view(-1, *([1] * rows.ndim))
                lo_k, hi_k = torch.maximum(lo_k, a_x - rad), torch.minimum(hi_k, a_x + rad)
        if jacobians:
            if k == 0:
                eye = torch.eye(n, dtype=x.dtype, device=x.device).view(n, *x_shape)
                j_x = block.linear(eye).unsqueeze(0).expand(batch, *([-1] * a_x.ndim))  # (B, n, *shape)
                j_c, j_r = j_x, torch.zeros_like(j_x)
            else:
                d_x, (d_c, d_r) = d1xs[-1], d1s[-1]
                shape, out = j_x.shape[2:], (batch, n, *a_x.shape[1:])
                j_x = block.linear((j_x * d_x.unsqueeze(1)).reshape(-1, *shape)).reshape(out)
                m_c, m_r = _mul(j_c, j_r, d_c.unsqueeze(1), d_r.unsqueeze(1))
                j_c = block.linear(m_c.reshape(-1, *shape)).reshape(out)
                j_r = block.absolute((m_r + ROUNDING * (m_c.abs() + m_r)).reshape(-1, *shape)).reshape(out)
                j_r = _widen(j_r, j_c)
                # mean-value form: |a_i(z) - a_i(x)| <= eps sup ||row_i of J(z)||_q, J(z) in [j_c - j_r, j_c + j_r]
                rows = torch.maximum((j_c - j_r).abs(), (j_c + j_r).abs()).norm(p=q, dim=1)  # (B, *shape)
                rad = rows * eps_rows.view(-1, *([1] * (rows.ndim - 1)))
                lo_k, hi_k = torch.maximum(lo_k, a_x - rad), torch.minimum(hi_k, a_x + rad)
            jac.append((j_x, j_c, j_r))
        a_c, a_r = _from_bounds(lo_k, torch.maximum(hi_k, lo_k))
        a_r = _widen(a_r, a_c)
        (h_c, h_r), d1, d2 = _softplus_intervals(a_c - a_r, a_c + a_r, beta)
        shapes.append(a_x.shape[1:])
        d1s.append(d1)
        d2s.append(d2)
        d1xs.append(_sp1(a_x, beta))
        d2xs.append(_sp2(a_x, beta))
        h_x = _sp0(a_x, beta)
        c, r = h_c, _widen(h_r, h_c)
    # backward: s_K = W_{K+1}^T e_c (exact), then s_{k-1} = W_k^T (sigma'(a_k) s_k)
    e = torch.zeros(blocks[-1].forward(h_x).shape, dtype=x.dtype, device=x.device)
    e[torch.arange(batch), target] = 1
    s_x = s_c = blocks[-1].linear_t(e, h_x.shape)
    s_r = torch.zeros_like(s_c)
    signals, signals_x = [None] * len(betas), [None] * len(betas)
    for k in range(len(betas) - 1, -1, -1):
        signals[k], signals_x[k] = (s_c, s_r), s_x
        t_c, t_r = _mul(*d1s[k], s_c, s_r)
        shape = (batch, *(shapes[k - 1] if k > 0 else x_shape))
        s_x = blocks[k].linear_t(d1xs[k] * s_x, shape)
        s_c = blocks[k].linear_t(t_c, shape)
        s_r = _widen(blocks[k].absolute_t(t_r + ROUNDING * (t_c.abs() + t_r), shape), s_c)
    return _Layers(shapes, d1s, d2s, signals, (s_c, s_r), d1xs, d2xs, signals_x, s_x, jac)
