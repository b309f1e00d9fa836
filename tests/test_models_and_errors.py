"""Models, the softplus surrogate, and the clear errors promised at the edges."""

import pytest
import torch
import torchvision
from conftest import small_cnn
from torch import nn

from attrbound_lite.attacks import IFIA
from attrbound_lite.bounds import attribution_bound, spectral_norm
from attrbound_lite.models import (
    CifarCNN,
    MnistCNN,
    Normalize,
    QuadraticClassifier,
    is_piecewise_linear,
    nonsmooth_modules,
    smooth_relu,
)


def test_architectures_and_normalisation():
    mnist = MnistCNN(width=0.25).eval()
    assert mnist(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    cifar = CifarCNN(activation="softplus", beta=5.0, pool="avg").eval()
    assert cifar(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert isinstance(mnist[0], Normalize)
    x = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(Normalize((0.5,), (0.25,))(x), (x - 0.5) / 0.25)
    assert sum(isinstance(m, nn.Softplus) for m in cifar.modules()) == 5
    with pytest.raises(ValueError, match="activation"):
        MnistCNN(activation="gelu")
    with pytest.raises(ValueError, match="pool"):
        MnistCNN(pool="median")


def test_smooth_relu_replaces_relus_and_shares_weights():
    model = MnistCNN(width=0.25).eval()
    surrogate = smooth_relu(model, 20.0)
    assert not any(isinstance(m, nn.ReLU) for m in surrogate.modules())
    assert [m.beta for m in surrogate.modules() if isinstance(m, nn.Softplus)] == [20.0] * 3
    assert any(isinstance(m, nn.ReLU) for m in model.modules())  # the original is untouched
    assert all(p is q for p, q in zip(model.parameters(), surrogate.parameters(), strict=True))  # the same weights
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():  # as beta grows the surrogate tends to the ReLU model
        gaps = [(smooth_relu(model, b)(x) - model(x)).abs().max().item() for b in (1.0, 10.0, 100.0)]
    assert gaps[0] > gaps[1] > gaps[2]
    with pytest.raises(ValueError, match="beta"):
        smooth_relu(model, 0)


def test_piecewise_linear_detection():
    assert is_piecewise_linear(MnistCNN())
    assert is_piecewise_linear(torchvision.models.resnet18(weights=None))
    assert not is_piecewise_linear(MnistCNN(activation="softplus"))
    assert not is_piecewise_linear(smooth_relu(MnistCNN(), 10.0))
    assert not is_piecewise_linear(nn.Sequential(nn.Linear(2, 2), nn.Tanh()))
    assert nonsmooth_modules(MnistCNN(activation="softplus")) == ["3", "6"]  # the max-pools
    assert nonsmooth_modules(MnistCNN(activation="softplus", pool="avg")) == []


def test_piecewise_linear_model_is_refused_with_the_fix_named():
    relu = small_cnn(activation="relu")
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="surrogate_beta"):
        attribution_bound(relu, x, 0.1)
    with pytest.raises(ValueError, match="max-pooling"):
        attribution_bound(small_cnn(pool="max"), x, 0.1)
    bound = attribution_bound(relu, x, 0.1, surrogate_beta=10.0)
    assert (bound.sigma_max > 0).all()
    # the surrogate bound is the bound of the explicitly smoothed model, with the real attribution norm
    explicit = attribution_bound(smooth_relu(relu, 10.0), x, 0.1, target=bound.target)
    torch.testing.assert_close(bound.sigma_max, explicit.sigma_max)


class FunctionalRelu(nn.Module):
    """ReLU called inside forward: invisible to the module check, caught at run time."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize("attribution", ["saliency", "input_x_gradient", "integrated_gradients"])
def test_zero_hessian_is_refused_at_run_time(attribution):
    """Also for input x gradient and IG, whose Jacobian diag(g) would otherwise be silently curvature-free."""
    x = torch.rand(3, 6, dtype=torch.float64)
    for model in (FunctionalRelu().double().eval(), nn.Linear(6, 3).double().eval()):
        for method in ("lanczos", "power", "exact"):
            with pytest.raises(ValueError, match="exactly zero"):
                attribution_bound(model, x, 0.1, attribution=attribution, method=method)


def test_other_relu_types_are_refused_even_with_a_surrogate():
    model = nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.1), nn.Linear(8, 3)).double().eval()
    x = torch.rand(3, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="stay piecewise linear"):
        attribution_bound(model, x, 0.1, surrogate_beta=10.0)
    with pytest.raises(ValueError, match="stay piecewise linear"):
        IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=1, k=2, surrogate_beta=10.0)


def test_attacks_refuse_non_smooth_models_without_surrogate():
    """Without a surrogate a ReLU model's attribution gradient is zero: the attack would never move and
    report a perfectly robust model."""
    from attrbound_lite.attacks import AttributionPGD
    relu = small_cnn(activation="relu")
    for make in (lambda: AttributionPGD(relu, "saliency", eps=0.1, alpha=0.01, steps=1),
                 lambda: IFIA(relu, "saliency", eps=0.1, alpha=0.01, steps=1, k=4)):
        with pytest.raises(ValueError, match="surrogate_beta"):
            make()


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=0.0), "eps must be a positive"),
    (dict(eps=-1.0), "eps must be a positive"),
    (dict(eps=float("nan")), "eps must be a positive"),
    (dict(norm="l1"), "unknown norm"),
    (dict(attribution="gradcam"), "unknown attribution"),
    (dict(method="svd"), "unknown method"),
    (dict(tol=0), "tol"),
    (dict(max_iter=0), "max_iter"),
])
def test_bad_arguments(kwargs, match):
    model = small_cnn()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    args = dict(eps=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        attribution_bound(model, x, **args)


@pytest.mark.parametrize("bad, match", [
    (torch.full((2, 1, 8, 8), float("inf"), dtype=torch.float64), "NaN or inf"),
    (torch.full((2, 1, 8, 8), float("nan"), dtype=torch.float64), "NaN or inf"),
    (torch.rand(64, dtype=torch.float64), "batch-first"),
    (torch.rand(2, 1, 7, 7, dtype=torch.float64), "shapes"),  # wrong spatial shape: the model complains
])
def test_bad_inputs(bad, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        attribution_bound(small_cnn(), bad, 0.1)


def test_exact_method_refused_above_its_size_limit():
    model = nn.Sequential(nn.Linear(4097, 4), nn.Softplus(), nn.Linear(4, 2)).eval()
    x = torch.rand(1, 4097)
    with pytest.raises(ValueError, match="n <= 4096"):
        attribution_bound(model, x, 0.1, method="exact")
    assert spectral_norm(model, x).shape == (1,)  # matrix-free is fine


def test_training_mode_batchnorm_and_dropout_are_evaluated_in_eval_mode_and_restored():
    """Documented choice: the bound switches the model to eval mode (batch statistics frozen, dropout off)
    and restores every module's flag; so does every attack."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Softplus(3.0), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 3)).double()
    x = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    model.train()
    model(x)  # populate the running statistics
    snapshot = {k: v.clone() for k, v in model.state_dict().items()}
    in_train = attribution_bound(model, x, 0.1, tol=1e-8)
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():  # running statistics untouched
        torch.testing.assert_close(v, snapshot[k])
    model.eval()
    in_eval = attribution_bound(model, x, 0.1, tol=1e-8)
    torch.testing.assert_close(in_train.sigma_max, in_eval.sigma_max)
    model.train()
    IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=2, k=4)(x, in_eval.target)
    assert all(m.training for m in model.modules())


def test_quadratic_classifier_shapes():
    with pytest.raises(ValueError, match="Q must be"):
        QuadraticClassifier(torch.zeros(2, 3, 4), torch.zeros(2, 3))


def test_result_to_dataframe():
    bound = attribution_bound(small_cnn(), torch.rand(3, 1, 8, 8, dtype=torch.float64), 0.1, norm="linf")
    frame = bound.to_dataframe()
    assert len(frame) == 3
    assert {"sigma_max", "euclidean", "cosine", "linf_lower", "linf_smaller", "converged"} <= set(frame.columns)
