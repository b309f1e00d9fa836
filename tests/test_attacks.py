"""Attacks: feasibility (ball and box), label bookkeeping, closed-form worst cases, effectiveness."""

import pytest
import torch
from conftest import DEVICES, small_cnn, synthetic_images
from torch import nn

from attrbound_lite.attacks import IFIA, PGD, AttributionPGD
from attrbound_lite.attributions import IntegratedGradients, Saliency
from attrbound_lite.threat_models import L2Ball, LinfBall, threat_model


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_threat_model_project_and_random_init_are_feasible(norm):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(16, 3, 5, 5, generator=gen)
    tm = threat_model(norm, 0.3)
    far = x0 + 2 * torch.randn(x0.shape, generator=gen)
    for x in (tm.project(far, x0), tm.random_init(x0, gen), tm.project(tm.step(x0, torch.randn_like(x0), 0.5), x0)):
        assert (tm.distance(x, x0) <= 0.3 + 1e-6).all()
        assert x.min() >= 0 and x.max() <= 1
    inside = tm.project(x0 + 0.01 * torch.randn(x0.shape, generator=gen), x0)
    torch.testing.assert_close(tm.project(inside, x0), inside)  # projection is idempotent


def test_linf_step_and_l2_step():
    x = torch.zeros(1, 4)
    g = torch.tensor([[3.0, -1.0, 0.0, 4.0]])
    torch.testing.assert_close(LinfBall(1).step(x, g, 0.1), torch.tensor([[0.1, -0.1, 0.0, 0.1]]))
    torch.testing.assert_close(L2Ball(1).step(x, g, 0.5), 0.5 * g / g.norm())


class Linear2(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, x):
        z = x.flatten(1) @ self.w
        return torch.stack([z, -z], 1)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_on_a_linear_model_reaches_the_closed_form_worst_case(norm):
    """For logits (w.x, -w.x) and label 0, cross-entropy grows as w.x falls: the worst case in the ball is
    x0 - eps sign(w) (linf) or x0 - eps w / ||w|| (l2), inside the box for x0 = 0.5."""
    w = torch.tensor([1.0, -2.0, 0.5, 3.0, -0.1], dtype=torch.float64)
    model = Linear2(w)
    x0 = torch.full((2, 5), 0.5, dtype=torch.float64)
    y = torch.zeros(2, dtype=torch.long)
    eps = 0.2
    # l2 steps from a random start only approach the ray of -w (the projection keeps a shrinking
    # orthogonal part), so the l2 case starts at x0; linf sign steps saturate exactly from anywhere.
    x_adv = PGD(model, eps=eps, alpha=0.05, steps=20, norm=norm, random_start=norm == "linf")(x0, y)
    expected = x0 - eps * (w.sign() if norm == "linf" else w / w.norm())
    torch.testing.assert_close(x_adv, expected.expand_as(x_adv))


def test_pgd_lowers_accuracy_and_restores_mode(trained_toy):
    model, x, y = trained_toy
    model.train()
    x_adv = PGD(model, eps=0.3, alpha=0.05, steps=20)(x, y)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).double().mean()
        robust = (model(x_adv).argmax(1) == y).double().mean()
    assert robust < clean - 0.3, (clean, robust)
    assert ((x_adv - x).abs().amax((1, 2, 3)) <= 0.3 + 1e-9).all() and x_adv.min() >= 0 and x_adv.max() <= 1


def _check_result(result, model, x, y, eps, norm):
    tm = threat_model(norm, eps)
    assert (tm.distance(result.x_adv, x) <= eps + (1e-9 if x.dtype == torch.float64 else 1e-6)).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    with torch.no_grad():
        predicted = model(result.x_adv).argmax(1)
    kept = result.label_kept
    assert (predicted[kept] == y[kept]).all()  # reported kept -> really kept
    assert torch.isnan(result.deviation.euclidean[~kept]).all()
    assert torch.equal(result.x_adv[~kept], x[~kept])  # failures return the clean input
    assert not torch.isnan(result.deviation.euclidean[kept]).any()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("objective", ["euclidean", "cosine"])
def test_attribution_pgd_feasible_and_labels(trained_toy, norm, objective):
    model, x, y = trained_toy
    x, y = x[:16], y[:16]
    eps = 0.3 if norm == "linf" else 1.5
    result = AttributionPGD(model, Saliency(model), eps=eps, alpha=eps / 4, steps=8, norm=norm, objective=objective,
                            restarts=2)(x, y)
    _check_result(result, model, x, y, eps, norm)
    assert result.label_kept.any()
    assert result.iterations == 8 and result.restarts == 2
    # deviation is measured on the real model between the clean and the returned attribution
    kept = result.label_kept
    a0, a1 = Saliency(model).attribute(x, target=y), Saliency(model).attribute(result.x_adv, target=y)
    torch.testing.assert_close(result.deviation.euclidean[kept], (a1 - a0).flatten(1).norm(dim=1)[kept])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_every_iterate_stays_in_the_ball_and_the_box(trained_toy, norm):
    """Wrap the projection of each attack and check every point it produces."""
    model, x, y = trained_toy
    x, y = x[:8], y[:8]
    eps = 0.2 if norm == "linf" else 1.0
    attacks = [PGD(model, eps=eps, alpha=eps / 2, steps=6, norm=norm),
               AttributionPGD(model, "saliency", eps=eps, alpha=eps / 2, steps=6, norm=norm, restarts=2),
               IFIA(model, "saliency", eps=eps, alpha=eps / 2, steps=6, k=8, norm=norm, restarts=2)]
    for attack in attacks:
        seen = []
        project = attack.threat.project

        def checked(z, z0, project=project, seen=seen, attack=attack):
            out = project(z, z0)
            seen.append(out)
            assert (attack.threat.distance(out, z0) <= eps + 1e-9).all() and out.min() >= 0 and out.max() <= 1
            return out

        attack.threat.project = checked
        attack(x, y)
        assert len(seen) == 6


def test_failure_is_reported_per_sample(trained_toy):
    """Samples whose label y is not what the model predicts anywhere in a small ball cannot be kept."""
    model, x, y = trained_toy
    x, y = x[:8].clone(), y[:8].clone()
    predicted = model(x).argmax(1)
    y[:3] = (predicted[:3] + 1) % 3
    y[3:] = predicted[3:]
    for attack in (AttributionPGD(model, "saliency", eps=0.01, alpha=0.005, steps=4),
                   IFIA(model, "saliency", eps=0.01, alpha=0.005, steps=4, k=8)):
        result = attack(x, y)
        _check_result(result, model, x, y, 0.01, "linf")
        assert result.label_kept.tolist() == [False] * 3 + [True] * 5
        assert torch.isnan(result.score[:3]).all() and torch.isnan(result.deviation.cosine[:3]).all()


def test_more_restarts_never_hurt(trained_toy):
    model, x, y = trained_toy
    x, y = x[:16], y[:16]
    one = AttributionPGD(model, "saliency", eps=0.05, alpha=0.01, steps=5, restarts=1)(x, y)
    three = AttributionPGD(model, "saliency", eps=0.05, alpha=0.01, steps=5, restarts=3)(x, y)
    both = one.label_kept & three.label_kept
    # restart 0 is identical in both runs (same seed stream), so the best of three is at least as good
    assert (three.deviation.euclidean[both] >= one.deviation.euclidean[both] - 1e-12).all()


@pytest.mark.parametrize("kind", ["pgd", "ifia"])
def test_per_restart_results_reduce_to_the_best_over_restarts(trained_toy, kind):
    """``per_restart=True`` keeps one best iterate per (restart, sample), restart-major; the default result
    is, per sample, the row with the highest score. PGD's scores are continuous (no ties), so the iterate
    itself matches; IFIA's top-k scores tie often, and then the default takes the earliest step."""
    model, x, y = trained_toy
    x, y = x[:10], y[:10]

    def make(**kw):
        if kind == "pgd":
            return AttributionPGD(model, "saliency", eps=0.1, alpha=0.02, steps=5, restarts=3, **kw)
        return IFIA(model, "saliency", eps=0.1, alpha=0.02, steps=5, k=8, restarts=3, **kw)

    best, rows = make()(x, y), make(per_restart=True)(x, y)
    assert rows.x_adv.shape == (30, *x.shape[1:]) and rows.label_kept.shape == (30,) and rows.restarts == 3
    _check_result(rows, model, x.repeat(3, 1, 1, 1), y.repeat(3), 0.1, "linf")
    score = rows.score.nan_to_num(float("-inf")).view(3, 10)
    torch.testing.assert_close(score.max(0).values, best.score.nan_to_num(float("-inf")), rtol=0, atol=0)
    assert torch.equal(rows.label_kept.view(3, 10).any(0), best.label_kept)
    if kind == "pgd":
        pick = score.argmax(0) * 10 + torch.arange(10)
        assert torch.equal(rows.x_adv[pick], best.x_adv)
        torch.testing.assert_close(rows.deviation.euclidean[pick], best.deviation.euclidean, equal_nan=True)


@pytest.mark.parametrize("kind", ["topk", "mass_center", "targeted"])
def test_ifia_kinds(trained_toy, kind):
    model, x, y = trained_toy
    x, y = x[:12], y[:12]
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:2, :2] = True
    result = IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=15, k=8, kind=kind, restarts=2,
                  target_mask=mask if kind == "targeted" else None)(x, y)
    _check_result(result, model, x, y, 0.1, "linf")
    assert result.label_kept.all()
    ti = result.topk_intersection
    assert ((ti >= 0) & (ti <= 1)).all()
    if kind == "topk":
        assert ti.mean() < 0.95  # the attack moves the top features
        torch.testing.assert_close(result.score, -ti)
    if kind == "mass_center":
        assert (result.score > 0).all()


def test_random_stream_advances_between_calls_and_replays_with_the_seed(trained_toy):
    model, x, y = trained_toy
    attack = PGD(model, eps=0.1, alpha=0.01, steps=1)
    first, second = attack(x[:4], y[:4]), attack(x[:4], y[:4])
    assert not torch.equal(first, second)  # adversarial training sees fresh noise at every batch
    torch.testing.assert_close(PGD(model, eps=0.1, alpha=0.01, steps=1)(x[:4], y[:4]), first)


def test_per_sample_ig_baseline_with_restarts(trained_toy):
    model, x, y = trained_toy
    baseline = torch.rand(x[:4].shape, dtype=x.dtype, generator=torch.Generator().manual_seed(2))
    ig = IntegratedGradients(model, n_steps=4, baseline=baseline)
    result = AttributionPGD(model, ig, eps=0.05, alpha=0.01, steps=3, restarts=2)(x[:4], y[:4])
    kept = result.label_kept
    a0, a1 = ig.attribute(x[:4], target=y[:4]), ig.attribute(result.x_adv, target=y[:4])
    torch.testing.assert_close(result.deviation.euclidean[kept], (a1 - a0).flatten(1).norm(dim=1)[kept])


def test_attack_surrogate_follows_the_model_between_calls():
    """The surrogate is rebuilt at every call: after the model's weights change, so do the directions."""
    relu = small_cnn(activation="relu", seed=2, dtype=torch.float64)
    x, _ = synthetic_images(4, seed=3, dtype=torch.float64)
    y = relu(x).argmax(1)
    attack = IFIA(relu, "saliency", eps=0.05, alpha=0.01, steps=3, k=8, surrogate_beta=5.0)
    before = attack(x, y)
    with torch.no_grad():
        for p in relu.parameters():
            p.mul_(1.5)
    after = attack(x, y)
    fresh = IFIA(relu, "saliency", eps=0.05, alpha=0.01, steps=3, k=8, surrogate_beta=5.0)(x, y)
    assert not torch.equal(before.x_adv, after.x_adv)
    torch.testing.assert_close(after.x_adv, fresh.x_adv)


def test_ifia_first_restart_starts_at_clean_input(trained_toy):
    """No random start in the original: with one restart the run is deterministic and seed-free."""
    model, x, y = trained_toy
    a = IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=5, k=8, seed=0)(x[:4], y[:4])
    b = IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=5, k=8, seed=123)(x[:4], y[:4])
    assert torch.equal(a.x_adv, b.x_adv)


def test_surrogate_attack_on_relu_model():
    """A ReLU model's saliency is piecewise constant: the surrogate gives the directions, the real model
    the measurement; the attack still moves the real attribution."""
    torch.manual_seed(0)
    relu = small_cnn(activation="relu", seed=2, dtype=torch.float32)
    x, _ = synthetic_images(8, seed=3)
    y = relu(x).argmax(1)
    result = IFIA(relu, IntegratedGradients(relu, n_steps=4), eps=0.1, alpha=0.02, steps=10, k=8,
                  surrogate_beta=5.0)(x, y)
    _check_result(result, relu, x, y, 0.1, "linf")
    assert (result.deviation.euclidean[result.label_kept] > 0).all()
    pgd = AttributionPGD(relu, "saliency", eps=0.1, alpha=0.02, steps=10, surrogate_beta=5.0)(x, y)
    assert (pgd.deviation.euclidean[pgd.label_kept] > 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_attacks_on_device(device, trained_toy):
    model, x, y = trained_toy
    model = model.to(device)
    result = IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=3, k=8)(x[:4].to(device), y[:4].to(device))
    assert result.x_adv.device.type == device
    model.cpu()


def test_attack_argument_errors(trained_toy):
    model, x, y = trained_toy
    with pytest.raises(ValueError, match="eps"):
        PGD(model, eps=0, alpha=0.1, steps=1)
    with pytest.raises(ValueError, match="unknown norm"):
        PGD(model, eps=0.1, alpha=0.1, steps=1, norm="l1")
    with pytest.raises(ValueError, match="steps"):
        PGD(model, eps=0.1, alpha=0.1, steps=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PGD(model, eps=0.1, alpha=0.1, steps=1)(x * 3, y)
    with pytest.raises(ValueError, match="labels"):
        PGD(model, eps=0.1, alpha=0.1, steps=1)(x, y[:3])
    with pytest.raises(ValueError, match="target_mask"):
        IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=1, k=4, kind="targeted")
    with pytest.raises(ValueError, match="objective"):
        AttributionPGD(model, "saliency", eps=0.1, alpha=0.01, steps=1, objective="l1")
    with pytest.raises(ValueError, match="exceeds"):
        IFIA(model, "saliency", eps=0.1, alpha=0.01, steps=1, k=1000)(x[:2], y[:2])


class _PrecisionProbe(nn.Module):
    """Wraps a model and records whether TF32 was allowed during each forward pass."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        self.seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return self.model(x)


def test_bounds_and_attacks_run_without_tf32_and_restore_the_flags():
    """cuDNN allows TF32 convolutions by default; on a GPU that moved sigma_max by ~0.7 % between runs.
    The bound and the attacks switch it off for their duration and restore the user's setting."""
    from attrbound_lite import attribution_bound

    probe = _PrecisionProbe(small_cnn(seed=0)).eval()
    x, _ = synthetic_images(2, seed=1, dtype=torch.float64)
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        attribution_bound(probe, x, 0.1, "l2", "saliency", max_iter=3)
        y = probe(x).argmax(1)
        probe.seen.clear()
        PGD(probe, eps=0.1, alpha=0.05, steps=2)(x, y)
        AttributionPGD(probe, "saliency", eps=0.1, alpha=0.05, steps=2, norm="l2")(x, y)
        assert probe.seen and all(flags == (False, False) for flags in probe.seen)
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
