"""Running a sweep: the output folder and its manifest, the recipe models, the shards, the merged table."""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from .._io import atomic_path, make_dirs, write_json
from ..experiments import KEY_COLUMNS, ROW_COLUMNS, AttackSpec, summarize, validate_bounds
from ..runtime import derive_seed
from .config import check_loaded, load_config
from .distributed import _Ranks
from .identity import _diff, config_hash, config_identity
from .plan import Shard, plan_shards

__all__ = ["run_sweep", "run_shard", "recipe_of", "load_data"]

FORMAT, FORMAT_VERSION = "attrbound-sweep", 1


def _read_manifest(out: Path) -> dict | None:
    path = out / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); it is written atomically, so something else wrote it. "
                         "Delete the output folder to start over.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an attrbound sweep manifest; choose another output folder.")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("file"), str)
                                               for s in shards):
        raise ValueError(f"{path} lists no shards (a list of {{'file': ...}} entries); the manifest was edited or "
                         "damaged. Delete the output folder to start over.")
    return manifest


def _prepare_folder(out: Path, cfg: dict, identity: dict, digest: str, shards: list[Shard], world: int) -> None:
    """Rank 0: refuse a folder of another sweep, remove partial writes, write the config and the manifest."""
    manifest = _read_manifest(out)
    if manifest is None and (out / "shards").exists():
        raise ValueError(f"{out} holds shard files but no manifest.json; it was not written by this version of "
                         "attrbound sweep. Choose another output folder.")
    if manifest is not None and manifest.get("config_hash") != digest:
        changes = _diff(manifest.get("identity", {}), identity)
        raise ValueError(f"{out} holds a sweep with a different config (hash {str(manifest.get('config_hash'))[:12]} "
                         f"there, {digest[:12]} now); differences: {'; '.join(changes[:8]) or 'unknown'}. Rerun with "
                         "the original config to resume, or pass another --out (or delete the folder) to start over.")
    make_dirs(out)  # (a file in the way is named)
    for stale in out.rglob(".*.tmp"):  # temporary files of writes cut short by a kill
        stale.unlink(missing_ok=True)
    created = manifest.get("created") if manifest else None
    with atomic_path(out / "config.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    _write_manifest(out, identity, digest, shards, world, "running", created)


def _write_manifest(out: Path, identity: dict, digest: str, shards: list[Shard], world: int, status: str,
                    created: str | None = None, run: dict | None = None) -> None:
    """Write the manifest, with every shard's status read from the folder.

    ``run`` (the record of a finished invocation: processes, shards and attacks run, compute seconds) is
    appended to ``runs``.
    """
    from .. import __version__

    previous = _read_manifest(out) or {}
    runs = list(previous.get("runs", [])) + ([run] if run else [])
    rows = [{"id": s.id, "model": s.model, "index": s.index, "samples": [s.start, s.stop], "seed": s.seed,
             "attacks": s.attacks, "file": s.file, "status": "done" if (out / s.file).is_file() else "pending"}
            for s in shards]
    write_json(out / "manifest.json", {
        "format": FORMAT, "format_version": FORMAT_VERSION, "config_hash": digest, "identity": identity,
        "attrbound_version": __version__, "created": created or previous.get("created") or _now(),
        "updated": _now(), "status": status, "world_size": world, "n_shards": len(shards),
        "n_shards_done": sum(r["status"] == "done" for r in rows), "n_attacks_planned": sum(s.attacks for s in shards),
        "n_attacks_done": sum(r["attacks"] for r in rows if r["status"] == "done"), "runs": runs, "shards": rows})


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def load_data(cfg: dict):
    """The split a sweep evaluates (``cfg``: a config of ``load_config``)."""
    from ..data import load_dataset

    d = cfg["data"]
    subset = d["n_samples"] if d["subset_seed"] is not None else None
    return load_dataset(d["name"], d["split"], root=d["root"], download=d["download"], mirror=d["mirror"],
                        subset=subset, seed=d["subset_seed"] or 0)


def _model_file(out: Path, entry: dict) -> Path:
    return Path(entry["checkpoint"]) if "checkpoint" in entry else out / "models" / entry["name"] / "model.safetensors"


def recipe_of(entry: Mapping):
    """The ``zoo.Recipe`` of a recipe model of a sweep config (``load_config(...)["models"][i]``).

    Args:
        entry: a model entry with ``train`` (every ``TrainConfig`` field, ``dataset``, ``subset``) and ``model``.

    Returns:
        A ``zoo.Recipe``: training data ``dataset`` (``subset`` images drawn with ``seed``), architecture
        ``model``, training ``train``.
    """
    from ..zoo import Recipe

    options = dict(entry["train"])
    dataset, subset = options.pop("dataset"), options.pop("subset")
    fields = {k: options.pop(k) for k in ("method", "epochs", "batch_size", "lr", "eps", "seed")}
    return Recipe(dataset=dataset, n_train=subset, model=dict(entry["model"]), options=options, **fields)


def _train_recipes(out: Path, cfg: dict, device: torch.device, progress: bool) -> None:
    """Rank 0: train every recipe model that has no checkpoint in ``out/models/<name>/`` yet (resumable).

    Its initial weights are drawn after ``torch.manual_seed(derive_seed(seed, "init", name))``.
    """
    from ..checkpoints import checkpoint_paths
    from ..zoo import train_recipe

    d = cfg["data"]
    for entry in cfg["models"]:
        if "train" not in entry or all(p.is_file() for p in checkpoint_paths(_model_file(out, entry))):
            continue
        train_recipe(recipe_of(entry), _model_file(out, entry).parent,
                     init_seed=derive_seed(cfg["seed"], "init", entry["name"]), device=device, progress=progress,
                     data_root=d["root"], mirror=d["mirror"], download=d["download"], metadata={"sweep_recipe": entry})


def _read_shard(out: Path, shard: Shard) -> pd.DataFrame:
    path = out / shard.file
    try:
        table = pd.read_parquet(path)
    except Exception as err:
        raise ValueError(f"cannot read shard file {path} ({err}); delete it and rerun to recompute that "
                         "shard.") from None
    if list(table.columns) != list(ROW_COLUMNS) or len(table) != shard.attacks:
        raise ValueError(f"shard file {path} has {len(table)} rows and columns {list(table.columns)[:4]}...; expected "
                         f"{shard.attacks} rows of the validate_bounds columns. Delete it and rerun to recompute it.")
    return table


def _merge(out: Path, shards: list[Shard]) -> pd.DataFrame:
    missing = [s.file for s in shards if not (out / s.file).is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} shard files are missing after every rank finished (e.g. {missing[0]}): "
                           "with several nodes, --out must be on a file system that every node shares.")
    table = pd.concat([_read_shard(out, s) for s in shards], ignore_index=True)
    return table.sort_values(list(KEY_COLUMNS), kind="mergesort", ignore_index=True)


def run_sweep(config: str | os.PathLike | Mapping, out_dir: str | os.PathLike, progress: bool = True
              ) -> pd.DataFrame | None:
    """Run (or resume) a sweep; alone or under ``torchrun`` (see the docstring of ``attrbound_lite.sweep``).

    Args:
        config: a YAML file or a mapping (``load_config``).
        out_dir: the sweep folder; rerun with the same config to resume, another config is refused.
        progress: rank 0 shows a progress bar with an ETA.

    Returns:
        The merged table (``experiments.ROW_COLUMNS``, sorted by ``KEY_COLUMNS``) on rank 0, ``None`` on the
        other ranks.
    """
    cfg = load_config(config)
    out = Path(out_dir)
    ranks = _Ranks(cfg["device"])
    try:
        return _run(cfg, out, ranks, progress and ranks.rank == 0)
    finally:
        ranks.close()


def run_shard(cfg: dict, shard: Shard, model: torch.nn.Module, data, on_progress=None) -> pd.DataFrame:
    """The rows of one shard (``experiments.validate_bounds`` on its samples, with its seed).

    A shard's rows do not depend on the other shards, so a sample of a sweep can be recomputed by running only the
    shards that hold it.

    Args:
        cfg: a config of ``load_config``.
        shard: one of ``plan_shards(cfg)``.
        model: the shard's model, loaded (and made smooth with ``surrogate_beta`` where the config asks).
        data: the evaluated split (``(images, labels)`` or a data set), as the sweep loads it.
        on_progress: called with the number of attacks finished.

    Returns:
        The shard's table (``experiments.ROW_COLUMNS``), ``shard.attacks`` rows.
    """
    check_loaded(cfg, "run_shard")
    attributions = [(a["name"], {k: v for k, v in a.items() if k != "name"}) for a in cfg["attributions"]]
    table = validate_bounds(
        model, data, cfg["eps"], list(cfg["eps"]), attributions, [AttackSpec(**a) for a in cfg["attacks"]],
        restarts=cfg["restarts"], sample_ids=range(shard.start, shard.stop), surrogate_beta=cfg["surrogate_beta"],
        rtol=cfg["tolerance"]["rtol"], cosine_atol=cfg["tolerance"]["cosine_atol"], batch_size=cfg["batch_size"],
        seed=shard.seed, model_name=shard.model, bound_options=cfg["bound"], on_progress=on_progress,
        chunk_size=cfg["chunk_size"], compile=cfg["compile"])
    if len(table) != shard.attacks:
        raise RuntimeError(f"shard {shard.id} produced {len(table)} rows, {shard.attacks} planned.")
    return table


def _run(cfg: dict, out: Path, ranks: _Ranks, progress: bool) -> pd.DataFrame | None:
    from ..checkpoints import load_checkpoint
    from ..models import smooth_surrogate

    shards = plan_shards(cfg)
    loaded = []

    def setup():
        identity = config_identity(cfg, ranks.device.type)
        digest = config_hash(identity)
        _prepare_folder(out, cfg, identity, digest, shards, ranks.world)
        loaded.append(load_data(cfg))  # fills the data cache once, before the other ranks read it
        _train_recipes(out, cfg, ranks.device, progress)
        pending = [i for i, s in enumerate(shards) if not (out / s.file).is_file()]
        return identity, digest, pending

    identity, digest, pending = ranks.on_rank0(setup)
    # One process per machine fills its data cache (rank 0 did already), then the others read it.
    data = loaded[0] if loaded else load_data(cfg) if ranks.local_rank == 0 else None
    ranks.barrier()
    data = data if data is not None else load_data(cfg)
    models = {}
    for entry in cfg["models"]:
        model, _ = load_checkpoint(_model_file(out, entry), device=ranks.device)
        try:
            smooth_surrogate(model, cfg["surrogate_beta"])
        except ValueError as err:
            raise ValueError(f"model {entry['name']!r}: {err}") from None
        models[entry["name"]] = model
    mine = [shards[i] for i in pending[ranks.rank::ranks.world]]
    if progress:
        done = len(shards) - len(pending)
        tqdm.write(f"sweep {out}: {len(shards)} shards, {done} already done, {len(pending)} to run on {ranks.world} "
                   f"process(es); {sum(s.attacks for s in shards):,} attacks in all")
    bar = tqdm(total=sum(s.attacks for s in mine), unit="attack", disable=not progress, dynamic_ncols=True,
               desc="sweep" if ranks.world == 1 else f"sweep (rank 0 of {ranks.world})")
    ranks.barrier()  # every rank starts its shards together: the compute time below is the sweep's own
    started, t0 = _now(), time.perf_counter()
    try:
        for shard in mine:
            table = run_shard(cfg, shard, models[shard.model], data, on_progress=bar.update)
            with atomic_path(out / shard.file) as tmp:
                table.to_parquet(tmp, index=False)
            if ranks.rank == 0:
                _write_manifest(out, identity, digest, shards, ranks.world, "running")
    finally:
        bar.close()
    ranks.barrier()
    seconds = time.perf_counter() - t0
    if ranks.rank != 0:
        return None
    table = _merge(out, shards)
    with atomic_path(out / "results.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / "summary.csv") as tmp:
        summarize(table).to_csv(tmp, index=False)
    attacks_run = sum(shards[i].attacks for i in pending)
    _write_manifest(out, identity, digest, shards, ranks.world, "complete", run={
        "started": started, "world_size": ranks.world, "device": str(ranks.device), "shards_run": len(pending),
        "attacks_run": attacks_run, "compute_seconds": round(seconds, 3),
        "attacks_per_second": round(attacks_run / seconds, 2) if attacks_run else None})
    return table
