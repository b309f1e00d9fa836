"""The ``attrbound`` command line: train, evaluate, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import data_mirror

from attrbound_lite.checkpoints import load_checkpoint
from attrbound_lite.cli import main


def test_train_then_evaluate(tmp_path, data_root, capsys):
    out = tmp_path / "run"
    data = ["--mirror", str(data_mirror()), "--data-root", str(data_root), "--no-download", "--no-progress"]
    code = main(["train", "--dataset", "mnist", "--method", "advaat", "--epochs", "1", "--subset", "128", "--width",
                 "0.25", "--steps", "2", "--batch-size", "64", "--out", str(out), *data])
    assert code == 0, capsys.readouterr().err
    model, sidecar = load_checkpoint(out)
    meta = sidecar["metadata"]
    assert meta["training"]["method"] == "advaat" and meta["training"]["eps"] == 0.3  # RAR's MNIST eps
    assert meta["data"]["name"] == "mnist" and meta["data"]["size"] == 128 and len(meta["data"]["fingerprint"]) == 32
    assert meta["seed"] == 0 and 0 <= meta["metrics"]["test_accuracy"] <= 1
    assert sidecar["attrbound_version"] and (out / "history.csv").is_file()

    code = main(["evaluate", str(out), "--n-pgd", "32", "--n-attribution", "4", "--ifia-steps", "2", "--ig-steps", "8",
                 "--attack-ig-steps", "2", "--subset", "64", "--json", str(tmp_path / "eval.json"), *data])
    printed = capsys.readouterr().out
    assert code == 0
    for key in ("clean_accuracy", "pgd_accuracy", "topk_intersection", "kendall_tau", "advaat"):
        assert key in printed
    assert json.loads((tmp_path / "eval.json").read_text())["n_attribution"] <= 4


def test_errors_are_clear(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "imagenet", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "attrbound"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "attrbound_lite" in result.stdout
