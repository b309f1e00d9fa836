"""The input contract of training, evaluation, bound validation and their command lines.

Each bad input is refused once, at the entry point, with a ``ValueError`` / ``TypeError`` (``ConfigError`` for training
options) that names the argument, what was given and the fix: never a raw torch / numpy error, never a silently wrong
result. Tiny synthetic data (8 MNIST-shaped images) and a narrow CNN: every test runs in well under a second.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attrbound_lite import cli
from attrbound_lite.checkpoints import save_checkpoint
from attrbound_lite.config import ConfigError
from attrbound_lite.evaluation import evaluate
from attrbound_lite.experiments import validate_bounds
from attrbound_lite.models import MnistCNN
from attrbound_lite.training import TrainConfig, ignored_options, train


def smooth(seed: int = 0) -> MnistCNN:
    torch.manual_seed(seed)
    return MnistCNN(activation="softplus", pool="avg", width=0.125)


def images(n: int = 8, shape=(1, 28, 28), dtype=torch.float32) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(0), dtype=dtype)


def labels(n: int = 8) -> torch.Tensor:
    return torch.arange(n) % 10


DATA = (images(), labels())
QUIET = dict(progress=False)


def run(argv, capsys) -> tuple[int, str]:
    """``attrbound ARGV``: the exit code (argparse's errors included) and stderr."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


# --------------------------------------------------------------------------------------------- training.train
def test_train_resolves_device_names():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        train(smooth(), DATA, device="gpu", **QUIET)
    with pytest.raises(ValueError, match="device must be a string or a torch.device, got int"):
        train(smooth(), DATA, device=3, **QUIET)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            train(smooth(), DATA, device="cuda", **QUIET)


def test_train_refuses_a_model_that_is_not_a_module():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module.*got function"):
        train(lambda x: x, DATA, **QUIET)


@pytest.mark.parametrize("data, error, message", [
    ((images().numpy(), labels()), TypeError, r"images of data must be a torch.Tensor, got ndarray.*torch.as_tensor"),
    ((images(), labels().numpy()), TypeError, r"labels of data must be a torch.Tensor, got ndarray.*torch.as_tensor"),
    ((images(0), labels(0)), ValueError, "data holds no samples"),
    (((images() * 255).to(torch.uint8), labels()), TypeError, r"uint8 tensor.*\.float\(\) / 255"),
    ((images() * 255, labels()), ValueError, r"images must lie in \[0, 1\]"),
    ((images(dtype=torch.float64), labels()), TypeError, "images are torch.float64 but the model's parameters are "
                                                         "torch.float32"),
    ((images(shape=(3, 32, 32)), labels()), ValueError, r"the model takes images of shape \(B, 1, 28, 28\)"),
    ((images(), labels().float()), TypeError, r"labels must be an integer tensor.*labels\.long\(\)"),
    ((images(), labels() > 4), TypeError, "labels must be an integer tensor.*got torch.bool"),
    ((images(), labels() + 5), ValueError, r"labels must lie in \[0, 9\] \(the model has 10 classes\), got values in "
                                           r"\[5, 12\]"),
])
def test_train_refuses_bad_data_before_the_first_step(data, error, message):
    with pytest.raises(error, match=message):
        train(smooth(), data, **QUIET)


@pytest.mark.parametrize("method, options, message", [
    ("natural", dict(eps=0.3), "eps is ignored by natural training; drop it or choose method pgd_at, ig_norm, aat or "
                               "advaat"),
    ("pgd_at", dict(eps=0.3, lam=2), "lam is ignored by pgd_at training; drop it or choose method ig_norm, aat or "
                                     "advaat"),
    ("natural", dict(dissimilarity="cosine"), "dissimilarity is ignored by natural training"),
    ("natural", dict(warmup_epochs=1.0), "warmup_epochs is ignored by natural training"),
    ("aat", dict(eps=0.3, ig_steps=4), "ig_steps is ignored by aat training with attribution='saliency'"),
])
def test_train_refuses_options_the_method_ignores(method, options, message):
    with pytest.raises(ConfigError, match=message):
        train(smooth(), DATA, method, **options, **QUIET)


def test_the_python_api_and_the_cli_share_one_rule():
    assert ignored_options("natural", {"eps", "lam"}, cli=True) == [
        "--eps is ignored by natural training; drop it or choose --method pgd_at, ig_norm, aat or advaat.",
        "--lam is ignored by natural training; drop it or choose --method ig_norm, aat or advaat."]
    assert ignored_options("aat", {"eps", "lam", "ig_steps"}, "integrated_gradients") == []
    assert ignored_options("pgd_at", {"eps", "steps", "alpha", "norm", "warmup_epochs"}) == []


def test_train_config_takes_numpy_integer_seeds_only():
    cfg = TrainConfig(seed=np.int64(1), epochs=np.int32(2))
    assert cfg.seed == 1 and type(cfg.seed) is int and cfg.epochs == 2 and type(cfg.epochs) is int
    for bad in (True, 1.0, "1", -1):
        with pytest.raises(ConfigError, match="seed: must be an integer >= 0"):
            TrainConfig(seed=bad)
    history = train(smooth(), DATA, "natural", batch_size=8, seed=np.int64(1), **QUIET)
    assert history.attrs["config"]["seed"] == 1


@pytest.mark.parametrize("stop_after", [0, -1, True, 1.5])
def test_train_refuses_stop_after_that_is_not_a_positive_integer(stop_after):
    with pytest.raises(ValueError, match=f"stop_after .*must be a positive integer, got {stop_after!r}"):
        train(smooth(), DATA, stop_after=stop_after, **QUIET)


def test_train_refuses_a_checkpoint_dir_that_is_a_file(tmp_path):
    path = tmp_path / "state"
    path.write_text("")
    with pytest.raises(ValueError, match=f"checkpoint_dir '{path}' is an existing file, not a folder"):
        train(smooth(), DATA, checkpoint_dir=path, **QUIET)
    with pytest.raises(TypeError, match="checkpoint_dir must be a folder"):
        train(smooth(), DATA, checkpoint_dir=1, **QUIET)


def test_valid_training_is_unchanged():
    history = train(smooth(), DATA, "natural", batch_size=4, stop_after=1, **QUIET)
    assert history.attrs["batch_losses"] and len(history) == 0  # stopped inside the first epoch


# ------------------------------------------------------------------------------------------ evaluation.evaluate
def test_evaluate_refuses_numpy_data():
    with pytest.raises(TypeError, match=r"images of data must be a torch.Tensor, got ndarray.*torch.as_tensor"):
        evaluate(smooth(), (images().numpy(), labels().numpy()), "mnist", n_pgd=0, n_attribution=0, **QUIET)


def test_evaluate_checks_the_labels_even_without_attacks():
    with pytest.raises(TypeError, match=r"labels must be an integer tensor.*labels\.long\(\)"):
        evaluate(smooth(), (images(), labels() + 0.5), "mnist", n_pgd=0, n_attribution=0, **QUIET)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\] \(the model has 10 classes\)"):
        evaluate(smooth(), (images(), labels() + 5), "mnist", n_pgd=0, n_attribution=0, **QUIET)


def test_evaluate_refuses_images_of_another_data_set_than_the_protocol():
    with pytest.raises(ValueError, match=r"shape \(B, 1, 28, 28\) but dataset='cifar10-subset' is the protocol of "
                                         r"cifar10-subset images \(B, 3, 32, 32\).*dataset='mnist' or "
                                         r"'fashion-mnist'"):
        evaluate(smooth(), DATA, "cifar10-subset", n_pgd=0, n_attribution=0, **QUIET)


def test_evaluate_takes_numpy_seeds_and_refuses_others():
    out = evaluate(smooth(), DATA, "mnist", n_pgd=0, n_attribution=0, seed=np.int64(1), **QUIET)
    assert out["n_clean"] == 8
    with pytest.raises(TypeError, match="seed must be an integer >= 0"):
        evaluate(smooth(), DATA, "mnist", n_pgd=0, n_attribution=0, seed=1.5, **QUIET)


def test_evaluate_refuses_a_relu_model_without_surrogate_before_pgd(monkeypatch):
    from attrbound_lite import evaluation
    monkeypatch.setattr(evaluation, "PGD", lambda *a, **k: pytest.fail("PGD ran before the refusal"))
    with pytest.raises(ValueError, match="surrogate_beta"):
        evaluate(MnistCNN(width=0.125), DATA, "mnist", n_pgd=8, n_attribution=2, **QUIET)


# ------------------------------------------------------------------------------- experiments.validate_bounds
def test_validate_bounds_refuses_a_string_of_norms():
    with pytest.raises(TypeError, match=r"norms must be a list of names, got the string 'l2'; write \['l2'\]"):
        validate_bounds(smooth(), DATA, [0.1], norms="l2")


def test_validate_bounds_checks_labels_and_chunk_size():
    with pytest.raises(ValueError, match=r"the labels of data must lie in \[0, 9\] \(the model has 10 classes\)"):
        validate_bounds(smooth(), (images(), labels() + 5), [0.1], norms=["l2"])
    with pytest.raises(ValueError, match="chunk_size .*must be a positive integer, got 0"):
        validate_bounds(smooth(), DATA, [0.1], norms=["l2"], chunk_size=0)


# ------------------------------------------------------------------------------------------------ the command
def test_train_and_sweep_refuse_an_existing_file_as_out(tmp_path, capsys):
    path = tmp_path / "taken"
    path.write_text("")
    code, err = run(["train", "--dataset", "mnist", "--out", path], capsys)
    assert code == 2 and f"argument --out: '{path}' is an existing file, not a folder" in err, err
    assert "Traceback" not in err
    code, err = run(["sweep", tmp_path / "sweep.yaml", "--out", path], capsys)
    assert code == 2 and f"argument --out: '{path}' is an existing file, not a folder" in err, err
    code, err = run(["train", "--dataset", "mnist", "--out", path / "run"], capsys)
    assert code == 2 and "an existing file, not a folder" in err, err


def _checkpoint(folder, model, dataset="mnist"):
    folder.mkdir()
    save_checkpoint(model, folder, {"data": {"name": dataset}})
    return folder


def test_evaluate_cli_refuses_another_data_set_of_the_same_shape(tmp_path, capsys):
    folder = _checkpoint(tmp_path / "run", smooth())
    code, err = run(["evaluate", folder, "--dataset", "fashion-mnist", "--device", "cpu"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "checkpoint's data set (mnist) does not match --dataset fashion-mnist" in err
    assert "--dataset mnist" in err


def test_evaluate_cli_needs_a_surrogate_for_relu_and_refuses_one_for_smooth_models(tmp_path, capsys):
    relu = _checkpoint(tmp_path / "relu", MnistCNN(width=0.125))
    code, err = run(["evaluate", relu, "--device", "cpu"], capsys)
    assert code == 2 and "pass --surrogate-beta (e.g. 10)" in err and "--n-attribution 0" in err, err
    folder = _checkpoint(tmp_path / "smooth", smooth())
    code, err = run(["evaluate", folder, "--surrogate-beta", "10", "--device", "cpu"], capsys)
    assert code == 2 and "the model is already smooth" in err and "drop --surrogate-beta" in err, err


# A second held-out tour: helpers, grids, data and the CLI


def test_training_helpers_checked():
    from attrbound_lite.training import dissimilarity, learning_rate_at, scaled_for_batch
    cfg = TrainConfig(lr=1e-3, epochs=4)
    assert scaled_for_batch(cfg, np.int64(256)).batch_size == 256
    with pytest.raises(TypeError, match="TrainConfig"):
        scaled_for_batch({"batch_size": 128}, 256)
    with pytest.raises(ValueError, match="batches"):
        learning_rate_at(scaled_for_batch(cfg, 1024), 0, 0)
    with pytest.raises(ValueError, match="shapes"):
        dissimilarity(torch.rand(2, 4), torch.rand(2, 5))


def test_train_refuses_data_without_labels_and_models_without_parameters():
    from torch.utils.data import TensorDataset
    with pytest.raises(ValueError, match="TensorDataset"):
        train(smooth(), TensorDataset(images()), "natural", 1, **QUIET)
    frozen = smooth()
    frozen.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(frozen, DATA, "natural", 1, **QUIET)


def test_grids_and_sample_ids_checked():
    from attrbound_lite.evaluation import ifia_by_ig_steps
    from attrbound_lite.experiments import bound_table, summarize
    with pytest.raises(TypeError, match="ig_steps_grid"):
        ifia_by_ig_steps(smooth(), DATA, "mnist", 5)
    with pytest.raises(ValueError, match="empty"):
        ifia_by_ig_steps(smooth(), DATA, "mnist", [])
    for grid in ("0.1", {"l2": "0.1"}):
        with pytest.raises(TypeError, match="string"):
            validate_bounds(smooth(), DATA, grid, norms=["l2"])
    for ids in ([1.5], [True], "01"):
        with pytest.raises(TypeError, match="sample_ids"):
            validate_bounds(smooth(), DATA, [0.1], norms=["l2"], sample_ids=ids)
    with pytest.raises(TypeError, match="on_progress"):
        validate_bounds(smooth(), DATA, [0.1], norms=["l2"], on_progress="x")
    table = validate_bounds(smooth(), DATA, np.float32(0.1), norms=["l2"], n_samples=np.int64(1),
                            restarts=np.int64(1), attacks=["pgd"], attributions=["saliency"])
    assert len(table) == 1
    assert len(bound_table(smooth(), DATA, torch.tensor(0.1), norms=["l2"], n_samples=np.int64(1))) == 1
    with pytest.raises(TypeError, match=r"\['eps'\]"):
        summarize(table, by="eps")
    with pytest.raises(TypeError, match="DataFrame"):
        summarize(None)


def test_data_arguments_checked():
    from attrbound_lite.data import ImageDataset, fingerprint, load_dataset
    for kw in (dict(root=123), dict(mirror=123)):
        with pytest.raises(TypeError, match="folder"):
            load_dataset("mnist", "test", **kw)
    with pytest.raises(ValueError, match="seed"):
        load_dataset("mnist", "test", subset=4, seed=2 ** 70)
    with pytest.raises(TypeError, match="torch.as_tensor"):
        ImageDataset(images().numpy(), labels(), "mnist", "test", [str(i) for i in range(10)])
    with pytest.raises(TypeError, match="classes"):
        ImageDataset(images(), labels(), "mnist", "test", None)
    with pytest.raises(TypeError, match="arrays or tensors"):
        fingerprint(images().tolist(), labels())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fingerprint(images() * 255, labels())


def test_train_recipe_checks_its_seed(tmp_path):
    from attrbound_lite import zoo
    for seed in ("0", -1):
        with pytest.raises(TypeError, match="init_seed"):
            zoo.train_recipe(zoo.REFERENCE["mnist-natural"], tmp_path, init_seed=seed)


def test_cli_refuses_an_empty_out(capsys):
    code, err = run(["train", "--out", "", "--method", "natural"], capsys)
    assert code == 2 and "empty path" in err
