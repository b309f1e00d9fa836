"""Paper-scale layout: per-sample radii, one batch holding every (radius, restart, sample) instance, chunks that
fit the device, no host synchronisation in the step loop, and the compiled step.

The oracle of the batched layout is the per-radius call it replaces: the same seeds must give the same bits.
"""

import contextlib

import numpy as np
import pytest
import torch
from conftest import small_cnn

import attrbound_lite._checks as checks
from attrbound_lite import attacks as attacks_module
from attrbound_lite.attacks import IFIA, AttributionPGD
from attrbound_lite.experiments import TIMING_COLUMNS, validate_bounds
from attrbound_lite.runtime import CPU_CHUNK, run_in_chunks
from attrbound_lite.threat_models import threat_model

RADII = {"linf": [0.01, 0.05, 0.2], "l2": [0.05, 0.3, 1.0]}


def per_radius_rows(values, batch):
    return torch.tensor(values, dtype=torch.float64).repeat_interleave(batch)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_per_sample_radii_give_the_bits_of_one_ball_per_radius(norm):
    """project, step and random_init with a (B,) radius equal, row block by row block, the scalar balls."""
    gen = torch.Generator().manual_seed(0)
    radii, batch = RADII[norm], 5
    x0 = torch.rand(3 * batch, 1, 6, 6, generator=gen, dtype=torch.float64)
    far = x0 + torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    grad = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    eps = per_radius_rows(radii, batch)
    ball = threat_model(norm, eps)
    noise = ball.random_init(x0, torch.Generator().manual_seed(1))
    scalar_noise = []
    gen_scalar = torch.Generator().manual_seed(1)
    for j, e in enumerate(radii):
        rows = slice(j * batch, (j + 1) * batch)
        one = threat_model(norm, e)
        assert torch.equal(ball.project(far, x0)[rows], one.project(far[rows], x0[rows]))
        assert torch.equal(ball.step(x0, grad, 0.25 * eps)[rows], one.step(x0[rows], grad[rows], 0.25 * e))
        assert (one.distance(noise[rows], x0[rows]) <= e + 1e-12).all()
        scalar_noise.append(one.random_init(x0[rows], gen_scalar))
    if norm == "linf":  # the same uniform draws, scaled per row (l2 draws a radius per row after the directions)
        assert torch.equal(noise, torch.cat(scalar_noise))


@pytest.mark.parametrize("cls", [AttributionPGD, IFIA])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_an_attack_with_a_radius_per_row_equals_one_attack_per_radius(trained_toy, cls, norm):
    model, x, _ = trained_toy
    x = x[:4]
    y = model(x).argmax(1)
    radii, reps = RADII[norm], 2
    extra = {"k": 6} if cls is IFIA else {}
    def alone():
        return [cls(model, "saliency", eps=e, alpha=0.25 * e, steps=4, norm=norm, restarts=reps, seed=7 + j,
                    per_restart=True, **extra) for j, e in enumerate(radii)]

    starts = torch.cat([a.starts(x) for a in alone()])  # what each radius's fresh attack draws first
    expected = [a(x, y) for a in alone()]
    eps = per_radius_rows(radii, reps * len(x))
    rows = len(radii) * reps
    batched = cls(model, "saliency", eps=eps, alpha=0.25 * eps, steps=4, norm=norm, restarts=1, per_restart=True,
                  **extra)(x.repeat(rows, 1, 1, 1), y.repeat(rows), start=starts)
    assert torch.equal(batched.x_adv, torch.cat([r.x_adv for r in expected]))
    assert torch.equal(batched.deviation.euclidean, torch.cat([r.deviation.euclidean for r in expected]))
    assert torch.equal(batched.label_kept, torch.cat([r.label_kept for r in expected]))


def test_the_batched_sweep_table_equals_one_attack_call_per_radius(trained_toy):
    """validate_bounds puts every radius in one attack batch; each row equals the per-radius call with the seed
    derived for that radius, whatever the chunk size, up to the last bits of float64 rounding."""
    from attrbound_lite.runtime import derive_seed

    model, x, y = trained_toy
    attacks = [{"type": "pgd", "steps": 3}, {"type": "ifia", "steps": 3, "k": 6}]
    tables = [validate_bounds(model, (x[:6], y[:6]), RADII, ("l2", "linf"), ["saliency"], attacks, restarts=2,
                              seed=5, chunk_size=size).drop(columns=list(TIMING_COLUMNS)) for size in (None, 7)]
    for column in ("achieved_euclidean", "achieved_cosine", "topk_intersection"):
        np.testing.assert_allclose(tables[0][column], tables[1][column], rtol=1e-12, atol=1e-15)
    table = tables[0]
    target = model(x[:6]).argmax(1)
    for norm, radii in RADII.items():
        for eps in radii:
            for label, cls, extra in (("pgd", AttributionPGD, {}), ("ifia", IFIA, {"k": 6})):
                alpha = (0.25 if label == "pgd" else 0.125) * eps
                result = cls(model, "saliency", eps=eps, alpha=alpha, steps=3, norm=norm, restarts=2,
                             seed=derive_seed(5, "attack", "saliency", norm, eps, label, 0), per_restart=True,
                             **extra)(x[:6], target)
                rows = table[(table["norm"] == norm) & (table["eps"] == eps) & (table["attack"] == label)]
                rows = rows.sort_values(["restart", "sample"])
                np.testing.assert_allclose(rows["achieved_euclidean"], result.deviation.euclidean.numpy(),
                                           rtol=1e-12, atol=1e-15)
                np.testing.assert_array_equal(rows["label_kept"], result.label_kept.numpy())


def test_chunks_halve_on_out_of_memory_and_the_size_is_remembered():
    """A fake CUDA device that holds at most 5 rows: the work completes in chunks of 4, and the next call with the
    same key starts there. On a CPU an out-of-memory error is not caught, and chunks have CPU_CHUNK rows."""
    calls = []

    def fn(start, stop):
        calls.append(stop - start)
        if stop - start > 5:
            raise torch.cuda.OutOfMemoryError("fake: 5 rows fit")
        return list(range(start, stop))

    key = ("test", object())
    chunks = run_in_chunks(fn, 33, "cuda", key=key)
    assert sum(chunks, []) == list(range(33))
    assert calls[:3] == [33, 16, 8] and max(calls[3:]) == 4
    calls.clear()
    assert sum(run_in_chunks(fn, 10, "cuda", key=key), []) == list(range(10))
    assert calls == [4, 4, 2]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_in_chunks(fn, 33, "cpu", size=8)
    calls.clear()
    run_in_chunks(lambda a, b: calls.append(b - a), 2 * CPU_CHUNK + 3, "cpu")
    assert calls == [CPU_CHUNK, CPU_CHUNK, 3]

    def never_fits(start, stop):
        raise torch.cuda.OutOfMemoryError("fake: nothing fits")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_in_chunks(never_fits, 4, "cuda")


@contextlib.contextmanager
def host_reads_forbidden():
    """Inside the attacks' step loop (``trusted_inputs``), reading a tensor's value on the host raises."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a tensor value was read on the host inside the step loop")

    class Guarded(checks.trusted_inputs):
        def __enter__(self):
            self.patch = pytest.MonkeyPatch()
            for name in ("item", "__bool__", "tolist", "cpu", "numpy"):
                self.patch.setattr(torch.Tensor, name, forbidden)
            return super().__enter__()

        def __exit__(self, *exc):
            self.patch.undo()
            return super().__exit__(*exc)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(attacks_module, "trusted_inputs", Guarded)
        yield


@pytest.mark.parametrize("attribution", ["saliency", "integrated_gradients"])
def test_the_step_loop_reads_no_tensor_value_on_the_host(trained_toy, attribution):
    model, x, _ = trained_toy
    y = model(x[:4]).argmax(1)
    eps = torch.tensor([0.05, 0.1, 0.2, 0.3], dtype=torch.float64)
    with host_reads_forbidden():
        for norm in ("linf", "l2"):
            AttributionPGD(model, attribution, eps=eps, alpha=eps / 4, steps=3, norm=norm, restarts=2)(x[:4], y)
            IFIA(model, attribution, eps=eps, alpha=eps / 8, steps=3, k=6, norm=norm)(x[:4], y)
            IFIA(model, attribution, eps=eps, alpha=eps / 8, steps=3, k=6, norm=norm, kind="mass_center")(x[:4], y)
    with pytest.raises(AssertionError, match="read on the host"), host_reads_forbidden():
        with attacks_module.trusted_inputs():
            bool(eps[0] > 0)  # the guard itself works


def test_per_sample_radius_errors(trained_toy):
    model, x, y = trained_toy
    with pytest.raises(ValueError, match="positive and finite"):
        AttributionPGD(model, "saliency", eps=torch.tensor([0.1, -0.1]), alpha=0.01, steps=2)
    with pytest.raises(ValueError, match="positive and finite"):
        AttributionPGD(model, "saliency", eps=torch.tensor([0.1, float("nan")]), alpha=0.01, steps=2)
    with pytest.raises(ValueError, match="1-d floating-point"):
        AttributionPGD(model, "saliency", eps=torch.ones(2, 2), alpha=0.01, steps=2)
    with pytest.raises(ValueError, match="alpha has 3 entries and eps 2"):
        AttributionPGD(model, "saliency", eps=torch.tensor([0.1, 0.2]), alpha=torch.full((3,), 0.01), steps=2)
    attack = AttributionPGD(model, "saliency", eps=torch.tensor([0.1, 0.2]), alpha=0.01, steps=2)
    with pytest.raises(ValueError, match="2 per-sample eps values but the batch has 3 inputs"):
        attack(x[:3], y[:3])
    with pytest.raises(ValueError, match=r"start must be a tensor of shape \(2, 1, 8, 8\)"):
        attack(x[:2], y[:2], start=x[:3])
    with pytest.raises(ValueError, match="lie in \\[0, 1\\]"):
        attack(x[:2], y[:2], start=x[:2] + 2)
    with pytest.raises(ValueError, match="compile must be True, False or a torch.compile mode"):
        AttributionPGD(model, "saliency", eps=0.1, alpha=0.01, steps=2, compile="fast")
    relu = small_cnn(activation="relu", dtype=torch.float32)
    with pytest.raises(ValueError, match="compile needs a smooth model"):
        AttributionPGD(relu, "saliency", eps=0.1, alpha=0.01, steps=2, surrogate_beta=5.0, compile=True)


def test_the_compiled_step_equals_the_eager_step():
    """torch.compile of the torch.func step (double backward included) against eager autograd: equal up to
    float32 rounding, and a second attack of the same kind reuses the compiled graph."""
    model = small_cnn(dtype=torch.float32, seed=2)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=gen)
    y = model(x).argmax(1)
    eps = torch.tensor([0.05, 0.1, 0.2] * 2)
    common = dict(eps=eps, alpha=eps / 4, steps=3, norm="l2", seed=3)
    eager = AttributionPGD(model, "saliency", **common)
    compiled = AttributionPGD(model, "saliency", compile=True, **common)
    starts = eager.starts(x)
    a, b = eager(x, y, start=starts), compiled(x, y, start=starts)
    torch.testing.assert_close(b.deviation.euclidean, a.deviation.euclidean, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(b.x_adv, a.x_adv, rtol=1e-4, atol=1e-5)
    surrogate = compiled.explainer
    step = attacks_module._compiled_gradient(compiled, surrogate)
    grad, attr, logits = step(compiled, surrogate, starts, y, compiled.reference(x, y))
    xg = starts.clone().requires_grad_(True)
    sal = torch.autograd.grad(model(xg).gather(1, y[:, None]).sum(), xg, create_graph=True)[0]
    expected = torch.autograd.grad(((sal - compiled.reference(x, y)["surrogate"]) ** 2).sum(), xg)[0]
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    other = AttributionPGD(model, "saliency", eps=0.3, alpha=0.1, steps=2, compile=True)
    assert attacks_module._compiled_gradient(other, other.explainer) is step
    cosine = AttributionPGD(model, "saliency", eps=0.3, alpha=0.1, steps=2, objective="cosine", compile=True)
    assert attacks_module._compiled_gradient(cosine, cosine.explainer) is not step  # another objective, another step
    # the step holds no reference to the model between calls: the model can be freed
    import gc
    import weakref

    ref = weakref.ref(model)
    del model, eager, compiled, other, cosine, surrogate, step
    gc.collect()
    assert ref() is None


def test_float32_step_sizes_round_as_the_per_radius_scalars(trained_toy):
    """A float32 model and a step of 0.1 eps (not a power of two): the rows equal the per-radius calls, because each
    row's step size is rounded from the Python float once, as the scalar call rounds it.

    Equal to float32 rounding (rtol 1e-5), not bit for bit: the batched rows take the clean attributions of the
    4-image batch, the per-radius call those of its 8 rows, and on an AVX-512 CPU oneDNN's convolution kernels round
    the two batch sizes differently (1.7e-6 relative)."""
    import copy

    from attrbound_lite.runtime import derive_seed

    model, x, y = trained_toy
    model = copy.deepcopy(model).float()
    x = x[:4].float()
    target = model(x).argmax(1)
    radii = {"linf": [0.01, 0.07, 0.1]}
    table = validate_bounds(model, (x, y[:4]), radii, ("linf",), ["saliency"],
                            [{"type": "pgd", "steps": 4, "relative_alpha": 0.1}], restarts=2, seed=1,
                            chunk_size=8)  # one radius per chunk: the per-radius call's batch
    for eps in radii["linf"]:
        result = AttributionPGD(model, "saliency", eps=eps, alpha=0.1 * eps, steps=4, norm="linf", restarts=2,
                                seed=derive_seed(1, "attack", "saliency", "linf", eps, "pgd", 0),
                                per_restart=True)(x, target)
        rows = table[table["eps"] == eps].sort_values(["restart", "sample"])
        np.testing.assert_allclose(rows["achieved_euclidean"], result.deviation.euclidean.double().numpy(), rtol=1e-5)
