"""Two-dimensional toy problems where the worst case can be found by brute force.

The book's chapter 2.

On R^2 the constrained problem

    max_{||d||_p <= eps, argmax f(x + d) = c}  ||A(x + d) - A(x)||_2   (and min cos(A(x), A(x + d)))

can be solved by evaluating the attribution on a dense grid over the ball: an oracle for the bounds of
``attrbound_lite.bounds`` that shares no code with them. The toy inputs live on R^2 (no [0, 1] box), the
same relaxation the bounds make.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import check_eps, check_model, check_norm, check_positive_int, check_seed
from .attributions import get_explainer
from .bounds import dense_jacobian
from .models import QuadraticClassifier, _positive_finite

__all__ = ["toy_mlp", "toy_quadratic", "ball_grid", "GridWorstCase", "grid_worst_case", "linear_worst_case",
           "inequality_checks", "worst_case_table",
           "cosine_ball_minimum"]


def toy_mlp(seed: int = 0, hidden: int = 16, beta: float = 1.0) -> nn.Module:
    """A smooth two-class classifier on R^2 (softplus MLP, float64, eval mode).

    Layers: linear 2 -> hidden, softplus, linear hidden -> hidden, softplus, linear hidden -> 2, with
    weights drawn from N(0, 1) and biases from N(0, 0.25).

    Args:
        seed: Seed of the weights. Default 0.
        hidden: Width of the two hidden layers. Default 16.
        beta: Softplus sharpness. Default 1.0.

    Returns:
        The model, mapping inputs (B, 2) to logits (B, 2).
    """
    seed, hidden = check_seed(seed), check_positive_int(hidden, "hidden")
    beta = _positive_finite(beta, "beta", "the softplus sharpness, e.g. 1.0")
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, hidden), nn.Softplus(beta), nn.Linear(hidden, hidden), nn.Softplus(beta),
                          nn.Linear(hidden, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * (1.0 if p.ndim == 2 else 0.5))
    return model.eval()


def toy_quadratic(seed: int = 0) -> QuadraticClassifier:
    """A random two-class quadratic classifier on R^2 whose linearisation is exact.

    ``f_c(x) = x^T Q_c x / 2 + b_c^T x`` with symmetric ``Q_c``: its saliency map is affine, so the
    linearisation is exact and the l2 bound is attained.

    Args:
        seed: Seed of ``Q`` and ``b``. Default 0.

    Returns:
        The float64 ``QuadraticClassifier`` in eval mode, mapping inputs (B, 2) to logits (B, 2).
    """
    seed = check_seed(seed)
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(2, 2, 2, generator=g, dtype=torch.float64)
    Q = m + m.transpose(1, 2)
    b = torch.randn(2, 2, generator=g, dtype=torch.float64)
    return QuadraticClassifier(Q, b).eval()


def ball_grid(eps: float, norm: str, points: int = 201, dtype=torch.float64) -> torch.Tensor:
    """Offsets ``d`` covering the 2-D ball ``||d||_p <= eps``.

    l2: a polar grid (``points`` radii times ``4 * points`` angles, boundary included); linf: a ``points`` x
    ``points`` Cartesian grid.

    Args:
        eps: Radius of the ball.
        norm: ``"l2"`` or ``"linf"``.
        points: Grid resolution (see above). Default 201.
        dtype: dtype of the offsets. Default float64.

    Returns:
        The offsets, shape (m, 2): ``m = 4 * points * (points - 1) + 1`` for l2 (the origin once),
        ``points ** 2`` for linf.

    Raises:
        ValueError: If ``norm`` is neither ``"l2"`` nor ``"linf"``, ``eps`` not a positive number or ``points``
            below 2.
    """
    eps, points = check_eps(eps), _grid_points(points)
    if norm == "l2":
        r = torch.linspace(0, eps, points, dtype=dtype)
        t = torch.linspace(0, 2 * math.pi, 4 * points + 1, dtype=dtype)[:-1]
        rr, tt = torch.meshgrid(r[1:], t, indexing="ij")
        grid = torch.stack([rr * torch.cos(tt), rr * torch.sin(tt)], -1).reshape(-1, 2)
        return torch.cat([torch.zeros(1, 2, dtype=dtype), grid])
    if norm == "linf":
        s = torch.linspace(-eps, eps, points, dtype=dtype)
        a, b = torch.meshgrid(s, s, indexing="ij")
        return torch.stack([a, b], -1).reshape(-1, 2)
    raise ValueError(f"norm must be 'l2' or 'linf', got {norm!r}.")


def _point(x, what: str = "x") -> torch.Tensor:
    """A 2-D input (a tensor, array or list of 2 finite values) as a float64 tensor (1, 2)."""
    try:
        t = torch.as_tensor(x.detach() if isinstance(x, torch.Tensor) else x, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{what} must be 2 numbers (a tensor, array or list), got {type(x).__name__}.") from None
    if t.numel() != 2 or not torch.isfinite(t).all():
        raise ValueError(f"{what} must be 2 finite values (the toys live on R^2), got shape {tuple(t.shape)}.")
    return t.reshape(1, 2)


def _grid_points(points) -> int:
    points = check_positive_int(points, "points")
    if points < 2:
        raise ValueError("points must be at least 2: one grid point is the centre (l2) or a single corner (linf), "
                         "not a cover of the ball.")
    return points


def _float64_model(model: nn.Module) -> nn.Module:
    check_model(model)
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes and dtypes != {torch.float64}:
        raise TypeError(f"the toy oracles evaluate the model in float64, but its parameters are "
                        f"{sorted(map(str, dtypes))}; pass model.double().")
    return model


@dataclass
class GridWorstCase:
    """The dense-grid solution of the constrained problem around one point.

    Attributes:
        eps: Radius of the ball.
        norm: ``"l2"`` or ``"linf"``.
        target: The predicted class at ``x``, which the grid points must keep.
        euclidean: max ``||A(x + d) - A(x)||`` over label-preserving grid points.
        cosine: min ``cos(A(x), A(x + d))`` over the same points.
        argmax: The maximising ``d``, shape (2,).
        kept: Fraction of grid points that keep the label.
        sigma_sup: max ``sigma_max(J(x + d))`` over the grid (the mean-value bound is eps times this, l2).
        linear: max ``||J(x) d||`` over the grid (the linearised problem, label constraint dropped).
    """
    eps: float
    norm: str
    target: int
    euclidean: float          # max ||A(x + d) - A(x)|| over label-preserving grid points
    cosine: float             # min cos(A(x), A(x + d)) over the same points
    argmax: torch.Tensor      # the maximising d
    kept: float               # fraction of grid points that keep the label
    sigma_sup: float          # max sigma_max(J(x + d)) over the grid (the mean-value bound is eps * this, l2)
    linear: float             # max ||J(x) d|| over the grid (the linearised problem, label constraint dropped)


def grid_worst_case(model: nn.Module, x: torch.Tensor, eps: float, norm: str = "l2", attribution="saliency",
                    points: int = 201, **attribution_options) -> GridWorstCase:
    """Solve the constrained worst-case problem for one 2-D input by brute force.

    ``max_{||d||_p <= eps, argmax f(x + d) = c} ||A(x + d) - A(x)||_2`` (and the min cosine), evaluated
    over ``ball_grid(eps, norm, points)``, with ``c`` the predicted class at ``x``.

    Args:
        model: A classifier on R^2 (float64 inputs (B, 2) to logits).
        x: The input, shape (2,) or (1, 2).
        eps: Radius of the ball.
        norm: ``"l2"`` or ``"linf"``. Default ``"l2"``.
        attribution: Attribution method name (see ``attrbound_lite.attributions.get_explainer``). Default
            ``"saliency"``.
        points: Grid resolution of ``ball_grid``. Default 201.
        **attribution_options: Options passed to the explainer.

    Returns:
        The ``GridWorstCase``.

    Raises:
        TypeError: a model that is not float64, or ``x`` not 2 numbers.
        ValueError: ``eps`` not a positive number, an unknown norm, ``points`` below 2.
    """
    model, x, eps, norm = _float64_model(model), _point(x), check_eps(eps), check_norm(norm)
    explainer = get_explainer(attribution, model, **attribution_options)
    with torch.no_grad():
        c = int(model(x).argmax(1))
    d = ball_grid(eps, norm, points)
    xs = x + d
    target = torch.full((xs.shape[0],), c, dtype=torch.long)
    a0 = explainer.attribute(x, target=torch.tensor([c])).detach().reshape(2)
    chunks_a, chunks_j, keep = [], [], []
    for start in range(0, xs.shape[0], 4096):
        xb, tb = xs[start:start + 4096], target[start:start + 4096]
        chunks_a.append(explainer.attribute(xb, target=tb).detach().reshape(-1, 2))
        chunks_j.append(dense_jacobian(explainer, xb, tb))
        with torch.no_grad():
            keep.append(model(xb).argmax(1) == c)
    a, jac, keep = torch.cat(chunks_a), torch.cat(chunks_j), torch.cat(keep)
    dev = (a - a0).norm(dim=1)
    cos = torch.nn.functional.cosine_similarity(a, a0.expand_as(a), dim=1)
    dev_kept = torch.where(keep, dev, torch.full_like(dev, -1.0))
    i = int(dev_kept.argmax())
    j0 = dense_jacobian(explainer, x, torch.tensor([c]))[0]
    return GridWorstCase(eps=eps, norm=norm, target=c, euclidean=float(dev_kept[i]),
                         cosine=float(torch.where(keep, cos, torch.ones_like(cos)).min()), argmax=d[i],
                         kept=float(keep.double().mean()), sigma_sup=float(torch.linalg.matrix_norm(jac, 2).max()),
                         linear=float((d @ j0.T).norm(dim=1).max()))


def linear_worst_case(jacobian: torch.Tensor, eps: float, norm: str) -> float:
    """The exact optimum of the linearised problem ``max_{||d||_p <= eps} ||J d||_2``.

    l2 from the SVD (``eps * sigma_max(J)``); linf by enumerating the 2^n vertices of the cube (small n
    only).

    Args:
        jacobian: The Jacobian ``J``, shape (n, n) (or (m, n)).
        eps: Radius of the ball.
        norm: ``"l2"`` or ``"linf"``.

    Returns:
        The optimum, a float.

    Raises:
        TypeError: ``jacobian`` not a 2-d tensor (a numpy array is converted).
        ValueError: For linf with n > 20; ``eps`` not a positive number.
    """
    eps, norm = check_eps(eps), check_norm(norm)
    if not isinstance(jacobian, torch.Tensor):
        jacobian = torch.as_tensor(jacobian)
    if jacobian.ndim != 2 or not jacobian.is_floating_point():
        raise TypeError(f"jacobian must be a 2-d floating-point matrix (m, n), got {jacobian.dtype} of shape "
                        f"{tuple(jacobian.shape)}.")
    n = jacobian.shape[-1]
    if norm == "l2":
        return float(eps * torch.linalg.matrix_norm(jacobian, 2))
    if n > 20:
        raise ValueError(f"enumerating 2^{n} sign vectors is not feasible; n <= 20 only.")
    signs = torch.tensor([[1.0 if (k >> i) & 1 else -1.0 for i in range(n)] for k in range(2 ** n)],
                         dtype=jacobian.dtype)
    return float(eps * (signs @ jacobian.T).norm(dim=1).max())


def cosine_ball_minimum(a: torch.Tensor, r: float, points: int = 401) -> float:
    """``min cos(a, a + u)`` over ``||u||_2 <= r`` for a 2-D vector ``a``, by a dense polar grid.

    The oracle of the tangent bound ``sqrt(1 - r^2 / ||a||^2)``.

    Args:
        a: The vector, 2 values (any shape that reshapes to (1, 2)).
        r: Radius of the ball around ``a``.
        points: Grid resolution of ``ball_grid``. Default 401.

    Returns:
        The smallest cosine found, a float.
    """
    a = _point(a, "a")
    u = ball_grid(r, "l2", points, dtype=a.dtype)
    b = a + u
    return float(torch.nn.functional.cosine_similarity(b, a.expand_as(b), dim=1).min())


def inequality_checks(model: nn.Module, x: torch.Tensor, eps: float, points: int = 201):
    """Check every inequality behind the four bounds (saliency, one 2-D input) against brute force.

    The package's matrix-free bounds (``attrbound_lite.bounds.attribution_bound``) are compared with the
    oracles of this module.

    Args:
        model: A classifier on R^2 (float64).
        x: The input, 2 values (shape (2,) or (1, 2)).
        eps: Radius of the ball.
        points: Grid resolution of the brute-force oracles. Default 201.

    Returns:
        ``(table, values)``: a pandas DataFrame with one row ``(inequality, left, right, holds)`` per
        inequality, and a dict of the values (for the book's glue).
    """
    import pandas as pd

    from .attributions import Saliency
    from .bounds import attribution_bound

    model, x, eps = _float64_model(model), _point(x), check_eps(eps)
    J = dense_jacobian(Saliency(model), x)[0]
    a0 = Saliency(model).attribute(x).detach()[0]
    b2 = attribution_bound(model, x, eps, "l2", tol=1e-10, box=False)  # toys live on R^2
    binf = attribution_bound(model, x, eps, "linf", tol=1e-10, box=False)
    grid = grid_worst_case(model, x, eps, "l2", points=points)
    v = dict(sigma=float(b2.sigma_max[0]), sigma_exact=float(torch.linalg.matrix_norm(J, 2)),
             l2_bound=float(b2.euclidean[0]), l2_linear_grid=grid.linear,
             l2_grid_attained=grid.linear / math.cos(math.pi / (4 * points)),
             linf_sqrt_n=float(binf.linf_sqrt_n[0]), linf_rowsum=float(binf.linf_abs_rowsum[0]),
             linf_exact=linear_worst_case(J, eps, "linf"), linf_lower=float(binf.linf_lower[0]),
             cos_bound=float(b2.cosine[0]), cos_grid=cosine_ball_minimum(a0, float(b2.euclidean[0]), points),
             cos_bound_linf=float(binf.cosine[0]),
             cos_grid_linf=cosine_ball_minimum(a0, float(binf.euclidean[0]), points),
             grid_size=4 * points * (points - 1) + 1)
    v["l2_rel_gap"] = (v["l2_bound"] - v["l2_linear_grid"]) / v["l2_bound"]
    up = 1 + 1e-12  # floating-point slack
    rows = [
        ("σmax: Lanczos = exact SVD (relative 10⁻⁸)", v["sigma"], v["sigma_exact"],
         abs(v["sigma"] - v["sigma_exact"]) <= 1e-8 * v["sigma_exact"]),
        ("ℓ2: max ‖J d‖ on the grid ≤ ε σmax", v["l2_linear_grid"], v["l2_bound"],
         v["l2_linear_grid"] <= v["l2_bound"] * up),
        ("ℓ2: ε σmax ≤ grid max / cos(angle step)", v["l2_bound"], v["l2_grid_attained"],
         v["l2_bound"] <= v["l2_grid_attained"] * up),
        ("ℓ∞: exact (vertices) ≤ ε √n σmax", v["linf_exact"], v["linf_sqrt_n"],
         v["linf_exact"] <= v["linf_sqrt_n"] * up),
        ("ℓ∞: exact (vertices) ≤ ε ‖|J| 1‖", v["linf_exact"], v["linf_rowsum"],
         v["linf_exact"] <= v["linf_rowsum"] * up),
        ("ℓ∞: sign-iteration estimate ≤ exact", v["linf_lower"], v["linf_exact"],
         v["linf_lower"] <= v["linf_exact"] * up),
        ("cosine, ℓ2: bound ≤ min cos over the ball", v["cos_bound"], v["cos_grid"],
         v["cos_bound"] <= v["cos_grid"] + 1e-12),
        ("cosine, ℓ∞: bound ≤ min cos over the ball", v["cos_bound_linf"], v["cos_grid_linf"],
         v["cos_bound_linf"] <= v["cos_grid_linf"] + 1e-12),
    ]
    return pd.DataFrame(rows, columns=["inequality", "left", "right", "holds"]), v


def worst_case_table(cases: dict, eps_list, points: int = 201):
    """Compare the practical bound with the brute-force worst case for several cases and radii (l2, saliency).

    Per case and eps: the practical bound, the dense-grid worst case of the constrained problem, the
    mean-value bound, the fraction of the grid that keeps the label, and the cosine bound next to the
    smallest cosine found.

    Args:
        cases: Mapping ``name: (model, x)`` with ``x`` one 2-D input.
        eps_list: The radii (iterable of floats).
        points: Grid resolution of ``grid_worst_case``. Default 201.

    Returns:
        A pandas DataFrame, one row per case and eps, with ratio columns ``worst / bound`` and
        ``worst / mean-value``.

    Raises:
        TypeError: ``cases`` is not a dict of ``(model, x)`` pairs, or ``eps_list`` is a single number.
        ValueError: a radius that is not positive and finite.
    """
    import pandas as pd

    from .bounds import attribution_bound

    if not isinstance(cases, Mapping):
        raise TypeError(f"cases must be a dict {{name: (model, x)}}, got {type(cases).__name__} {cases!r:.60}; "
                        "e.g. worst_case_table({'toy': (model, x)}, [0.1]).")
    for name, case in cases.items():
        if not isinstance(case, (tuple, list)) or len(case) != 2:
            raise TypeError(f"cases[{name!r}] must be a (model, x) pair, got {type(case).__name__} {case!r:.60}.")
    if isinstance(eps_list, (str, bytes, numbers.Number)) or getattr(eps_list, "ndim", None) == 0:
        raise TypeError(f"eps_list must be a list of radii, got the single {type(eps_list).__name__} {eps_list!r}; "
                        f"write [{eps_list!r}].")
    eps_list = [check_eps(eps) for eps in eps_list]  # floats in the table, also from a tensor or an array
    if not eps_list or not cases:
        raise ValueError(f"worst_case_table needs at least one case and one radius, got an empty "
                         f"{'cases' if not cases else 'eps_list'}; e.g. "
                         "worst_case_table({'toy': (model, x)}, [0.1]).")
    rows = []
    for name, (model, x) in cases.items():
        for eps in eps_list:
            g = grid_worst_case(model, x, eps, "l2", points=points)
            b = attribution_bound(model, _point(x), eps, "l2", tol=1e-10, box=False)
            rows.append(dict(model=name, eps=eps, bound=float(b.euclidean[0]), worst_case=g.euclidean,
                             mean_value_bound=eps * g.sigma_sup, kept=g.kept, cos_bound=float(b.cosine[0]),
                             cos_worst=g.cosine))
    table = pd.DataFrame(rows)
    table["worst / bound"] = table["worst_case"] / table["bound"]
    table["worst / mean-value"] = table["worst_case"] / table["mean_value_bound"]
    return table
