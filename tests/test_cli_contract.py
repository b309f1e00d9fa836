"""The input contract at the edges the users meet first: the ``attrbound`` command, the models, the zoo, evaluation.

Every refusal names the argument (the flag, on the command line), what was given and the fix; package errors reach
the user as one line on stderr and exit code 2, never a traceback or a message from inside torch.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from types import MappingProxyType

import pytest
import torch
from conftest import data_mirror

from attrbound_lite import cli, recipes, zoo
from attrbound_lite.checkpoints import save_checkpoint
from attrbound_lite.models import CifarCNN, MnistCNN, build_model, model_for_dataset

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys) -> tuple[int, str]:
    """``attrbound ARGV``: the exit code (argparse's errors included) and stderr."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.fixture
def no_training(monkeypatch):
    """``attrbound train`` up to the recipe: no data is loaded, nothing is trained; the recipes are collected."""
    recipes = []

    def fake_train_recipe(recipe, folder, **kwargs):
        recipes.append(recipe)
        return None, {"metadata": {"metrics": {"test_accuracy": 0.5}}}

    from attrbound_lite.book import runner

    monkeypatch.setattr(cli, "_load", lambda *args, **kwargs: None)
    monkeypatch.setattr(zoo, "train_recipe", fake_train_recipe)
    monkeypatch.setattr(runner, "build_book", lambda **kwargs: pytest.fail("the book must not be built here"))
    return recipes


# ----------------------------------------------------------------------------------------- (1) widths and betas
BAD_NUMBERS = [0, -1, 0.0, float("nan"), float("inf")]


@pytest.mark.parametrize("make", [MnistCNN, CifarCNN, lambda **kw: build_model("mnist_cnn", **kw),
                                  lambda **kw: build_model("cifar_cnn", **kw),
                                  lambda **kw: model_for_dataset("fashion-mnist", **kw),
                                  lambda **kw: model_for_dataset("cifar10-subset", **kw)])
@pytest.mark.parametrize("name", ["width", "beta"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_models_refuse_widths_and_betas_that_are_not_positive_finite(make, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be a positive finite number.*got {re.escape(repr(value))}"):
        make(**{name: value})


def test_models_refuse_bad_class_counts_and_non_numbers():
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        MnistCNN(num_classes=0)
    with pytest.raises(ValueError, match="width must be a positive finite number"):
        CifarCNN(width="wide")
    with pytest.raises(ValueError, match="beta must be a positive finite number"):
        MnistCNN(beta=True)
    import numpy as np
    assert MnistCNN(width=np.float32(0.25), beta=np.float64(5.0)).config["width"] == 0.25  # numpy scalars are fine


@pytest.mark.parametrize("flag", ["--width", "--beta", "--surrogate-beta", "--lr", "--eps", "--alpha"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "many"])
def test_train_refuses_bad_numbers_naming_the_flag(flag, value, tmp_path, capsys, no_training):
    code, err = run(["train", "--dataset", "mnist", "--method", "aat", "--out", tmp_path, flag, value], capsys)
    assert code == 2 and f"argument {flag}: must be a positive finite number, got {value!r}" in err, err
    assert "Traceback" not in err and not no_training


def test_train_refuses_a_negative_lam_and_seed(tmp_path, capsys, no_training):
    code, err = run(["train", "--dataset", "mnist", "--method", "aat", "--out", tmp_path, "--lam", "-1"], capsys)
    assert code == 2 and "argument --lam: must be a non-negative finite number, got '-1'" in err
    code, err = run(["train", "--dataset", "mnist", "--out", tmp_path, "--seed", "-1"], capsys)
    assert code == 2 and "argument --seed: must be a non-negative integer, got '-1'" in err


# ------------------------------------------------------------------- (2) options the training method ignores
@pytest.mark.parametrize("method, option, value, users", [
    ("natural", "--eps", "0.3", "pgd_at, ig_norm, aat or advaat"),
    ("natural", "--steps", "5", "pgd_at, ig_norm, aat or advaat"),
    ("natural", "--alpha", "0.01", "pgd_at, ig_norm, aat or advaat"),
    ("natural", "--norm", "l2", "pgd_at, ig_norm, aat or advaat"),
    ("natural", "--lam", "2", "ig_norm, aat or advaat"),
    ("natural", "--dissimilarity", "cosine", "aat or advaat"),
    ("pgd_at", "--lam", "2", "ig_norm, aat or advaat"),
    ("pgd_at", "--attribution", "integrated_gradients", "aat or advaat"),
    ("pgd_at", "--ig-steps", "4", "ig_norm, aat or advaat"),
    ("ig_norm", "--dissimilarity", "l2", "aat or advaat"),
    ("ig_norm", "--surrogate-beta", "10", "aat or advaat"),
])
def test_train_refuses_options_the_method_ignores(method, option, value, users, tmp_path, capsys, no_training):
    code, err = run(["train", "--dataset", "mnist", "--method", method, "--out", tmp_path, option, value], capsys)
    assert code == 2 and not no_training, err
    assert f"{option} is ignored by {method} training; drop it or choose --method {users}" in err, err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_train_refuses_ig_steps_without_ig_attributions(tmp_path, capsys, no_training):
    code, err = run(["train", "--dataset", "mnist", "--method", "aat", "--out", tmp_path, "--ig-steps", "4"], capsys)
    assert code == 2 and "--ig-steps is ignored by aat training with --attribution saliency" in err, err
    assert "--attribution integrated_gradients" in err
    code, err = run(["train", "--dataset", "mnist", "--method", "natural", "--out", tmp_path, "--eps", "0.3", "--lam",
                     "2"], capsys)
    assert "--eps is ignored" in err and "--lam is ignored" in err  # every ignored option at once


def test_train_keeps_the_options_the_method_uses_and_the_recipe_hashes(tmp_path, capsys, no_training):
    argv = ["train", "--dataset", "mnist", "--out", tmp_path, "--device", "cpu"]
    assert run(argv, capsys)[0] == 0
    assert run([*argv, "--method", "pgd_at"], capsys)[0] == 0
    assert run([*argv, "--method", "advaat", "--eps", "0.1"], capsys)[0] == 0
    # the keys of the recipes that the defaults gave before the contract: the committed runs keep their names
    assert [r.key for r in no_training] == ["mnist-natural-c53b3b1a0c16", "mnist-pgd_at-eps0.3-24816c0b0a39",
                                            "mnist-advaat-eps0.1-e5aa3868e862"]
    code, err = run([*argv, "--method", "aat", "--eps", "0.1", "--steps", "3", "--alpha", "0.05", "--norm", "l2",
                     "--lam", "2", "--dissimilarity", "cosine", "--attribution", "integrated_gradients", "--ig-steps",
                     "4", "--surrogate-beta", "5"], capsys)
    assert code == 0, err
    cfg = no_training[-1].train_config()
    assert (cfg.eps, cfg.steps, cfg.alpha, cfg.norm, cfg.lam, cfg.dissimilarity, cfg.attribution, cfg.ig_steps,
            cfg.surrogate_beta) == (0.1, 3, 0.05, "l2", 2.0, "cosine", "integrated_gradients", 4, 5.0)
    assert run([*argv, "--method", "ig_norm", "--lam", "0.5", "--ig-steps", "4"], capsys)[0] == 0


# ---------------------------------------------------------------- (3) a zoo root that does not exist is named
@pytest.mark.parametrize("command", ["list", "verify"])
def test_zoo_list_and_verify_refuse_a_missing_root(command, tmp_path, capsys):
    missing = tmp_path / "zooo"
    code, err = run(["zoo", command, "--root", missing], capsys)
    assert code == 2 and str(missing) in err and "does not exist" in err, err
    assert "empty" not in err and len(err.strip().splitlines()) == 1


def test_zoo_functions_refuse_a_missing_root(tmp_path):
    for call in (lambda: zoo.zoo_table(tmp_path / "nope"), lambda: zoo.verify_zoo(root=tmp_path / "nope"),
                 lambda: zoo.load_reference("mnist-natural", root=tmp_path / "nope")):
        with pytest.raises(FileNotFoundError, match="no zoo at .*nope.*does not exist"):
            call()


def test_zoo_list_of_an_existing_empty_root(tmp_path, capsys):
    code = cli.main(["zoo", "list", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "holds no reference model" in out and "attrbound zoo build" in out


def test_zoo_build_creates_a_new_root_but_not_its_parents(tmp_path, capsys, monkeypatch):
    import pandas as pd
    built = []
    monkeypatch.setattr(zoo, "build_zoo", lambda only, **kw: built.append(kw["root"]) or pd.DataFrame(columns=["key"]))
    code, err = run(["zoo", "build", "--root", tmp_path / "a" / "b", "--device", "cpu"], capsys)
    assert code == 2 and str(tmp_path / "a") in err and "does not exist" in err and not built, err
    code, err = run(["zoo", "build", "--root", tmp_path / "new", "--device", "cpu"], capsys)
    assert code == 0 and built == [str(tmp_path / "new")] and "new zoo" in err, err


def test_zoo_build_and_verify_take_every_only_given(tmp_path, capsys, monkeypatch):
    import pandas as pd
    asked = []
    monkeypatch.setattr(zoo, "build_zoo", lambda only, **kw: asked.append(only) or pd.DataFrame(columns=["key"]))
    monkeypatch.setattr(zoo, "verify_zoo", lambda only, **kw: asked.append(only) or pd.DataFrame(columns=["ok"]))
    for command in ("build", "verify"):
        code, err = run(["zoo", command, "--root", tmp_path, "--only", "mnist-aat", "--only", "mnist-advaat",
                         "mnist-natural"], capsys)
        assert code == 0, err
    assert asked == [["mnist-aat", "mnist-advaat", "mnist-natural"]] * 2  # a repeated --only adds, never replaces


def test_zoo_refuses_unknown_names_up_front(tmp_path):
    with pytest.raises(ValueError, match="no reference model 'mnist-natral'"):
        zoo.verify_zoo(["mnist-natral"], root=tmp_path)


# ------------------------------------------------------------- (4, 5) package errors: one line, exit code 2
def test_bad_beta_and_device_are_one_line_errors(tmp_path, capsys, no_training):
    code, err = run(["train", "--dataset", "mnist", "--out", tmp_path, "--beta", "0"], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and "argument --beta" in last and "lam" not in last and "Traceback" not in err
    code, err = run(["train", "--dataset", "mnist", "--out", tmp_path, "--device", "gpu"], capsys)
    assert code == 2 and "argument --device: unknown device 'gpu'" in err and "'cpu'" in err, err
    assert "mkldnn" not in err  # torch's list of device types
    code, err = run(["evaluate", tmp_path, "--device", "gpu"], capsys)
    assert code == 2 and "argument --device: unknown device 'gpu'" in err
    if not torch.cuda.is_available():
        code, err = run(["train", "--dataset", "mnist", "--out", tmp_path, "--device", "cuda"], capsys)
        assert code == 2 and "no CUDA device" in err


@pytest.mark.parametrize("error", [ValueError("bad value"), TypeError("bad type"), FloatingPointError("nan loss"),
                                   FileNotFoundError("no file")])
def test_package_errors_print_one_line_and_exit_2(error, tmp_path, capsys, monkeypatch):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "_load", fail)
    code, err = run(["train", "--dataset", "mnist", "--out", tmp_path, "--device", "cpu"], capsys)
    assert code == 2 and err == f"attrbound train: error: {error}\n"


# ----------------------------------------------------------------------------- (6) get_model takes a Recipe
def test_get_model_refuses_a_name_and_points_to_load_reference(tmp_path):
    with pytest.raises(TypeError, match=r"get_model takes a Recipe, got the str 'mnist-advaat'.*"
                                        r"zoo\.load_reference\('mnist-advaat'\)"):
        zoo.get_model("mnist-advaat", tmp_path)
    with pytest.raises(TypeError, match=r"get_model takes a Recipe, got the str 'mnist'.*reference models.*"
                                        r"mnist-natural"):
        zoo.get_model("mnist", tmp_path)
    with pytest.raises(TypeError, match="train_recipe takes a Recipe, got dict"):
        zoo.train_recipe({"dataset": "mnist"}, tmp_path, init_seed=0)


# ----------------------------------------------------------------- (7) a model evaluated on the wrong data
def test_evaluate_refuses_data_the_model_does_not_take():
    from attrbound_lite.evaluation import evaluate
    model = MnistCNN(width=0.125)
    cifar = (torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"the cifar10-subset images.*does not match the cifar10-subset data set"):
        evaluate(model, cifar, "cifar10-subset", n_pgd=0, n_attribution=0, progress=False)
    mnist = (torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"n_pgd must be None or a non-negative integer, got -1"):
        evaluate(model, mnist, "mnist", n_pgd=-1, progress=False)
    with pytest.raises(ValueError, match=r"n_attribution must be a non-negative integer, got -2"):
        evaluate(model, mnist, "mnist", n_attribution=-2, progress=False)
    with pytest.raises(ValueError, match=r"ig_steps must be a positive integer, got 0"):
        evaluate(model, mnist, "mnist", ig_steps=0, progress=False)
    with pytest.raises(ValueError, match=r"restarts must be a positive integer, got 0"):
        evaluate(model, mnist, "mnist", restarts=0, progress=False)
    with pytest.raises(ValueError, match=r"eps must be a positive finite number"):
        evaluate(model, mnist, "mnist", eps=-0.1, progress=False)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        evaluate(model, mnist, "mnist", device="gpu", progress=False)


def test_evaluate_cli_names_the_checkpoints_data_set(tmp_path, data_root, capsys):
    (tmp_path / "run").mkdir()
    save_checkpoint(MnistCNN(width=0.125), tmp_path / "run", {"data": {"name": "mnist"}})
    data = ["--mirror", data_mirror(), "--data-root", data_root, "--no-download", "--no-progress", "--device", "cpu"]
    code, err = run(["evaluate", tmp_path / "run", "--dataset", "cifar10-subset", *data], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "(B, 1, 28, 28)" in err and "--dataset mnist" in err
    assert "checkpoint's data set (mnist) does not match --dataset cifar10-subset" in err


# ------------------------------------------------------------ (8) a checksum mismatch names folder and command
def test_checksum_mismatch_names_the_folder_and_the_rebuild_command(tmp_path, monkeypatch):
    recipe = zoo.Recipe(dataset="mnist", n_train=64, model=dict(width=0.125, activation="softplus", beta=10.0,
                                                                  pool="avg"))
    reference = MappingProxyType({"tiny": recipe})
    monkeypatch.setattr(zoo, "REFERENCE", reference)
    monkeypatch.setattr(recipes, "REFERENCE", reference)  # stored_dtype and reference_name read it there
    root = tmp_path / "zoo"
    folder = root / recipe.key
    save_checkpoint(model_for_dataset("mnist", **recipe.model), folder / "model.safetensors")
    committed = json.loads(next(zoo.zoo_root().glob("mnist-natural-*/manifest.json")).read_text())  # the real fields
    manifest = {**committed, "name": "tiny", "key": recipe.key, "recipe": recipe.to_dict(), "sha256": "0" * 64,
                "sidecar_sha256": zoo._sha256(folder / "model.json"), "batch_losses": []}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    pattern = (rf"reference model 'tiny' in {re.escape(str(folder))}: model\.safetensors does not match the sha256 "
               rf".*`attrbound zoo build --only tiny --root {re.escape(str(root))}`")
    with pytest.raises(ValueError, match=pattern):
        zoo.load_reference("tiny", root=root)
    report = zoo.verify_zoo(["tiny"], root=root, full=False, progress=False)
    assert not report["ok"].any() and re.search(pattern, report["detail"].iloc[0])


# ----------------------------------------------------------------------------------- (9) --help: defaults once
def _help_texts():
    parser = cli._parser()
    yield "attrbound", parser.format_help()
    for name, sub in cli._subparsers(parser).items():
        yield name, sub.format_help()


def _option_help(text: str, flag: str) -> str:
    """The lines of ``flag``'s entry in a help text."""
    return re.search(rf"\n  (-\w[^,\n]*, )?{flag}\b[^\n]*(\n {{6,}}[^\n]*)*", text).group(0)


def test_every_option_shows_its_default_once_and_required_ones_none():
    texts = dict(_help_texts())
    assert {"train", "evaluate", "zoo build", "zoo verify", "zoo list", "book", "sweep", "report"} <= set(texts)
    for name, text in texts.items():
        assert "(default: None)" not in text and "(default: False)" not in text, name
        options = re.split(r"\n  (?=-)", text.split("options:", 1)[-1])
        for option in options:
            assert option.count("default") <= 1, f"{name}: {option}"
    for name, sub in cli._subparsers(cli._parser()).items():
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            block = _option_help(texts[name], action.option_strings[-1])
            if action.required or action.default is False:  # required options and flags: no default
                assert "default" not in block, f"{name}: {block}"
            elif action.default not in (None, []):  # a default of None may be described in words
                assert "default" in block, f"{name}: {block}"
    train = texts["train"]
    assert "(default: 1.0)" in _option_help(train, "--lam") and "(default: 2)" in _option_help(train, "--epochs")
    assert "(default: 1000)" in _option_help(texts["evaluate"], "--n-pgd")


# ---------------------------------------------------------------- (10) counts refused, naming the flag
@pytest.mark.parametrize("argv, flag", [
    (["train", "--dataset", "mnist", "--out", "x"], "--subset"),
    (["train", "--dataset", "mnist", "--out", "x"], "--epochs"),
    (["train", "--dataset", "mnist", "--out", "x"], "--batch-size"),
    (["train", "--dataset", "mnist", "--out", "x", "--method", "pgd_at"], "--steps"),
    (["train", "--dataset", "mnist", "--out", "x", "--method", "ig_norm"], "--ig-steps"),
    (["evaluate", "x"], "--subset"),
    (["evaluate", "x"], "--ig-steps"),
    (["evaluate", "x"], "--attack-ig-steps"),
    (["evaluate", "x"], "--pgd-steps"),
    (["evaluate", "x"], "--ifia-k"),
    (["evaluate", "x"], "--eval-k"),
    (["evaluate", "x"], "--ifia-steps"),
    (["evaluate", "x"], "--restarts"),
    (["book"], "--timeout"),
])
@pytest.mark.parametrize("value", ["0", "-3", "2.5"])
def test_counts_must_be_positive_integers(argv, flag, value, capsys, no_training):
    code, err = run([*argv, flag, value], capsys)
    assert code == 2 and f"argument {flag}: must be a positive integer, got {value!r}" in err, err
    assert "n_train" not in err


@pytest.mark.parametrize("flag", ["--n-pgd", "--n-attribution"])
def test_evaluate_sample_counts_may_be_zero_but_not_negative(flag, capsys):
    code, err = run(["evaluate", "x", flag, "-1"], capsys)
    assert code == 2 and f"argument {flag}: must be a non-negative integer (0 skips" in err, err


# ------------------------------------------------------------------------------------------- (11) the book
def test_book_refuses_the_profile_as_a_parameter(capsys, no_training):
    code, err = run(["book", "-p", "profile", "full"], capsys)
    assert code == 2 and "use --profile full" in err and "profile=" not in err, err
    code, err = run(["book", "-p", "ig_steps", "[1,"], capsys)
    assert code == 2 and "-p ig_steps" in err and "YAML" in err and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------------- (12) README and ARCHITECTURE.md
def test_readme_and_architecture_state_the_cores_dependencies_as_pyproject_does():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0] for d in deps]
    spelled = {"pyyaml": "PyYAML"}
    words = [spelled.get(n.lower(), n) for n in names]
    listing = ", ".join(words[:-1]) + f" and {words[-1]}"
    for page in ("README.md", "ARCHITECTURE.md"):
        text = " ".join((ROOT / page).read_text().split())
        assert listing in text, f"{page} does not state the core's dependencies as `{listing}`"


def test_readme_describes_the_reference_zoo():
    text = (ROOT / "README.md").read_text()
    section = text.split("## The reference zoo", 1)[-1].split("\n## ", 1)[0]
    assert section != text, "README.md has no '## The reference zoo' section"
    for needle in ("attrbound zoo list", "attrbound zoo verify", "attrbound zoo build", "zoo.load_reference(",
                   "safetensors", "manifest", "sha256", "AdvAAT", "Fashion-MNIST", "CIFAR-10"):
        assert needle in section, needle
    n_reference = sum("-study-" not in name for name in zoo.REFERENCE)
    n_models = len(zoo.REFERENCE)
    assert n_reference == 45 and "45 reference models" in section and f"holds the {n_models} models" in section


# ------------------------------------------------------------------------ checkpoints: sidecar and device
def test_checkpoint_with_a_broken_architecture_or_an_unknown_device_is_refused(tmp_path):
    from attrbound_lite.checkpoints import load_checkpoint
    weights = save_checkpoint(MnistCNN(width=0.125), tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        load_checkpoint(weights, device="gpu")
    sidecar = json.loads((tmp_path / "model.json").read_text())
    sidecar["model"]["config"]["width"] = 0
    (tmp_path / "model.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match=r"model\.json does not describe the model .*width: 0 in the sidecar"):
        load_checkpoint(weights)
    # a file without the model in its header (written before it had one): the architecture itself is refused
    from safetensors.torch import save_file

    from attrbound_lite.checkpoints import FORMAT, sha256_file
    save_file({k: v.contiguous() for k, v in MnistCNN(width=0.125).state_dict().items()}, str(weights),
              metadata={"format": FORMAT})
    sidecar["weights"]["sha256"] = sha256_file(weights)
    (tmp_path / "model.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match=r"sidecar .*model\.json does not describe a model.*width must be a positive"):
        load_checkpoint(weights)


def test_evaluate_cli_takes_a_float64_checkpoint(tmp_path, data_root, capsys):
    """A float64 checkpoint reloads as float64 (the certificate's precision); the CLI evaluates it in its dtype."""
    (tmp_path / "run").mkdir()
    model = MnistCNN(width=0.125, activation="softplus").double()
    save_checkpoint(model, tmp_path / "run", {"data": {"name": "mnist"}})
    data = ["--mirror", data_mirror(), "--data-root", data_root, "--no-download", "--no-progress", "--device", "cpu"]
    code, err = run(["evaluate", tmp_path / "run", "--subset", "16", "--n-pgd", "0", "--n-attribution", "0", *data],
                    capsys)
    assert code == 0, err
