"""Training methods on real MNIST: losses fall, the attribution term reaches the weights, runs are
deterministic and resumable; the dissimilarities and the IG of the loss against independent oracles."""

from __future__ import annotations

import pytest
import torch
from scipy import spatial, stats

from attrbound_lite import training, training_methods
from attrbound_lite.evaluation import evaluate
from attrbound_lite.models import model_for_dataset
from attrbound_lite.training import METHODS, TrainConfig, dissimilarity, loss_integrated_gradients, train

FAST = dict(batch_size=64, eps=0.1, steps=3, ig_steps=4, progress=False)


def fast(method: str, **extra) -> dict:
    """FAST (and ``extra``) without the options that ``method`` ignores: train() refuses those."""
    options = {**FAST, **extra}
    attribution = options.get("attribution", "saliency")
    return {k: v for k, v in options.items()
            if k not in TrainConfig.model_fields or not training.ignored_options(method, {k}, attribution)}


def narrow(seed: int = 0, **kw):
    torch.manual_seed(seed)
    config = dict(width=0.25, activation="softplus", pool="avg", beta=10.0) | kw
    return model_for_dataset("mnist", **config)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", METHODS)
def test_each_method_lowers_its_training_loss(method, mnist_small):
    model = narrow()
    history = train(model, mnist_small, method, epochs=3, lr=3e-3, **fast(method))
    assert list(history["epoch"]) == [1, 2, 3]
    assert history["loss"].iloc[-1] < 0.85 * history["loss"].iloc[0], history
    assert history["accuracy"].iloc[-1] > history["accuracy"].iloc[0]
    if method in ("ig_norm", "aat", "advaat"):
        assert (history["regulariser"] > 0).all()
    else:
        assert (history["regulariser"] == 0).all()


@pytest.mark.parametrize("method", ["ig_norm", "aat", "advaat"])
@pytest.mark.parametrize("activation", ["softplus", "relu"])
def test_the_regulariser_reaches_the_weights(method, activation, mnist_small):
    """The regulariser alone has a non-zero gradient in every layer (for ReLU models: through the
    weight-sharing softplus surrogate), and the cross-entropy is the real model's."""
    beta = {"surrogate_beta": 5.0} if activation == "relu" else {}
    model = narrow(activation=activation)
    x, y = mnist_small.images[:32], mnist_small.labels[:32]
    loss = training_methods._METHODS[method](model, TrainConfig(method=method, eps=0.1, steps=2, ig_steps=4, **beta))
    total, ce, reg, logits = loss.loss(x, y, torch.Generator().manual_seed(0))
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(reg, list(params.values()), allow_unused=True)
    for name, grad in zip(params, grads, strict=True):
        if name.endswith("weight"):
            assert grad is not None and grad.abs().sum() > 0, f"no regulariser gradient reaches {name}"
    if method == "aat":  # the clean cross-entropy of the real model (not of its surrogate)
        torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(model(x), y))


@pytest.mark.parametrize("method", ["ig_norm", "aat"])
def test_the_regulariser_changes_the_weights(method, mnist_small):
    """Same init, same seed, one epoch: lam = 1 and lam = 0 end in different weights (for these two
    methods lam enters only the outer loss)."""
    data = (mnist_small.images[:128], mnist_small.labels[:128])
    runs = {}
    for lam in (0.0, 1.0):
        model = narrow()
        train(model, data, method, epochs=1, lam=lam, **fast(method))
        runs[lam] = weights(model)
    changed = [k for k in runs[0.0] if not torch.equal(runs[0.0][k], runs[1.0][k])]
    assert any(k.startswith("1.") for k in changed), f"first conv layer untouched by the regulariser: {changed}"


def test_same_seed_same_weights_other_seed_other_weights(mnist_small):
    data = (mnist_small.images[:192], mnist_small.labels[:192])
    runs = []
    for seed in (0, 0, 1):
        model = narrow()
        train(model, data, "advaat", epochs=1, seed=seed, **fast("advaat"))
        runs.append(weights(model))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_interrupted_training_resumes_to_the_same_weights(mnist_small, tmp_path, monkeypatch):
    data = (mnist_small.images[:192], mnist_small.labels[:192])
    straight = narrow()
    train(straight, data, "pgd_at", epochs=3, **fast("pgd_at"))

    model = narrow()
    calls = {"n": 0}
    original = training_methods.PGDAT.loss

    def crash_in_epoch_two(self, x, y, gen):
        calls["n"] += 1
        if calls["n"] == 5:  # 3 batches per epoch: the 5th is inside epoch 2
            raise KeyboardInterrupt
        return original(self, x, y, gen)

    monkeypatch.setattr(training_methods.PGDAT, "loss", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(model, data, "pgd_at", epochs=3, checkpoint_dir=tmp_path, **fast("pgd_at"))
    monkeypatch.setattr(training_methods.PGDAT, "loss", original)
    resumed = narrow(seed=123)  # another init: everything must come from the saved state
    history = train(resumed, data, "pgd_at", epochs=3, checkpoint_dir=tmp_path, **fast("pgd_at"))
    assert list(history["epoch"]) == [1, 2, 3]
    assert all(torch.equal(v, straight.state_dict()[k]) for k, v in resumed.state_dict().items())
    with pytest.raises(ValueError, match="trained for 3 epochs"):
        train(narrow(), data, "pgd_at", epochs=2, checkpoint_dir=tmp_path, **fast("pgd_at"))
    with pytest.raises(ValueError, match="different training run"):
        train(narrow(), data, "pgd_at", epochs=3, checkpoint_dir=tmp_path, **fast("pgd_at", eps=0.2))


def test_dissimilarities_match_scipy_and_their_invariances():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 1, 5, 5, generator=gen, dtype=torch.float64), torch.randn(4, 1, 5, 5, generator=gen,
                                                                                     dtype=torch.float64)
    r = torch.tensor([stats.pearsonr(a[i].flatten(), b[i].flatten())[0] for i in range(4)], dtype=torch.float64)
    torch.testing.assert_close(dissimilarity(a, b, "pearson"), 1 - r)
    cos = torch.tensor([1 - spatial.distance.cosine(a[i].flatten(), b[i].flatten()) for i in range(4)],
                       dtype=torch.float64)
    torch.testing.assert_close(dissimilarity(a, b, "cosine"), 1 - cos)
    torch.testing.assert_close(dissimilarity(a, b, "l2"), (a - b).flatten(1).norm(dim=1))
    torch.testing.assert_close(dissimilarity(a, 3 * a + 2, "pearson"), torch.zeros(4, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(dissimilarity(a, 3 * a, "cosine"), torch.zeros(4, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    with pytest.raises(ValueError, match="pearson"):
        dissimilarity(a, b, "kl")


def test_integrated_gradients_of_the_loss_are_complete(mnist_small):
    """Completeness: sum IG = CE(x_end) - CE(x), to within the Riemann error at 400 points."""
    model = narrow().double()
    x = mnist_small.images[:6].double()
    x_end = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)).clamp(0, 1)
    y = mnist_small.labels[:6]
    ig = loss_integrated_gradients(model, x, x_end, y, steps=400, create_graph=False)
    ce = torch.nn.functional.cross_entropy
    gap = ce(model(x_end), y, reduction="none") - ce(model(x), y, reduction="none")
    torch.testing.assert_close(ig.flatten(1).sum(1), gap.detach(), rtol=2e-2, atol=1e-3)


def test_bad_training_configs_are_refused(mnist_small):
    data = (mnist_small.images[:8], mnist_small.labels[:8])
    with pytest.raises(ValueError, match="method: must be one of natural, pgd_at"):
        train(narrow(), data, "trades", progress=False)
    with pytest.raises(ValueError, match="needs eps"):
        train(narrow(), data, "pgd_at", progress=False)
    with pytest.raises(ValueError, match="surrogate"):
        train(narrow(activation="relu"), data, "aat", eps=0.1, progress=False)
    with pytest.raises(ValueError, match="dissimilarity"):
        train(narrow(), data, "aat", eps=0.1, dissimilarity="kl", progress=False)
    with pytest.raises(ValueError, match="eps"):
        train(narrow(), data, "pgd_at", eps=-0.1, progress=False)
    with pytest.raises(ValueError, match="lam"):
        train(narrow(), data, "aat", eps=0.1, lam=-1.0, progress=False)
    with pytest.raises(ValueError, match="images"):
        train(narrow(), (data[0][:, 0], data[1]), progress=False)


def test_evaluate_reports_rar_metrics_consistently(mnist_small):
    model = narrow()
    train(model, mnist_small, "natural", epochs=2, lr=3e-3, batch_size=64, progress=False)
    data = (mnist_small.images[:64], mnist_small.labels[:64])
    out = evaluate(model, data, "mnist", n_pgd=64, n_attribution=8, ifia_steps=5, ig_steps=16, attack_ig_steps=4,
                   progress=False)
    assert out["clean_accuracy"] > 0.5
    assert 0 <= out["pgd_accuracy"] <= out["clean_accuracy"]
    assert 0 <= out["topk_intersection"] <= 1 and -1 <= out["kendall_tau"] <= 1
    assert out["n_attribution"] == 8 and out["eps"] == 0.3
    weak = evaluate(model, data, "mnist", n_pgd=64, n_attribution=0, eps=0.01, progress=False)
    assert weak["pgd_accuracy"] >= out["pgd_accuracy"]
    with pytest.raises(ValueError, match="unknown evaluation settings"):
        evaluate(model, data, "mnist", epsilon=0.1)
    with pytest.raises(ValueError, match="missing"):
        evaluate(model, data, None)


@pytest.mark.parametrize("bad, message", [
    (dict(epochs=0), r"^epochs: must be a positive integer, got 0$"),
    (dict(batch_size=True), r"^batch_size: must be a positive integer, got True$"),
    (dict(lr=-1e-3), r"^lr: must be a positive number, got -0\.001$"),
    (dict(lr="fast"), r"^lr: must be a positive number, got 'fast'$"),
    (dict(lam=float("inf")), r"^lam: must be a non-negative number, got inf$"),
    (dict(optimizer="rmsprop"), r"^optimizer: must be one of adam, sgd; got 'rmsprop'$"),
    (dict(method="pgd_at", norm="l1", eps=0.1), r"^norm: must be one of l2, linf; got 'l1'$"),
    (dict(method="aat"), r"^method 'aat' needs eps"),
    (dict(method="pgd_at", eps=0.1, alpha=0), r"^alpha: must be a positive number or null, got 0$"),
    (dict(attribution="gradcam"), r"^attribution: must be one of saliency"),
    (dict(seed=-1), r"^seed: must be an integer >= 0, got -1$"),
    (dict(epoch=2), r"^epoch: unknown key; allowed keys here: method, epochs, batch_size"),
    (dict(epochs=0, lr=0), r"^epochs: must be a positive integer, got 0; lr: must be a positive number, got 0$"),
    (dict(lr_warmup_epochs=-1), r"^lr_warmup_epochs: must be a non-negative number, got -1$"),
    (dict(lr_warmup_from=1e-4), r"^lr_warmup_from: only with a learning-rate warm-up \(lr_warmup_epochs > 0\)$"),
    (dict(lr=1e-3, lr_warmup_epochs=1, lr_warmup_from=2e-3), r"^lr_warmup_from: must be at most lr \(0\.001\)"),
])
def test_bad_train_configs_name_the_field(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)


def test_train_config_defaults_and_dict():
    cfg = TrainConfig(method="pgd_at", eps=0.3, steps=4, lr="2e-3")  # YAML 1.1's 2e-3 is a string
    assert cfg.alpha == 2.5 * 0.3 / 4 and "alpha" not in cfg.model_fields_set  # derived, not given
    assert cfg.lr == 0.002 and TrainConfig(method="pgd_at", eps=0.3, alpha=0.01).alpha == 0.01
    assert TrainConfig().alpha is None  # natural training has no inner maximisation
    assert list(cfg.to_dict()) == ["method", "epochs", "batch_size", "lr", "optimizer", "weight_decay", "eps", "norm",
                                   "steps", "alpha", "lam", "dissimilarity", "attribution", "ig_steps",
                                   "surrogate_beta", "warmup_epochs", "augment", "seed"]
    assert TrainConfig(**cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="epochs: must be a positive integer"):
        cfg.epochs = 0  # assignments are validated too
    # the learning-rate warm-up fields appear only when set (older configs and their hashes are unchanged)
    warm = TrainConfig(lr=2e-3, lr_warmup_epochs=0.5, lr_warmup_from=1e-3)
    assert list(warm.to_dict())[-2:] == ["lr_warmup_epochs", "lr_warmup_from"]
    assert TrainConfig(**warm.to_dict()) == warm


def test_train_with_a_config_equals_the_old_call_style(mnist_small):
    """train(model, data, TrainConfig(...)) and train(model, data, method, epochs, ..., **options): the same run,
    bit for bit (two batches)."""
    data = (mnist_small.images[:64], mnist_small.labels[:64])
    old_style, new_style = narrow(), narrow()
    a = train(old_style, data, "advaat", 1, 32, 2e-3, 0.1, steps=2, lam=0.5, seed=3, progress=False)
    b = train(new_style, data, TrainConfig(method="advaat", epochs=1, batch_size=32, lr=2e-3, eps=0.1, steps=2,
                                           lam=0.5, seed=3), progress=False)
    assert all(torch.equal(v, new_style.state_dict()[k]) for k, v in old_style.state_dict().items())
    assert a.attrs["config"] == b.attrs["config"]
    assert a.drop(columns="seconds").equals(b.drop(columns="seconds"))
    with pytest.raises(TypeError, match="a TrainConfig and the training options"):
        train(narrow(), data, TrainConfig(), epochs=2, progress=False)


def test_radius_warm_up_grows_linearly_then_holds(mnist_small, monkeypatch):
    """warmup_epochs = 1 over 4 batches: radii eps/4, eps/2, 3 eps/4, eps, then eps; the step size scales along."""
    seen = []
    real = training_methods.threat_model

    def spy(norm, eps):
        seen.append(eps)
        return real(norm, eps)

    monkeypatch.setattr(training_methods, "threat_model", spy)
    steps = []
    ascend = training_methods.Method.ascend
    monkeypatch.setattr(training_methods.Method, "ascend", lambda self, *a: steps.append(self.cfg.alpha * self.scale)
                        or ascend(self, *a))
    x, y = mnist_small.tensors()
    train(narrow(), (x[:128], y[:128]), "pgd_at", epochs=2, batch_size=32, eps=0.2, steps=2, warmup_epochs=1.0,
          progress=False)
    assert seen[1:] == pytest.approx([0.05, 0.1, 0.15, 0.2])  # seen[0]: the full-radius model built at start
    assert steps == pytest.approx([0.25 * 2.5 * 0.2 / 2 * k for k in (1, 2, 3, 4)] + [2.5 * 0.2 / 2] * 4)


def test_crop_flip_is_a_shifted_crop_of_the_padded_image_or_its_mirror():
    x = torch.rand(16, 3, 8, 8)
    gen = torch.Generator().manual_seed(3)
    out = training.augment_crop_flip(x, gen, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert out.shape == x.shape
    flips = 0
    for i in range(16):  # the oracle: search every offset and flip
        crops = [(c, dy, dx) for dy in range(5) for dx in range(5)
                 for c in (padded[i, :, dy:dy + 8, dx:dx + 8], padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1))]
        matches = [k for k, (c, _, _) in enumerate(crops) if torch.equal(c, out[i])]
        assert matches, f"sample {i} is not a crop of its padded image"
        flips += matches[0] % 2
    assert 0 < flips < 16  # both flipped and unflipped samples occur
    assert torch.equal(out, training.augment_crop_flip(x, torch.Generator().manual_seed(3), pad=2))


def test_first_batch_losses_are_recorded_and_replayed_by_stop_after(mnist_small, tmp_path):
    x, y = mnist_small.tensors()
    data = (x[:256], y[:256])
    full = train(narrow(), data, "natural", epochs=3, batch_size=32, progress=False, checkpoint_dir=tmp_path)
    assert len(full.attrs["batch_losses"]) == training.FIRST_BATCHES == 20 and len(full) == 3  # of 24 steps
    part = train(narrow(), data, "natural", epochs=3, batch_size=32, progress=False, stop_after=5)
    assert part.attrs["batch_losses"] == full.attrs["batch_losses"][:5] and len(part) == 0
    # a resumed run keeps the losses logged before the interruption
    again = train(narrow(), data, "natural", epochs=3, batch_size=32, progress=False, checkpoint_dir=tmp_path)
    assert again.attrs["batch_losses"] == full.attrs["batch_losses"]


def test_scaled_for_batch_states_the_linear_rule_and_its_warm_up():
    """Goyal et al.'s linear scaling rule and gradual warm-up, exactly; nothing else of the config changes."""
    cfg = TrainConfig(method="pgd_at", eps=0.3, steps=5, lr=1e-3, epochs=4, warmup_epochs=0.5, seed=7)
    big = training.scaled_for_batch(cfg, 1024)
    assert (big.batch_size, big.lr, big.lr_warmup_epochs, big.lr_warmup_from) == (1024, 8e-3, 1.0, 1e-3)
    assert big.to_dict() == {**cfg.to_dict(), "batch_size": 1024, "lr": 8e-3, "lr_warmup_epochs": 1.0,
                             "lr_warmup_from": 1e-3}
    assert "alpha" not in big.model_fields_set and big.alpha == cfg.alpha  # still the derived default
    short = training.scaled_for_batch(TrainConfig(lr=2e-3, epochs=1), 4096, base_batch=256, warmup_epochs=None)
    assert (short.lr, short.lr_warmup_epochs, short.lr_warmup_from) == (0.032, 0.5, 2e-3)  # at most half the run
    root = training.scaled_for_batch(cfg, 512, rule="sqrt", warmup_epochs=0.25)
    assert (root.lr, root.lr_warmup_epochs) == (2e-3, 0.25)  # sqrt(512 / 128) = 2
    none = training.scaled_for_batch(cfg, 1024, warmup_epochs=0)
    assert none.lr == 8e-3 and none.lr_warmup_epochs == 0 and "lr_warmup_epochs" not in none.to_dict()
    smaller = training.scaled_for_batch(big, 64)  # from a scaled config: its warm-up is dropped, no warm-up below base
    assert (smaller.lr, smaller.lr_warmup_epochs, smaller.lr_warmup_from) == (5e-4, 0.0, None)
    assert training.scaled_for_batch(cfg, 128) == cfg  # the base batch: the config itself
    for bad, match in ((dict(batch_size=0), "batch_size"), (dict(batch_size=256, base_batch=0), "base_batch"),
                       (dict(batch_size=256, rule="cubic"), "rule"),
                       (dict(batch_size=256, warmup_epochs=-1.0), "warmup_epochs")):
        with pytest.raises(ValueError, match=match):
            training.scaled_for_batch(cfg, **bad)


def test_learning_rate_warm_up_is_linear_then_constant_and_reaches_the_optimiser(mnist_small, monkeypatch):
    cfg = TrainConfig(lr=8e-3, lr_warmup_epochs=0.5, lr_warmup_from=1e-3)
    assert [training.learning_rate_at(cfg, s, 8) for s in range(6)] == pytest.approx(
        [1e-3 + 7e-3 * k / 4 for k in (1, 2, 3)] + [8e-3] * 3)
    assert training.learning_rate_at(cfg, 3, 8) == 8e-3  # exactly lr once the warm-up is over
    assert training.learning_rate_at(TrainConfig(lr=4e-3, epochs=2, lr_warmup_epochs=2), 0, 2) == 1e-3  # from 0
    assert training.learning_rate_at(TrainConfig(lr=4e-3), 0, 2) == 4e-3
    seen = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: seen.append(self.param_groups[0]["lr"])
                        or step(self, *a, **k))
    x, y = mnist_small.tensors()
    train(narrow(), (x[:256], y[:256]), TrainConfig(batch_size=32, epochs=2, lr=8e-3, lr_warmup_epochs=0.5,
                                                      lr_warmup_from=1e-3), progress=False)
    assert seen == [training.learning_rate_at(cfg, s, 8) for s in range(16)]


@pytest.mark.parametrize("method", METHODS)
def test_a_large_batch_run_trains(method, mnist_small):
    """The scaled setting end to end on a tiny run: 2 batches of 128 (8 x the base batch of 16), lr and warm-up set."""
    x, y = mnist_small.tensors()
    extra = {} if method == "natural" else dict(eps=0.1, steps=2) | ({"ig_steps": 2} if method == "ig_norm" else {})
    cfg = training.scaled_for_batch(TrainConfig(method=method, batch_size=16, lr=1e-3, epochs=2, **extra), 128)
    assert (cfg.lr, cfg.lr_warmup_epochs, cfg.lr_warmup_from) == (8e-3, 1.0, 1e-3)
    model, before = narrow(), weights(narrow())
    history = train(model, (x[:256], y[:256]), cfg, progress=False)
    assert len(history) == 2 and history.attrs["config"] == cfg.to_dict()
    assert all(torch.isfinite(torch.tensor(history.attrs["batch_losses"])))
    assert len(history.attrs["batch_losses"]) == 4
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("method", ["pgd_at", "ig_norm", "aat", "advaat"])
def test_inner_maximisations_read_no_tensor_value_on_the_host(method, mnist_small, monkeypatch):
    """No .item(), bool(tensor) or .tolist() inside the inner maximisation (each is a device synchronisation on a GPU),
    and a batch's loss reads as many values with 4 inner steps as with 1 (the entry checks only)."""
    x, y = mnist_small.images[:16], mnist_small.labels[:16]
    reads = {"n": 0}
    for name in ("__bool__", "item", "tolist"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _real=real, **k: reads.__setitem__("n", reads["n"] + 1)
                            or _real(self, *a, **k))
    ascend, inside = training_methods.Method.ascend, []

    def counted(self, *args):
        start = reads["n"]
        out = ascend(self, *args)
        inside.append(reads["n"] - start)
        return out

    monkeypatch.setattr(training_methods.Method, "ascend", counted)
    per_loss = []
    for steps in (1, 4):
        loss = training_methods._METHODS[method](narrow(), TrainConfig(method=method, eps=0.1, steps=steps, ig_steps=2))
        reads["n"] = 0
        loss.loss(x, y, torch.Generator().manual_seed(0))
        per_loss.append(reads["n"])
    assert inside == [0, 0], inside
    assert per_loss[0] == per_loss[1], per_loss
