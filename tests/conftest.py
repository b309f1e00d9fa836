"""Shared fixtures: small smooth models, a quickly trained toy classifier, and independent oracles.

The oracles use ``torch.func`` on the model directly (Hessians and Jacobians of per-sample functions),
sharing no code with ``attrbound_lite.bounds``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

# One thread: the test models are tiny, and on a shared 2-core machine a second OpenMP thread that is
# descheduled stalls every parallel region (seen here: a 4x16 matmul taking 15 ms instead of 7 us).
torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def small_cnn(in_ch: int = 1, side: int = 8, classes: int = 3, activation: str = "softplus", beta: float = 3.0,
              seed: int = 0, dtype=torch.float64, pool: str = "avg") -> nn.Module:
    """A random CNN (conv, act, pool, conv, act, fc, act, fc) in eval mode; smooth with the default
    softplus activation and average pooling."""
    torch.manual_seed(seed)
    act = (lambda: nn.Softplus(beta)) if activation == "softplus" else (lambda: nn.ReLU()) if activation == "relu" \
        else (lambda: nn.Tanh())
    model = nn.Sequential(
        nn.Conv2d(in_ch, 4, 3, padding=1), act(), nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), act(), nn.Flatten(),
        nn.Linear(6 * (side // 2) ** 2, 16), act(), nn.Linear(16, classes))
    return model.to(dtype).eval()


def oracle_attribution(model: nn.Module, attribution: str, n_steps: int = 8):
    """Per-sample attribution function ``a(x_i, c)`` built from torch.func (independent of the package)."""
    def logit(xi, c):
        return model(xi[None])[0, c]

    grad = torch.func.grad(logit)
    if attribution == "saliency":
        return grad
    if attribution == "input_x_gradient":
        return lambda xi, c: xi * grad(xi, c)
    if attribution == "integrated_gradients":
        def ig(xi, c):
            total = torch.zeros_like(xi)
            for k in range(1, n_steps + 1):
                total = total + grad(xi * k / n_steps, c)
            return xi * total / n_steps
        return ig
    raise ValueError(attribution)


def oracle_jacobian(model: nn.Module, x: torch.Tensor, target: torch.Tensor, attribution: str, n_steps: int = 8):
    """Exact attribution Jacobians (B, n, n) by torch.func.jacrev, one sample at a time."""
    fn = oracle_attribution(model, attribution, n_steps)
    n = x[0].numel()
    return torch.stack([torch.func.jacrev(fn)(x[i], int(target[i])).reshape(n, n) for i in range(x.shape[0])])


def synthetic_images(n: int, seed: int = 0, side: int = 8, classes: int = 3, dtype=torch.float32):
    """Images in [0, 1] of shape (n, 1, side, side): class c has a bright square in corner c, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = 0.25 * torch.rand(n, 1, side, side, generator=gen)
    half = side // 2
    corners = [(0, 0), (half, half), (0, half), (half, 0)]
    for c in range(classes):
        r, col = corners[c]
        x[y == c, :, r:r + half, col:col + half] += 0.6
    return x.clamp(0, 1).to(dtype), y


@pytest.fixture(scope="session")
def trained_toy():
    """A small smooth CNN trained to high accuracy on ``synthetic_images`` (float64), with test data."""
    model = small_cnn(seed=1, beta=3.0)
    x, y = synthetic_images(512, seed=0, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(150):
        idx = torch.randint(0, 512, (64,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x_test, y_test = synthetic_images(64, seed=1, dtype=torch.float64)
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).double().mean().item()
    assert accuracy > 0.95, f"the toy model did not train (accuracy {accuracy})"
    return model, x_test, y_test


def data_mirror():
    """The offline data mirror (``$ATTRBOUND_DATA_MIRROR`` or ``../shared/data`` beside the repository);
    tests that need real data fail, rather than skip, without it."""
    import os
    from pathlib import Path
    path = Path(os.environ.get("ATTRBOUND_DATA_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (path / "MNIST" / "raw").is_dir():
        pytest.fail(f"the offline data mirror is missing at {path}: put ../shared/data beside the repository or set "
                    "ATTRBOUND_DATA_MIRROR")
    return path


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A writable data cache shared by the session (torchvision extracts the mirror's archives there)."""
    return tmp_path_factory.mktemp("data-root")


@pytest.fixture(scope="session")
def mnist_small(data_root):
    """A seeded 512-image subset of the real MNIST training set, loaded from the mirror."""
    from attrbound_lite.data import load_dataset
    return load_dataset("mnist", "train", root=data_root, mirror=data_mirror(), download=False, subset=512, seed=0)
