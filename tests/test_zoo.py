"""The book's model zoo: a recipe is trained once, cached under its key, loaded afterwards, never confused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_mirror

from attrbound_lite import recipes, zoo
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


def test_key_is_derived_from_the_recipe_alone():
    """The key hashes the recipe (its init included), not the source code: a refactoring keeps the zoo."""
    base = Recipe(**TINY)
    assert base.key == Recipe(**TINY).key
    assert not hasattr(zoo, "_code_digest")
    child = Recipe(**{**TINY, "method": "pgd_at", "eps": 0.1, "init": base})
    other_parent = Recipe(**{**TINY, "method": "pgd_at", "eps": 0.1, "init": Recipe(**{**TINY, "epochs": 3})})
    assert child.key != other_parent.key and child.to_dict()["init"] == base.to_dict()
    with pytest.raises(ValueError, match="init must share dataset and model"):
        Recipe(**{**TINY, "init": Recipe(**{**TINY, "dataset": "fashion-mnist"})})


def test_get_model_trains_once_then_loads(tmp_path, data_root, monkeypatch):
    recipe = Recipe(**TINY)
    model, meta = get_model(recipe, tmp_path, device="cpu", progress=False, data_root=data_root, mirror=data_mirror())
    assert meta["metadata"]["recipe"] == recipe.to_dict() and meta["metadata"]["data"]["size"] == 256
    assert len(training_history(meta)) == 1 and not model.training

    def no_training(*args, **kwargs):
        raise AssertionError("a cached recipe must not be trained again")

    monkeypatch.setattr(recipes, "train", no_training)
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


# ----------------------------------------------------------------------------------------- the reference zoo
def _tiny_reference(monkeypatch):
    """A three-model stand-in for REFERENCE: a natural model, a robust one fine-tuned from it, an augmented one."""
    from types import MappingProxyType

    natural = Recipe(**TINY)
    robust = Recipe(**{**TINY, "method": "aat", "eps": 0.1, "init": natural,
                       "options": dict(steps=2, warmup_epochs=0.5)})
    cifar = Recipe(**{**TINY, "dataset": "cifar10-subset", "n_train": 128, "options": dict(augment="crop_flip")})
    reference = MappingProxyType({"robust": robust, "natural": natural, "cifar": cifar})
    monkeypatch.setattr(zoo, "REFERENCE", reference)
    monkeypatch.setattr(recipes, "REFERENCE", reference)  # stored_dtype and reference_name read it there
    monkeypatch.setattr(zoo, "EVAL_N", 64)
    monkeypatch.setattr(zoo, "FULL_RETRAIN", "natural")
    return natural, robust


def test_build_writes_weights_and_manifests_then_verifies(tmp_path, data_root, monkeypatch):
    natural, robust = _tiny_reference(monkeypatch)
    root = tmp_path / "zoo"
    kwargs = dict(root=root, device="cpu", progress=False, data_root=data_root, mirror=data_mirror())
    table = zoo.build_zoo(["robust"], work_dir=tmp_path / "work", **kwargs)  # builds its init first
    assert sorted(table["name"]) == ["natural", "robust"]
    manifest = zoo.read_manifest("robust", root)
    assert manifest["key"] == robust.key and manifest["init"] == natural.key
    assert manifest["recipe"] == robust.to_dict() and manifest["torch"] == torch.__version__
    assert len(manifest["batch_losses"]) == 4  # 256 images in batches of 64: the whole run
    assert manifest["evaluation"]["subset"]["n"] == 64 and 0 <= manifest["evaluation"]["clean_accuracy"] <= 1
    assert {"processor", "cpu_count", "torch_threads", "device"} <= set(manifest["hardware"])

    report = zoo.verify_zoo(["natural", "robust"], **kwargs)
    assert report["ok"].all(), report.to_string()
    assert set(report["check"]) == {"weights", "first 4 losses", "full retraining"}

    # a built model is kept; force rebuilds it
    monkeypatch.setattr(zoo, "train_recipe", lambda *a, **k: pytest.fail("a built model must not be retrained"))
    zoo.build_zoo(["natural", "robust"], work_dir=tmp_path / "work", **kwargs)

    # a change of what the training code computes is caught by the replay, at each method family's tolerance
    for name, recipe, factor in (("natural", natural, 1 + 2 * zoo.REPLAY_RTOL),
                                 ("robust", robust, 1 + 2 * zoo.REPLAY_RTOL_ATTRIBUTION)):
        logged = zoo.read_manifest(name, root)
        path = root / recipe.key / "manifest.json"
        edited = {**logged, "batch_losses": [v * factor for v in logged["batch_losses"]]}
        path.write_text(json.dumps(edited))
        report = zoo.verify_zoo([name], full=False, **kwargs)  # an edited manifest is refused by its digest ...
        assert not report["ok"].any() and "was edited" in report["detail"].iloc[0], name
        path.write_text(json.dumps({**edited, "content_sha256": zoo._manifest_digest(edited)}))  # ... re-sealed:
        report = zoo.verify_zoo([name], full=False, **kwargs)
        assert not report.set_index("check").loc["first 4 losses", "ok"], name
    # a model left out of the replay is checked for its hashes only (the altered losses go unread)
    report = zoo.verify_zoo(["natural", "robust"], full=False, replay=["natural"], **kwargs)
    assert list(zip(report["name"], report["check"], strict=True)) == [
        ("natural", "weights"), ("natural", "first 4 losses"), ("robust", "weights")]
    with pytest.raises(ValueError, match="no reference model 'robustt'"):
        zoo.verify_zoo(["natural"], full=False, replay=["robustt"], **kwargs)


def test_a_study_model_is_stored_in_half_and_evaluated_as_stored(tmp_path, data_root, monkeypatch):
    """Chapter 7's study models are stored in float16 (zoo.stored_dtype): the file holds the rounded weights, the
    manifest's accuracy is that of the rounded model, and load_reference returns it in float32."""
    from types import MappingProxyType

    from attrbound_lite.data import load_dataset
    from attrbound_lite.evaluation import evaluate

    assert zoo.stored_dtype("mnist-study-aat-ig2-seed1") == torch.float16 and zoo.stored_dtype("mnist-aat") \
        == torch.float32
    natural = Recipe(**TINY)
    reference = MappingProxyType({"natural": natural, "mnist-study-natural": natural})
    monkeypatch.setattr(zoo, "REFERENCE", reference)
    monkeypatch.setattr(recipes, "REFERENCE", reference)  # stored_dtype and reference_name read it there
    monkeypatch.setattr(zoo, "EVAL_N", 64)
    root = tmp_path / "zoo"
    kwargs = dict(root=root, device="cpu", progress=False, data_root=data_root, mirror=data_mirror())
    full = tmp_path / "full"
    zoo.build_zoo(["natural"], work_dir=tmp_path / "work", **kwargs)
    full_model, _ = zoo.load_reference("natural", root=root, device="cpu")
    (root / natural.key).rename(full)  # the same recipe, stored in full: set aside
    zoo.build_zoo(["mnist-study-natural"], work_dir=tmp_path / "work", **kwargs)
    half, manifest = zoo.load_reference("mnist-study-natural", root=root, device="cpu")
    assert manifest["size_bytes"] < 0.6 * (full / "model.safetensors").stat().st_size
    for (name, p), q in zip(half.state_dict().items(), full_model.state_dict().values(), strict=True):
        assert p.dtype == torch.float32, name
        assert torch.equal(p, q.half().float()), name  # the float32 weights rounded once
    test = load_dataset("mnist", "test", subset=None, root=data_root, mirror=data_mirror(), download=False)
    x, y = test.tensors()
    want = evaluate(half, (x, y), "mnist", n_pgd=0, n_attribution=0, device="cpu", progress=False)
    assert manifest["evaluation"]["clean_accuracy"] == want["clean_accuracy"]  # evaluated as stored


def test_load_reference_refuses_missing_and_corrupted_files(tmp_path, data_root, monkeypatch):
    natural, _ = _tiny_reference(monkeypatch)
    root = tmp_path / "zoo"
    with pytest.raises(FileNotFoundError, match=r"attrbound zoo build --only natural"):
        zoo.load_reference("natural", root=root)
    zoo.build_zoo(["natural"], root=root, work_dir=tmp_path / "work", device="cpu", progress=False,
                  data_root=data_root, mirror=data_mirror())
    model, manifest = zoo.load_reference("natural", root=root, device="cpu")
    assert not model.training and manifest["name"] == "natural"
    weights = root / natural.key / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model\.safetensors does not match the sha256.*--only natural"):
        zoo.load_reference("natural", root=root)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing.*--only natural"):
        zoo.load_reference("natural", root=root)
    with pytest.raises(ValueError, match="no reference model 'nope'"):
        zoo.load_reference("nope", root=root)


def test_reference_names():
    assert zoo.reference_name("mnist", "advaat") == "mnist-advaat"
    assert zoo.reference_name("mnist", "aat", eps=0.2) == "mnist-study-aat-eps0.2"
    assert zoo.reference_name("mnist", "aat", ig_steps=8) == "mnist-study-aat-ig8"
    assert zoo.reference_name("cifar10-subset", "aat", seed=2) == "cifar10-subset-aat-seed2"
    assert zoo.reference_name("mnist", "aat", seed=0) == "mnist-aat"
    for bad in (3, -1, True, 1.5):
        with pytest.raises(ValueError, match="training seeds"):
            zoo.reference_name("mnist", "aat", seed=bad)
    with pytest.raises(ValueError, match="study models"):
        zoo.reference_name("mnist", "aat", eps=0.2, seed=1)
    with pytest.raises(ValueError, match="no model 'mnist-study-aat-ig3'"):
        zoo.reference_name("mnist", "aat", ig_steps=3)
    # every reference recipe's radius is RAR's, every study recipe fine-tunes the study's natural model
    for name, recipe in zoo.REFERENCE.items():
        if "-study-" not in name and recipe.method != "natural":
            assert recipe.train_eps == TRAINING_PROTOCOLS[recipe.dataset]["eps"] and recipe.n_train is None
        if "-study-" in name and recipe.method != "natural":
            assert recipe.init == zoo.REFERENCE["mnist-study-natural"]


# The committed zoo (zoo/), checked on every CI run.
def test_committed_zoo_is_complete_small_and_good_enough():
    table = zoo.zoo_table()
    assert sorted(table["name"]) == sorted(zoo.REFERENCE), "build the missing models with `attrbound zoo build`"
    assert not zoo.stale_folders(), "zoo/ holds models of old recipes: `attrbound zoo build` removes them"
    sizes = sum(f.stat().st_size for f in zoo.zoo_root().rglob("*") if f.is_file())
    assert sizes <= 64e6, f"the zoo holds {sizes / 1e6:.1f} MB, more than the 64 MB of weights and results allowed"
    for row in table.itertuples():
        if "-study-" in row.name or "-seed" in row.name:  # reruns below the floor are failed runs, reported
            continue
        floor = zoo.accuracy_floor(zoo.REFERENCE[row.name])
        assert row.clean_accuracy >= floor, f"{row.name}: clean accuracy {row.clean_accuracy:.4f} < {floor}"
    # every recipe has its reruns: the same recipe but the seed, fine-tuned from the natural model of its own seed
    for name, recipe in zoo.REFERENCE.items():
        if "-seed" in name:
            base, seed = name.rsplit("-seed", 1)
            assert recipe.model_copy(update={"seed": 0, "init": zoo.REFERENCE[base].init}) == zoo.REFERENCE[base]
            assert recipe.seed == int(seed) and (recipe.init is None or recipe.init.seed == int(seed))


def _replayed_reruns(k: int = 4) -> list[str]:
    """``k`` of the seed-1/2 reruns, drawn with a seed that changes with the commit (HEAD's hash; 0 outside git)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = "0"
    reruns = sorted(name for name in zoo.REFERENCE if "-seed" in name)
    return sorted(np.random.default_rng(int(head[:12] or "0", 16)).choice(reruns, size=k, replace=False).tolist())


@pytest.mark.timeout(1800)  # 36 replays of 20 training batches and one full retraining on two CPU cores
def test_committed_zoo_reproduces_its_manifests(data_root):
    """Hashes and loading of every model; the first 20 training losses of every seed-0 and study recipe and of a
    sample of the reruns (a sample that changes with the commit); one full retraining."""
    reruns = _replayed_reruns()
    replay = [name for name in zoo.REFERENCE if "-seed" not in name] + reruns
    print("\nreplayed reruns:", reruns)
    report = zoo.verify_zoo(device="cpu", progress=False, data_root=data_root, mirror=data_mirror(), replay=replay)
    assert report["ok"].all(), report[~report["ok"]].to_string()
    assert set(report["name"]) == set(zoo.REFERENCE)  # every model's weights checked
    replayed = set(report.loc[report["check"].str.startswith("first"), "name"])
    assert replayed == set(replay), sorted(replayed ^ set(replay))
