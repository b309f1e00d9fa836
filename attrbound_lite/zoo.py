"""The committed reference zoo: the reference recipes trained once, stored under ``zoo/`` with a manifest, checked.

    model, meta = load_reference("mnist-advaat")          # the committed weights, sha256-checked
    build_zoo(["mnist-natural"], root="_build/zoo")       # trains, evaluates and writes <root>/<key>/ + manifest
    verify_zoo(["mnist-natural"])                         # replays the first training batches of the recipe

A reference model is a named recipe of ``REFERENCE``; the recipes, their training and the content-keyed cache
(``Recipe``, ``train_recipe``, ``get_model``, ``reference_name``, ``accuracy_floor``) are in ``recipes`` and
re-exported here, so that ``zoo.Recipe`` and the rest keep working. This module holds the zoo on disk: its root
(``zoo_root``, ``$ATTRBOUND_ZOO``), the manifests (``read_manifest``: checked against the recipe and the committed
digests), loading (``load_reference``, which checks the sha256 before loading), building (``build_zoo``: train,
evaluate with ``evaluate_reference``, write), listing (``zoo_table``, ``stale_folders``) and verification
(``verify_zoo``, ``replay_losses``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ._checks import check_flag, check_positive_int, check_tol
from ._io import make_dirs
from .checkpoints import checkpoint_paths, load_checkpoint, save_checkpoint
from .recipes import (  # re-exported: zoo.Recipe, zoo.REFERENCE, ... are the documented paths
    ACCURACY_FLOORS,
    REFERENCE,
    ROBUST_METHODS,
    SEEDS,
    STUDY_ACCURACY_FLOOR,
    STUDY_IG_N_TRAIN,
    STUDY_IG_STEPS,
    STUDY_N_TRAIN,
    STUDY_RADII,
    Recipe,
    _check_recipe,
    _refuse_file_root,
    accuracy_floor,
    get_model,
    initial_model,
    model_folder,
    recipe_seed,
    reference_name,
    stored_dtype,
    train_recipe,
    training_history,
)
from .runtime import resolve_device
from .training import train

__all__ = ["Recipe", "stored_dtype", "get_model", "train_recipe", "initial_model", "recipe_seed", "model_folder",
           "training_history", "REFERENCE", "reference_name", "ZOO_ROOT", "zoo_root", "read_manifest",
           "load_reference", "build_zoo", "zoo_table", "verify_zoo", "replay_losses", "evaluate_reference",
           "stale_folders", "SEEDS", "ROBUST_METHODS", "ACCURACY_FLOORS", "accuracy_floor", "STUDY_N_TRAIN",
           "STUDY_RADII", "STUDY_IG_STEPS", "STUDY_IG_N_TRAIN", "STUDY_ACCURACY_FLOOR"]


ZOO_ROOT = Path(__file__).resolve().parents[1] / "zoo"  # the committed weights (ATTRBOUND_ZOO overrides)
ZOO_ENV = "ATTRBOUND_ZOO"
# The evaluation recorded in a manifest: clean accuracy on the whole test split; clean and PGD accuracy (RAR's
# PGD steps and step size, the step size scaled to the training radius) on its first EVAL_N images.
EVAL_N = 1000
BUILD_COMMAND = "attrbound zoo build --only {name}"


def zoo_root(root: str | os.PathLike | None = None) -> Path:
    """The reference zoo's folder: ``root``, else ``$ATTRBOUND_ZOO``, else ``<project>/zoo``.

    Raises:
        TypeError: ``root`` is not a string, a path or None.
        ValueError: the folder is an existing file, or ``root`` an empty string.
    """
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root (the zoo's folder) must be a string, a pathlib.Path or None, got "
                        f"{type(root).__name__} {root!r}.")
    if isinstance(root, str) and not root.strip():
        raise ValueError("root (the zoo's folder) is an empty string (an unset shell variable?); pass the folder, "
                         "or None for the committed zoo.")
    return _refuse_file_root(Path(root if root is not None else os.environ.get(ZOO_ENV) or ZOO_ROOT))


def _existing_root(root: str | os.PathLike | None, name: str | None = None) -> Path:
    """``zoo_root(root)``, refused if it is not a folder (a misspelt root is not an empty zoo).

    Raises:
        FileNotFoundError: the folder does not exist (the message names it, where it came from, and the command that
            builds a zoo there: reference model ``name``, when given).
    """
    path = zoo_root(root)
    if not path.is_dir():
        source = "" if root else f" (from ${ZOO_ENV})" if os.environ.get(ZOO_ENV) else " (the default root)"
        build = BUILD_COMMAND.format(name=name) if name is not None else "attrbound zoo build"
        raise FileNotFoundError(f"no zoo at {path}{source}: the folder does not exist; pass the folder that holds "
                                f"the zoo (root=, `--root` or ${ZOO_ENV}; default {ZOO_ROOT}), or create a zoo there "
                                f"with `{build} --root {path}`.")
    return path


def _rebuild_command(name: str, root: str | os.PathLike | None) -> str:
    """The command that (re)builds reference model ``name`` into ``root`` (``--root`` unless the default)."""
    command = BUILD_COMMAND.format(name=name)
    if root is not None and zoo_root(root).resolve() != zoo_root().resolve():
        command += f" --root {zoo_root(root)}"
    return command


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _names(only, what: str = "only") -> list[str]:
    """``only`` as a list of names (a single string is refused: it would be read letter by letter)."""
    if isinstance(only, str):
        raise TypeError(f"{what} must be a list of reference model names, got the string {only!r}; write "
                        f"[{only!r}].")
    return [str(n) for n in only]


def _reference(name: str) -> Recipe:
    if not isinstance(name, str) or name not in REFERENCE:
        raise ValueError(f"no reference model {name!r}; the zoo holds {sorted(REFERENCE)}.")
    return REFERENCE[name]


def read_manifest(name: str, root: str | os.PathLike | None = None) -> dict:
    """The manifest of reference model ``name`` (``<root>/<key>/manifest.json``), checked against its recipe.

    Raises:
        FileNotFoundError: the zoo's folder does not exist, or the model is not built (the message names the command
            that builds it).
        ValueError: the manifest is unreadable, belongs to another recipe, or was edited (its content does not
            match its ``content_sha256``, ``_manifest_digest``).
    """
    recipe = _reference(name)
    path = _existing_root(root, name) / recipe.key / "manifest.json"
    rebuild = _rebuild_command(name, root)
    if not path.is_file():
        raise FileNotFoundError(f"reference model {name!r} is not in the zoo ({path} is missing); build it with "
                                f"`{rebuild}`.")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable manifest ({err}); rebuild it with `{rebuild}`.") from None
    if not isinstance(manifest, dict) or manifest.get("recipe") != recipe.to_dict():
        raise ValueError(f"{path} records another recipe than {name!r}'s; rebuild it with `{rebuild}`.")
    for where, kinds in _MANIFEST_FIELDS.items():
        value = manifest
        for part in where.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"{path} lacks {where} (or it is not a {' or '.join(k.__name__ for k in kinds)}); the "
                             f"manifest is damaged: rebuild it with `{rebuild}`.")
    if manifest["key"] != recipe.key:
        raise ValueError(f"{path} records the key {manifest['key']!r}, not {recipe.key!r}; rebuild it with "
                         f"`{rebuild}`.")
    recorded = manifest.get("content_sha256", _COMMITTED_MANIFESTS.get(manifest["sha256"][:16]))
    if recorded is not None and _manifest_digest(manifest) != recorded:
        where = "its content_sha256" if "content_sha256" in manifest else "the committed zoo's record (zoo.py)"
        raise ValueError(f"{path} was edited after the model was built: its content (the evaluation, history and "
                         f"losses the zoo's readers report) does not match the sha256 {where} holds; restore it "
                         f"from git or rebuild it with `{rebuild}`.")
    return manifest


def _manifest_digest(manifest: Mapping) -> str:
    """The sha256 (16 hex digits) of a zoo manifest's content: its canonical JSON without ``content_sha256``.

    ``build_zoo`` records it as the manifest's ``content_sha256``; ``read_manifest`` checks it, so that an edited
    evaluation or history (which ``zoo list`` shows and ``accuracy_floor`` judges) is refused as an edited recipe is.
    The manifests committed before the field existed are checked against ``_COMMITTED_MANIFESTS``.

    Args:
        manifest: a manifest as ``read_manifest`` returns it.

    Returns:
        16 lowercase hex digits.
    """
    content = {key: value for key, value in manifest.items() if key != "content_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


# The content digests (_manifest_digest) of the manifests committed before they recorded their own, by the first 16
# hex digits of their weights' sha256: a manifest that names these weights must be the one committed with them. A
# model rebuilt since has other weights and its own content_sha256.
_COMMITTED_MANIFESTS = {
    "5829a04a0f6d664f": "33c1a42d7cf16b64", "50b562361d393e28": "f9d5c476cc501c68",
    "5c7aa38405ca175c": "3701e6c08a7b7021", "3c198bd47ca30aad": "d35c96ed06529303",
    "98aef085bfe7b322": "e51a855ebdba3edd", "3effd840f3dee2c1": "11af4d72f3fe79e8",
    "ac95f0ebfd7e82f7": "47223f4cc31d2380", "1d7001da9e580ae0": "9863b02068def513",
    "cdeb3d2b5431827a": "8c4c91c2ba0e75c7", "3c48336cf6957d86": "2d2ec335c2259883",
    "56fa142cbb5a5cf8": "97c64daf7e8650cf", "e565b8bfb48427de": "1573c616b20e9756",
    "45ab6e9ad01ed4e8": "1a493f8ca56d54fc", "7d95313fa737151a": "cb80fe77a7efb188",
    "272368db0d4ccb19": "8e3e6da44805a490", "e9f636458880f9fe": "c62030cd2423d0fe",
    "f97b1c6f0c8995b4": "fb3b1c45df2dede3", "4b269edbd6d4f5c0": "ae5edbd3ed959dfe",
    "3d2e97357ad53385": "12fa25fc4b199e32", "364034f120015508": "b71efd38fadc17d8",
    "483081cd5bf5c598": "56c2f31683c4fd7c", "4a017cb60550107c": "ea5d0b5753f146f3",
    "cbe245dfbdd25909": "a1f4943354918245", "2ff2655c741435ef": "5d3ccbcd438b716c",
    "13d8c3761a6f0730": "41e2633471c77a53", "d062c224bb27a30a": "b5023a1f3443d9cb",
    "b873ce8fead8f58e": "e1204ecb5d05b470", "b841573df0d73d88": "48d35ec3f7d57ec1",
    "41080a7fc6f163a9": "403469f13ea59479", "6bbad0206a8854f2": "d349e6a26ac174e0",
    "55fe79761f438f11": "628124e89c85a4c5", "eedbeac808b1d724": "0a5d596b81679795",
    "4cf797421d1528b9": "e446eefbae0852c1", "5a8290e8da0ff4e7": "f9959c2d0e85a3f1",
    "1b475a645c9ffe77": "a54e5eafd0de53f4", "c609ac73cc6ce72c": "e4a9216c4a250039",
    "c125324f80db5e4c": "75fada145da298ec", "a5668d394b084c5d": "e7432e206cac3d8c",
    "77aeec6ae6b56f19": "f6c5a7b8ac5f6bb1", "6433dc0b0dbbe9c0": "f3ac59f040c43e1a",
    "0848471dbe6ccbc9": "23aa757016ad7f7b", "31870c0786dec575": "b36ae0be193d9f11",
    "a538511008e816e7": "d1b47f13b2bc9eb7", "349f7cb1fe40d827": "1d1d04463107143b",
    "1edbe57f95291ad8": "c717393a4e1ef870", "c3905f304cbab9c2": "0ec3c9c79e62a9ba",
    "0e28924af2b91bb1": "dfa8e67ec8699917", "e36be7d6b4910b75": "b2a497e8d502f6fa",
    "57a999957647c171": "54e0f8192ef6744d", "d3914d0b57ae9f60": "7f8803c7da8692ff",
    "3ecdef15167d8b8e": "87e35e6b28805c5f", "f56879d3d941eeae": "4cecc6482567f115",
    "71d8fe23d617e59c": "441be43f441f04e2", "3c499ac5c0e11c09": "3a894bdeec45873b",
    "d2e226ef5dc086ff": "b1449382d2830ba7", "a8c55b1a3989e8bd": "91e96c5914b8360c",
    "5e0d11a3d5923265": "8fb5e87a0271000b", "dc74e1dc541c9bd0": "10aca0b555077e4d",
    "87c292d80ce07d46": "573e2620e5a06c18", "d92a86a22de4c81c": "0ba6f14cfa0215ff",
    "14b72afddbcf2175": "e278823d8ad872e4", "1b611bbac0e9089e": "56fce54451e34bb7",
}


# What the zoo's readers take from a manifest (``build_zoo`` writes it), and of which JSON types.
_MANIFEST_FIELDS = {"key": (str,), "sha256": (str,), "size_bytes": (int,), "seconds": (int, float),
                    "history": (dict,), "batch_losses": (list,), "torch": (str,), "evaluation": (dict,),
                    "evaluation.clean_accuracy": (int, float), "evaluation.n_test": (int,),
                    "evaluation.subset": (dict,), "evaluation.subset.n": (int,),
                    "evaluation.subset.clean_accuracy": (int, float), "evaluation.subset.pgd_accuracy": (int, float),
                    "evaluation.subset.pgd": (dict,), "evaluation.subset.pgd.eps": (int, float)}


def load_reference(name: str, *, device: str | torch.device | None = None,
                   root: str | os.PathLike | None = None) -> tuple[nn.Module, dict]:
    """Reference model ``name`` in eval mode on ``device``, after checking its weights against the manifest's sha256.

    Args:
        name: a key of ``REFERENCE`` (``"mnist-advaat"``, ...).
        device: where to load it (``runtime.resolve_device``).
        root: the zoo's folder (``zoo_root``).

    Returns:
        ``(model, manifest)``; a model stored in float16 (``stored_dtype``) is returned in float32.

    Raises:
        FileNotFoundError: the zoo's folder does not exist, or the weights are missing; ValueError: they do not match
        the manifest (a corrupted or replaced file). Both name the model's folder, the file and the command that
        rebuilds it.
    """
    manifest = read_manifest(name, root)
    folder = zoo_root(root) / manifest["key"]
    weights = folder / "model.safetensors"
    rebuild = _rebuild_command(name, root)
    for file, key in ((weights, "sha256"), (folder / "model.json", "sidecar_sha256")):
        if not file.is_file():
            raise FileNotFoundError(f"reference model {name!r} in {folder}: {file.name} is missing; restore the folder "
                                    f"from git or rebuild it with `{rebuild}`.")
        if _sha256(file) != manifest.get(key):
            raise ValueError(f"reference model {name!r} in {folder}: {file.name} does not match the sha256 in its "
                             f"manifest (a corrupted or replaced file); restore the folder from git or rebuild it "
                             f"with `{rebuild}`.")
    model, _ = load_checkpoint(weights, device=resolve_device(device))
    half = next(model.parameters()).dtype == torch.float16
    return (model.float() if half else model), manifest  # stored in half: computed in float32


def _hardware(device: torch.device) -> dict:
    import platform

    processor = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        processor = names[0] if names else processor
    except OSError:
        pass
    info = {"machine": platform.machine(), "processor": processor,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def evaluate_reference(model: nn.Module, recipe: Recipe, device: str | torch.device | None = None,
                       data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None) -> dict:
    """The evaluation a manifest records.

    Clean accuracy on the whole test split; clean and PGD accuracy on its first ``EVAL_N`` images (one set for both),
    PGD with RAR's steps and step size (scaled to the radius) at the recipe's training radius (RAR's evaluation radius
    for natural training), one random start, seed 0.

    Returns:
        ``{"clean_accuracy", "n_test", "subset": {"n", "clean_accuracy", "pgd_accuracy", "pgd": {settings}}}``.
    """
    from .data import load_dataset
    from .evaluation import evaluate, protocol

    _check_recipe(recipe, "evaluate_reference")
    test = load_dataset(recipe.dataset, "test", root=data_root, mirror=mirror)
    rar = protocol(recipe.dataset)
    eps = recipe.train_eps or rar["eps"]
    pgd = dict(eps=eps, pgd_steps=rar["pgd_steps"], pgd_alpha=rar["pgd_alpha"] * eps / rar["eps"])
    whole = evaluate(model, test, recipe.dataset, n_pgd=0, n_attribution=0, device=device, progress=False)
    first = evaluate(model, (test.images[:EVAL_N], test.labels[:EVAL_N]), recipe.dataset, n_pgd=None,
                     n_attribution=0, seed=0, device=device, progress=False, **pgd)
    return {"clean_accuracy": whole["clean_accuracy"], "n_test": whole["n_clean"],
            "subset": {"n": first["n_clean"], "clean_accuracy": first["clean_accuracy"],
                       "pgd_accuracy": first["pgd_accuracy"], "pgd": {**pgd, "restarts": 1, "random_start": True,
                                                                      "seed": 0}}}


def build_zoo(only: list[str] | None = None, *, root: str | os.PathLike | None = None,
              work_dir: str | os.PathLike | None = None, device: str | torch.device | None = None,
              progress: bool = True, data_root: str | os.PathLike | None = None,
              mirror: str | os.PathLike | None = None, force: bool = False) -> pd.DataFrame:
    """Train the reference models that are missing (or all of ``only``), evaluate them and write their manifests.

    Each model trains in ``work_dir/<key>`` (default ``<root>/../_build/zoo-work``), saving its state after every
    epoch, so an interrupted build resumes where it stopped; the finished model's weights and manifest are then
    written atomically to ``<root>/<key>/``. A model whose manifest matches its recipe and whose weights match the
    manifest's hash is kept (``force`` rebuilds it). A model that starts from another (``Recipe.init``) is built
    after it. Folders of recipes that no longer exist (``stale_folders``) are removed.

    Args:
        only: names of ``REFERENCE`` to build (``None``: all).
        root: the zoo's folder (``zoo_root``).
        work_dir: where unfinished runs keep their state.
        device: where to train (``runtime.resolve_device``).
        progress: progress bars.
        data_root: the data cache.
        mirror: an offline data mirror.
        force: rebuild models that are already built.

    Returns:
        The zoo's table (``zoo_table``) after the build.

    Raises:
        ValueError: a name of ``only`` that is not in ``REFERENCE``.
    """
    from tqdm.auto import tqdm

    root, device = zoo_root(root), resolve_device(device)
    progress, force = check_flag(progress, "progress"), check_flag(force, "force")
    work = Path(work_dir) if work_dir is not None else root.parent / "_build" / "zoo-work"
    names = list(REFERENCE) if only is None else _names(only)
    for name in names:
        _reference(name)
    make_dirs(root)  # a new zoo
    by_key = {recipe.key: name for name, recipe in REFERENCE.items()}
    todo, seen = [], set()

    def add(name: str, requested: bool) -> None:
        recipe = REFERENCE[name]
        if recipe.init is not None:
            add(by_key[recipe.init.key], False)
        if name in seen:
            return
        seen.add(name)
        if (force and requested) or not _is_built(name, root):
            todo.append(name)

    for name in names:
        add(name, True)
    for folder in stale_folders(root):  # models of recipes that changed: their successors replace them
        import shutil

        shutil.rmtree(folder)
        if progress:
            tqdm.write(f"removed {folder}: no reference recipe has this key any more")
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for name in tqdm(todo, desc="reference zoo", disable=not progress):
            _build_one(name, root, work, device, progress, data_root, mirror)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return zoo_table(root)


def _build_one(name: str, root: Path, work: Path, device, progress: bool, data_root, mirror) -> None:
    import shutil
    import time

    from tqdm.auto import tqdm

    from ._io import atomic_path

    recipe = REFERENCE[name]
    folder = work / recipe.key
    init_weights = None if recipe.init is None else root / recipe.init.key / "model.safetensors"
    t0 = time.perf_counter()
    model, sidecar = train_recipe(recipe, folder, init_seed=recipe_seed(recipe), device=device, progress=progress,
                                  data_root=data_root, mirror=mirror, init_weights=init_weights,
                                  metadata={"recipe": recipe.to_dict(), "name": name})
    stored = folder
    if stored_dtype(name) != torch.float32:  # rounded once, then evaluated and loaded as stored
        stored = folder / "stored"
        save_checkpoint(model.to(stored_dtype(name)), stored / "model.safetensors",
                        {**sidecar["metadata"], "stored_dtype": str(stored_dtype(name)).removeprefix("torch.")})
        model = load_checkpoint(stored / "model.safetensors", device=device)[0].float()
    history = pd.read_csv(folder / "history.csv")
    seconds = float(history["seconds"].sum())
    manifest = {"name": name, "key": recipe.key, "recipe": recipe.to_dict(),
                "training": recipe.train_config().to_dict(),
                "init": None if recipe.init is None else recipe.init.key,
                "history": history.to_dict(orient="list"), "batch_losses": _batch_losses(folder),
                "seconds": seconds, "wall_seconds": time.perf_counter() - t0,
                "hardware": _hardware(device), "torch": torch.__version__,
                "evaluation": evaluate_reference(model, recipe, device, data_root, mirror)}
    target = root / recipe.key
    make_dirs(target)
    for file in checkpoint_paths(stored):  # the weights and their sidecar (the architecture)
        with atomic_path(target / file.name) as tmp:
            shutil.copyfile(file, tmp)
    manifest["sha256"] = _sha256(target / "model.safetensors")
    manifest["sidecar_sha256"] = _sha256(target / "model.json")
    manifest["size_bytes"] = (target / "model.safetensors").stat().st_size
    manifest["content_sha256"] = _manifest_digest(manifest)
    with atomic_path(target / "manifest.json") as tmp:
        Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    if progress:
        ev = manifest["evaluation"]
        tqdm.write(f"{name}: clean {ev['clean_accuracy']:.4f}, PGD {ev['subset']['pgd_accuracy']:.4f}, "
                   f"{seconds:.0f} s")


def stale_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """The model folders in the zoo whose key is no reference recipe's (left by a recipe that changed).

    A zoo folder that does not exist yet has none.

    Raises:
        TypeError: ``root`` is not a string, a path or None.
        ValueError: ``root`` is an existing file.
    """
    root, keys = zoo_root(root), {recipe.key for recipe in REFERENCE.values()}
    if not root.is_dir():
        return []
    return sorted(f for f in root.iterdir() if f.is_dir() and f.name not in keys and (f / "manifest.json").is_file())


def _batch_losses(folder: Path) -> list[float]:
    from safetensors import safe_open

    with safe_open(str(folder / "train_state.safetensors"), framework="pt") as fh:
        return json.loads(fh.metadata()["attrbound_train_state"])["batch_losses"]


def _is_built(name: str, root: Path) -> bool:
    try:
        manifest = read_manifest(name, root)
    except (FileNotFoundError, ValueError):
        return False
    folder = root / manifest["key"]
    return all((folder / name).is_file() and _sha256(folder / name) == manifest.get(key)
               for name, key in (("model.safetensors", "sha256"), ("model.json", "sidecar_sha256")))


def zoo_table(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per built reference model: data set, method, training radius, accuracies, seconds, size, key.

    Raises:
        FileNotFoundError: the zoo's folder does not exist (an existing folder without models gives an empty table).
        ValueError: a built model's manifest is unreadable (the message names it and the rebuild command).
    """
    _existing_root(root)
    rows = []
    for name, recipe in REFERENCE.items():
        try:
            m = read_manifest(name, root)
        except FileNotFoundError:  # not built
            continue
        ev = m["evaluation"]
        rows.append({"name": name, "dataset": recipe.dataset, "method": recipe.method, "train_eps": recipe.train_eps,
                     "n_train": recipe.n_train, "clean_accuracy": ev["clean_accuracy"],
                     "pgd_eps": ev["subset"]["pgd"]["eps"], "pgd_accuracy": ev["subset"]["pgd_accuracy"],
                     "seconds": m["seconds"], "size_mb": m["size_bytes"] / 1e6, "key": m["key"]})
    return pd.DataFrame(rows)


REPLAY_RTOL = 1e-4  # the first batches' losses, same CPU kind; other CPUs may differ more (see verify_zoo)
# Methods whose loss differentiates an attribution (a gradient of a gradient through softplus) amplify rounding: on
# CI's CPU (another model than the build machine's) their replays differed by up to 2.4e-3 (MNIST AAT with 2 IG
# steps), against at most 1e-4 for natural training and PGD-AT.
REPLAY_RTOL_ATTRIBUTION = 1e-2
ATTRIBUTION_LOSS_METHODS = frozenset({"ig_norm", "aat", "advaat"})
FULL_RETRAIN = "mnist-natural"  # the cheapest recipe, retrained in full by verify_zoo
FULL_RETRAIN_POINTS = 0.3  # its clean test accuracy must come within this many percentage points


def replay_losses(name: str, *, root: str | os.PathLike | None = None, device: str | torch.device | None = None,
                  data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
                  n_batches: int | None = None, data: Any = None) -> list[float]:
    """The losses of the first ``n_batches`` optimiser steps of reference recipe ``name``, retrained now.

    The run starts as the build's did (the recipe's seed, or the committed weights of ``recipe.init``) and stops after
    ``n_batches`` steps (default: as many as the manifest logged, ``training.FIRST_BATCHES``). ``data``: the recipe's
    training data if already loaded.
    """
    from .data import load_dataset
    from .training import FIRST_BATCHES

    recipe, root = _reference(name), zoo_root(root)
    if n_batches is not None:
        check_positive_int(n_batches, "n_batches")
    n_batches = n_batches or len(read_manifest(name, root)["batch_losses"]) or FIRST_BATCHES
    init_weights = None
    if recipe.init is not None:
        init_name = next(n for n, r in REFERENCE.items() if r.key == recipe.init.key)
        load_reference(init_name, root=root, device="cpu")  # checks the parent's hash
        init_weights = root / recipe.init.key / "model.safetensors"
    if data is None:
        data = load_dataset(recipe.dataset, "train", root=data_root, mirror=mirror, subset=recipe.n_train,
                            seed=recipe.seed)
    model = initial_model(recipe, recipe_seed(recipe), init_weights)
    history = train(model, data, recipe.train_config(), device=resolve_device(device), progress=False,
                    stop_after=n_batches)
    return history.attrs["batch_losses"]


def verify_zoo(only: list[str] | None = None, *, root: str | os.PathLike | None = None, full: bool = True,
               device: str | torch.device | None = "cpu", progress: bool = True,
               data_root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
               rtol: float | None = None, replay: list[str] | None = None) -> pd.DataFrame:
    """Check the committed zoo against its manifests and the current code.

    Per model: the weights and sidecar match the manifest's sha256 and load; the recipe retrained for its first
    ``FIRST_BATCHES`` optimiser steps reproduces the logged losses to ``rtol`` (relative; default ``REPLAY_RTOL``, and
    ``REPLAY_RTOL_ATTRIBUTION`` for the ``ATTRIBUTION_LOSS_METHODS``), which catches any change of what the training
    code computes. On the CPU that built the zoo, with its thread count (2), the replay is
    bit-identical; with 1 thread the float sums are reassociated and the 20 losses differed by up to 1.9e-6 relative
    (MNIST PGD-AT; 2.5e-7 natural MNIST, 3.9e-7 CIFAR PGD-AT), so 1e-4 leaves a factor of 50 for other CPUs of the
    same architecture; other vector units or a GPU (other kernels, TF32 off) were not measured and may need 1e-3. A
    change of the code's arithmetic (a loss, a step size, an augmentation) moves the losses by far more. With ``full``,
    ``FULL_RETRAIN`` is retrained in full and must reach its logged clean test accuracy within
    ``FULL_RETRAIN_POINTS`` percentage points. ``replay`` limits the replay to those models (the others are checked
    for their hashes and loading only): the test suite replays the seed-0 recipes and a sample of their reruns.
    The weights check reads the manifest (``read_manifest``): an edited evaluation or history fails it.

    Returns:
        One row per check: ``name, check, ok, detail``.

    Raises:
        FileNotFoundError: the zoo's folder does not exist.
        ValueError: a name of ``only`` or ``replay`` that is not in ``REFERENCE``, or a name of ``replay`` that is
            not among the models verified (``only``).
    """
    import tempfile

    from tqdm.auto import tqdm

    from .data import load_dataset
    from .evaluation import evaluate

    root = _existing_root(root)
    full, progress = check_flag(full, "full"), check_flag(progress, "progress")
    device = resolve_device(device)  # "gpu" refused now, even where no model is replayed
    rtol = None if rtol is None else check_tol(rtol, "rtol")
    names = list(REFERENCE) if only is None else _names(only)
    replayed = set(names) if replay is None else set(_names(replay, "replay"))
    for name in (*names, *replayed):
        _reference(name)
    outside = sorted(replayed - set(names))
    if outside:
        raise ValueError(f"replay names {outside}, which are not among the models verified (only={names}): they "
                         "would not be replayed; add them to only, or drop them from replay.")
    rows, loaded = [], {}
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for name in tqdm(names, desc="verify zoo", disable=not progress):
            try:
                _, manifest = load_reference(name, root=root, device="cpu")
            except (FileNotFoundError, ValueError) as err:
                rows.append(dict(name=name, check="weights", ok=False, detail=str(err)))
                continue
            rows.append(dict(name=name, check="weights", ok=True, detail=f"sha256 {manifest['sha256'][:12]} loads"))
            if name not in replayed:
                continue
            logged, recipe = manifest["batch_losses"], REFERENCE[name]
            source = (recipe.dataset, recipe.n_train, recipe.seed if recipe.n_train is not None else 0)  # seed: subset
            if source not in loaded:
                loaded[source] = load_dataset(recipe.dataset, "train", root=data_root, mirror=mirror,
                                              subset=recipe.n_train, seed=recipe.seed)
            now = replay_losses(name, root=root, device=device, data=loaded[source])
            worst = max((abs(a - b) / max(abs(b), 1e-12) for a, b in zip(now, logged, strict=True)), default=0.0)
            tolerance = rtol if rtol is not None else (
                REPLAY_RTOL_ATTRIBUTION if recipe.method in ATTRIBUTION_LOSS_METHODS else REPLAY_RTOL)
            ok = len(now) == len(logged) and worst <= tolerance
            rows.append(dict(name=name, check=f"first {len(logged)} losses", ok=ok,
                             detail=f"max relative difference {worst:.2e} (tolerance {tolerance:g})"))
        if full and (only is None or FULL_RETRAIN in names):
            recipe, manifest = REFERENCE[FULL_RETRAIN], read_manifest(FULL_RETRAIN, root)
            with tempfile.TemporaryDirectory() as tmp:
                model, _ = train_recipe(recipe, tmp, init_seed=recipe_seed(recipe), device=device, progress=progress,
                                        data_root=data_root, mirror=mirror)
            test = load_dataset(recipe.dataset, "test", root=data_root, mirror=mirror)
            accuracy = evaluate(model, test, recipe.dataset, n_pgd=0, n_attribution=0, device=device,
                                progress=False)["clean_accuracy"]
            logged = manifest["evaluation"]["clean_accuracy"]
            gap = 100 * abs(accuracy - logged)
            rows.append(dict(name=FULL_RETRAIN, check="full retraining", ok=gap <= FULL_RETRAIN_POINTS,
                             detail=f"clean accuracy {accuracy:.4f} vs logged {logged:.4f} ({gap:.2f} points)"))
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return pd.DataFrame(rows, columns=["name", "check", "ok", "detail"])
