"""The input contract of training, evaluation, bound validation and their command lines.

Each bad input is refused once, at the entry point, with a ``ValueError`` / ``TypeError`` (``ConfigError`` for training
options) that names the argument, what was given and the fix: never a raw torch / numpy error, never a silently wrong
result. Tiny synthetic data (8 MNIST-shaped images) and a narrow CNN: every test runs in well under a second.
"""

from __future__ import annotations

import json

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


def test_evaluate_cli_evaluates_another_data_set_of_the_same_shape_as_a_transfer(tmp_path, capsys, data_root):
    """An MNIST model on Fashion-MNIST images (same shape) is a legitimate transfer evaluation: run, with a note and
    the row naming both data sets (tour 16); another shape is refused (test_cli_contract)."""
    folder = _checkpoint(tmp_path / "run", smooth())
    code, err = run(["evaluate", folder, "--dataset", "fashion-mnist", "--device", "cpu", "--subset", "8",
                     "--n-pgd", "2", "--n-attribution", "0", "--data-root", str(data_root), "--no-progress",
                     "--json", str(tmp_path / "row.json")], capsys)
    assert code == 0 and "a model trained on mnist is evaluated on fashion-mnist images" in err, err
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["trained_on"] == "mnist" and row["dataset"] == "fashion-mnist"


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


# A third held-out tour: the zoo's helpers, recipes, data sets, checkpoints and the training helpers


def _zoo_calls(file):
    from attrbound_lite import zoo
    recipe = zoo.REFERENCE["mnist-natural"]
    return [
        (lambda: zoo.recipe_seed("mnist-natural"), TypeError, r"recipe_seed takes a Recipe, got the str"),
        (lambda: zoo.recipe_seed(None), TypeError, "recipe_seed takes a Recipe, got NoneType"),
        (lambda: zoo.model_folder({}, "zoo"), TypeError, "model_folder takes a Recipe, got dict"),
        (lambda: zoo.model_folder(recipe, ""), ValueError, r"root \(the zoo's folder\) is an empty path"),
        (lambda: zoo.model_folder(recipe, file), ValueError, "is an existing file, not a folder"),
        (lambda: zoo.training_history(None), TypeError, "meta must be the sidecar dict of get_model"),
        (lambda: zoo.training_history({"metadata": {}}), ValueError, "meta records no training history"),
        (lambda: zoo.initial_model("mnist-natural", 0), TypeError, "initial_model takes a Recipe"),
        (lambda: zoo.initial_model(recipe, "0"), TypeError, r"init_seed must be an integer >= 0.*got '0'"),
        (lambda: zoo.initial_model(recipe, -1), TypeError, "init_seed must be an integer >= 0"),
        (lambda: zoo.initial_model(recipe, 1.5), TypeError, "init_seed must be an integer >= 0"),
        (lambda: zoo.initial_model(recipe, 0, file), ValueError, "has no init: .*would be ignored; drop init_weights"),
        (lambda: zoo.initial_model(recipe, 0, 3), TypeError, "init_weights must be a checkpoint path"),
        (lambda: zoo.initial_model(zoo.REFERENCE["mnist-pgd_at"], 0), ValueError, "pass that model's checkpoint as "
                                                                                  "init_weights"),
        (lambda: zoo.train_recipe(recipe, file + "-run", init_seed=0, init_weights=file), ValueError, "has no init"),
        (lambda: zoo.stale_folders(file), ValueError, "is an existing file, not a folder"),
        (lambda: zoo.stale_folders(3), TypeError, "must be a string, a pathlib.Path or None"),
        (lambda: zoo.zoo_table(file), ValueError, "is an existing file, not a folder"),
        (lambda: zoo.load_reference("mnist-natural", root=file), ValueError, "is an existing file, not a folder"),
        (lambda: zoo.build_zoo(["mnist-natural"], root=file, progress=False), ValueError, "not a folder"),
        (lambda: zoo.get_model(recipe, file, progress=False), ValueError, "is an existing file, not a folder"),
        (lambda: zoo.Recipe(dataset="mnist", model=dict(widht=0.5)), ConfigError,
         r"model\.widht: unknown key; allowed keys here: activation, beta, width, num_classes, pool"),
        (lambda: zoo.Recipe(dataset="cifar10-subset", model=dict(depth=2)), ConfigError, r"model\.depth: unknown key"),
    ]


@pytest.mark.parametrize("case", range(len(_zoo_calls("f"))))
def test_zoo_helpers_refuse_bad_input(case, tmp_path):
    file = tmp_path / "a-file"
    file.write_text("")
    call, error, message = _zoo_calls(str(file))[case]
    with pytest.raises(error, match=message):
        call()


def test_zoo_helpers_still_take_valid_input(tmp_path):
    from attrbound_lite import zoo
    recipe = zoo.REFERENCE["mnist-natural"]
    assert zoo.recipe_seed(recipe) == 7938621019760612873  # the committed model's initial weights: unchanged
    assert (zoo.ZOO_ROOT / recipe.key / "manifest.json").is_file()  # and its key
    assert zoo.model_folder(recipe, tmp_path) == tmp_path / recipe.key
    assert zoo.stale_folders(tmp_path / "new") == [] and zoo.stale_folders(tmp_path) == []
    a, b = zoo.initial_model(recipe, np.int64(3)), zoo.initial_model(recipe, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    history = {"epoch": [1], "loss": [0.5]}
    assert len(zoo.training_history({"metadata": {"history": history}})) == 1
    assert len(zoo.training_history({"history": history})) == 1  # a manifest of load_reference
    assert zoo.Recipe(dataset="mnist", model=dict(width=0.5, num_classes=10)).model["width"] == 0.5
    # fine-tuning: the parent's weights are loaded; another architecture's are refused by name
    parent = zoo.Recipe(dataset="mnist", model=dict(width=0.125))
    child = zoo.Recipe(dataset="mnist", method="pgd_at", eps=0.1, model=dict(width=0.125), init=parent)
    weights = save_checkpoint(zoo.initial_model(parent, 1), tmp_path / "parent.safetensors")
    tuned = zoo.initial_model(child, 0, weights)
    assert torch.equal(next(tuned.parameters()), next(zoo.initial_model(parent, 1).parameters()))
    other = save_checkpoint(MnistCNN(width=0.25), tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="holds a MnistCNN with config .* pass the checkpoint of"):
        zoo.initial_model(child, 0, other)


def _data_calls():
    from attrbound_lite.data import ImageDataset, fingerprint, load_dataset
    names = [str(i) for i in range(10)]
    return [
        (lambda: load_dataset("mnist", "test", download="no"), TypeError, "download must be True or False"),
        (lambda: load_dataset("mnist", "test", download=0), TypeError,
         r"download must be True or False, got 0 \(int\)"),
        (lambda: ImageDataset(images(), labels() + 5, "mnist", "test", names), ValueError,
         r"labels must lie in \[0, 9\] .*got values in \[5, 12\]"),
        (lambda: ImageDataset(images(), labels() - 1, "mnist", "test", names), ValueError,
         r"labels must lie in \[0, 9\]"),
        (lambda: ImageDataset(images(), labels(), "mnist", "test", names[:5]), ValueError,
         r"labels must lie in \[0, 4\]"),
        (lambda: ImageDataset(images(), labels(), "mnist", "test", []), ValueError, "classes is empty"),
        (lambda: ImageDataset(images(), labels(), "mnist", "test", names, indices=torch.arange(7)), ValueError,
         r"indices must be None .* of shape \(8,\).*got torch.int64 of shape \(7,\)"),
        (lambda: ImageDataset(images(), labels(), "mnist", "test", names, indices=list(range(8))), ValueError,
         "indices must be None .*got list"),
        (lambda: fingerprint(images(), labels(7)), ValueError, r"labels must have shape \(N,\) for N images"),
        (lambda: fingerprint(images().numpy(), labels().numpy()[:3]), ValueError, r"labels must have shape \(N,\)"),
        (lambda: fingerprint(images(), labels().float()), TypeError, "labels must be integers"),
        (lambda: fingerprint(images().numpy() * 255, labels().numpy()), ValueError,
         r"float images must lie in \[0, 1\]"),
    ]


@pytest.mark.parametrize("case", range(len(_data_calls())))
def test_data_refuses_bad_input(case):
    call, error, message = _data_calls()[case]
    with pytest.raises(error, match=message):
        call()


def test_fingerprint_takes_numpy_float_images_like_tensors():
    from attrbound_lite.data import ImageDataset, fingerprint
    x, y = images(), labels()
    expected = fingerprint(x, y)
    assert fingerprint(x.numpy(), y.numpy()) == expected  # float32 array
    assert fingerprint((x * 255).round().to(torch.uint8).numpy(), y.numpy().astype(np.int32)) == expected
    assert fingerprint(x.double().numpy(), y.numpy()) == fingerprint(x.double(), y)  # float64 array as a tensor
    data = ImageDataset(x, y, "mnist", "test", [str(i) for i in range(10)], indices=torch.arange(8))
    assert data.fingerprint == expected and len(data) == 8
    assert ImageDataset(x[:0], y[:0], "mnist", "test", ["a"]).fingerprint == fingerprint(x[:0], y[:0])


def test_checkpoints_refuse_an_empty_path(tmp_path, monkeypatch):
    from attrbound_lite.checkpoints import checkpoint_paths, load_checkpoint
    monkeypatch.chdir(tmp_path)
    for call in (lambda: save_checkpoint(smooth(), ""), lambda: load_checkpoint(""), lambda: checkpoint_paths("")):
        with pytest.raises(ValueError, match="a checkpoint path is empty"):
            call()
    assert list(tmp_path.iterdir()) == []  # nothing written into the current folder


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_checkpoints_keep_the_model_dtype_bit_for_bit(tmp_path, dtype):
    from attrbound_lite.checkpoints import load_checkpoint
    model = smooth().to(dtype)
    loaded, _ = load_checkpoint(save_checkpoint(model, tmp_path / "run.safetensors"))
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    assert all(after[k].dtype == before[k].dtype and torch.equal(after[k], before[k]) for k in before)
    x = images(2, dtype=dtype)
    assert torch.equal(loaded(x), model.eval()(x))


def _training_calls():
    from attrbound_lite.training import learning_rate_at, loss_integrated_gradients
    cfg = TrainConfig(lr=1e-3, lr_warmup_epochs=1, lr_warmup_from=1e-4)
    x = images(4)
    return [
        (lambda: learning_rate_at(cfg, -1, 8), ValueError, r"step \(the optimiser step.*integer >= 0, got -1"),
        (lambda: learning_rate_at(cfg, 1.5, 8), ValueError, "step .*must be an integer >= 0, got 1.5"),
        (lambda: learning_rate_at(cfg, True, 8), ValueError, "step .*must be an integer >= 0, got True"),
        (lambda: learning_rate_at(cfg, "1", 8), ValueError, "step .*must be an integer >= 0, got '1'"),
        (lambda: learning_rate_at({"lr": 1e-3}, 0, 8), TypeError, "cfg must be a TrainConfig.*got dict"),
        (lambda: ignored_options("fgsm", {"eps"}), ValueError, "unknown training method 'fgsm'; choose one of"),
        (lambda: ignored_options(None, {"eps"}), ValueError, "unknown training method None"),
        (lambda: ignored_options("aat", {"ig_steps"}, "gradcam"), ValueError, "unknown attribution 'gradcam'"),
        (lambda: ignored_options("natural", "steps"), TypeError, r"given must be a set .*got the string 'steps'"),
        (lambda: ignored_options("natural", None), TypeError, "given must be a set .*got NoneType"),
        (lambda: loss_integrated_gradients(smooth(), x, x / 2, labels(4), 0), ValueError,
         r"steps \(IG path points\) must be a positive integer, got 0"),
        (lambda: loss_integrated_gradients(smooth(), x, x / 2, labels(4), 2.5), ValueError,
         "steps .*must be a positive integer, got 2.5"),
        (lambda: loss_integrated_gradients(smooth(), x, x / 2, labels(4), True), ValueError,
         "steps .*must be a positive integer, got True"),
        (lambda: loss_integrated_gradients(smooth(), x, x / 2, labels(3), 2), ValueError,
         r"y must have shape \(4,\) \(one class per input\), got \(3,\)"),
        (lambda: loss_integrated_gradients(smooth(), x, x / 2, labels(4).float(), 2), TypeError,
         "y must be an integer tensor"),
        (lambda: loss_integrated_gradients(smooth(), x, x[:2], labels(4), 2), ValueError,
         r"x_end must have the shape of x.*\(2, 1, 28, 28\) and \(4, 1, 28, 28\)"),
        (lambda: loss_integrated_gradients(smooth(), x, x.numpy(), labels(4), 2), TypeError,
         "x_end must be a floating-point tensor"),
        (lambda: loss_integrated_gradients(lambda z: z, x, x / 2, labels(4), 2), TypeError,
         "model must be a torch.nn.Module"),
    ]


@pytest.mark.parametrize("case", range(len(_training_calls())))
def test_training_helpers_refuse_bad_input(case):
    call, error, message = _training_calls()[case]
    with pytest.raises(error, match=message):
        call()


def test_training_helpers_still_take_valid_input():
    from attrbound_lite.training import learning_rate_at, loss_integrated_gradients
    cfg = TrainConfig(lr=1e-3, lr_warmup_epochs=1, lr_warmup_from=1e-4)
    assert learning_rate_at(cfg, np.int64(3), np.int64(8)) == learning_rate_at(cfg, 3, 8)
    assert learning_rate_at(cfg, 0, 8) == pytest.approx(1e-4 + 9e-4 / 8)
    assert ignored_options("natural", frozenset()) == [] and ignored_options("pgd_at", ["eps"]) == []
    x = images(4)
    ig = loss_integrated_gradients(smooth(), x, x / 2, labels(4), np.int64(2), create_graph=False)
    assert ig.shape == x.shape and torch.isfinite(ig).all()


def test_bound_seed_checks_its_parts():
    from attrbound_lite.experiments import bound_seed
    for seed in ("0", 1.0, True, -1):
        with pytest.raises(TypeError, match="seed must be an integer >= 0"):
            bound_seed(seed, "saliency", 0)
    with pytest.raises(TypeError, match=r"first \(the batch's first sample\) must be an integer >= 0"):
        bound_seed(0, "saliency", "0")
    with pytest.raises(ValueError, match="unknown attribution 'gradcam'"):
        bound_seed(0, "gradcam", 0)
    assert bound_seed(np.int64(3), "saliency", np.int64(5)) == bound_seed(3, "saliency", 5)
