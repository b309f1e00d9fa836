"""Checkpoints: safetensors + JSON sidecar round trip, and every way a checkpoint can be wrong."""

from __future__ import annotations

import json

import pytest
import torch

from attrbound_lite.checkpoints import load_checkpoint, save_checkpoint
from attrbound_lite.models import CifarCNN, build_model, model_for_dataset


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = model_for_dataset("fashion-mnist", width=0.25, activation="relu", pool="max").eval()
    path = save_checkpoint(model, tmp_path / "run" / "model.safetensors", {"seed": 3, "metrics": {"acc": 0.5}})
    return model, path


def test_round_trip_gives_identical_predictions(saved, tmp_path):
    model, path = saved
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for where in (path, path.with_suffix(".json"), path.parent):
        loaded, sidecar = load_checkpoint(where)
        assert torch.equal(loaded(x), model(x)) and not loaded.training
        assert sidecar["model"]["config"]["mean"] == [0.286] and sidecar["metadata"] == {"seed": 3,
                                                                                         "metrics": {"acc": 0.5}}
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.safetensors"]  # no temp files


def test_pickle_checkpoints_are_refused(saved, tmp_path):
    model, path = saved
    for name in ("model.safetensors", "legacy.pt"):
        target = tmp_path / name
        torch.save(model.state_dict(), target)
        with pytest.raises(ValueError, match="pickle"):
            load_checkpoint(target)
    import pickle
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ValueError, match="pickle"):
        load_checkpoint(raw)


def test_tampered_or_mismatched_checkpoints_are_refused(saved):
    model, path = saved
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    sidecar = path.with_suffix(".json")
    original, meta = path.read_bytes(), json.loads(sidecar.read_text())
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="does not match its sidecar"):
        load_checkpoint(path)
    path.write_bytes(original)
    sidecar.write_text(json.dumps({**meta, "model": {**meta["model"], "config": {**meta["model"]["config"],
                                                                                 "width": 0.5}}}))
    with pytest.raises(ValueError, match="width: 0.5 in the sidecar, 0.25 saved"):  # the weights' header names it
        load_checkpoint(path)
    sidecar.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(path)
    sidecar.write_text(json.dumps(meta))
    path.write_bytes(original[:-100])  # truncated, e.g. by a full disk
    with pytest.raises(ValueError, match="does not match its sidecar"):
        load_checkpoint(path)
    path.write_bytes(original[:5])
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_checkpoint(path)
    path.write_bytes(original)
    sidecar.unlink()
    with pytest.raises(FileNotFoundError, match="sidecar"):
        load_checkpoint(path)


def test_registry_rebuilds_models_and_refuses_strangers(tmp_path):
    model = CifarCNN(width=0.25)
    assert isinstance(build_model("cifar_cnn", **model.config), CifarCNN)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", width=1)
    with pytest.raises(ValueError, match="bad config"):
        build_model("cifar_cnn", depth=3)
    with pytest.raises(ValueError, match="not a registered model"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(model, tmp_path / "m.safetensors", {"x": object()})
    with pytest.raises(ValueError, match="no model for data set"):
        model_for_dataset("imagenet")
