"""The book's model zoo: a recipe is trained once, cached under its key, loaded afterwards, never confused."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import data_mirror

from attrbound_lite import zoo
from attrbound_lite.training import TRAINING_PROTOCOLS
from attrbound_lite.zoo import Recipe, get_model, model_folder, training_history

TINY = dict(dataset="mnist", method="natural", epochs=1, n_train=256, batch_size=64,
            model=dict(width=0.125, activation="softplus", beta=10.0, pool="avg"))


def test_recipe_key_names_what_determines_the_weights():
    base = Recipe(**TINY)
    assert base.key.startswith("mnist-natural-") and base.key == Recipe(**TINY).key
    assert Recipe(**{**TINY, "seed": 1}).key != base.key
    assert Recipe(**{**TINY, "epochs": 2}).key != base.key
    robust = Recipe(**{**TINY, "method": "pgd_at", "eps": 0.1})
    assert robust.key.startswith("mnist-pgd_at-eps0.1-") and robust.train_eps == 0.1
    assert Recipe(**{**TINY, "method": "pgd_at"}).train_eps == TRAINING_PROTOCOLS["mnist"]["eps"]
    assert base.train_eps is None  # natural training has no radius


def test_recipe_refuses_bad_fields():
    with pytest.raises(ValueError, match="not TrainConfig fields"):
        Recipe(**TINY, options={"stepz": 3})
    with pytest.raises(ValueError, match="recipe fields"):
        Recipe(**TINY, options={"epochs": 3})
    with pytest.raises(ValueError, match="dataset: must be one of mnist"):
        Recipe(**{**TINY, "dataset": "svhn"})
    with pytest.raises(ValueError, match="method: must be one of natural"):
        Recipe(**{**TINY, "method": "magic"})


def test_key_follows_the_training_code(monkeypatch):
    key = Recipe(**TINY).key
    monkeypatch.setattr(zoo, "_code_digest", lambda: "other code")
    assert Recipe(**TINY).key != key


def test_get_model_trains_once_then_loads(tmp_path, data_root, monkeypatch):
    recipe = Recipe(**TINY)
    model, meta = get_model(recipe, tmp_path, device="cpu", progress=False, data_root=data_root, mirror=data_mirror())
    assert meta["metadata"]["recipe"] == recipe.to_dict() and meta["metadata"]["data"]["size"] == 256
    assert len(training_history(meta)) == 1 and not model.training

    def no_training(*args, **kwargs):
        raise AssertionError("a cached recipe must not be trained again")

    monkeypatch.setattr(zoo, "train", no_training)
    again, _ = get_model(recipe, tmp_path, device="cpu", progress=False, data_root=data_root, mirror=data_mirror())
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # a folder holding another recipe's model is refused, not loaded
    other = Recipe(**{**TINY, "seed": 7})
    shutil.copytree(model_folder(recipe, tmp_path), model_folder(other, tmp_path))
    with pytest.raises(ValueError, match="another recipe"):
        get_model(other, tmp_path, device="cpu", progress=False, data_root=data_root, mirror=data_mirror())


def test_recipe_fields_are_validated_with_their_key():
    assert Recipe("mnist", "pgd_at", 0.1, epochs=2).to_dict() == Recipe(
        dataset="mnist", method="pgd_at", eps=0.1, epochs=2).to_dict()
    with pytest.raises(ValueError, match=r"^options\.steps: must be a positive integer, got 0$"):
        Recipe(**TINY, options={"steps": 0})
    with pytest.raises(ValueError, match=r"^n_train: must be a positive integer or null, got 0$"):
        Recipe(**{**TINY, "n_train": 0})
    with pytest.raises(ValueError, match=r"^n_trian: unknown key"):
        Recipe(**TINY, n_trian=5)
