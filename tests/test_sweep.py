"""Sweeps: a SIGKILLed sweep resumes to the uninterrupted table, 2 gloo processes give the 1-process table,
a changed config is refused, and config errors name their key path.

All runs use one thread per process (conftest sets it here; the subprocesses get OMP_NUM_THREADS=1), so
tables are comparable bit for bit: a different thread count changes float reductions.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import data_mirror

from attrbound_lite.experiments import KEY_COLUMNS, ROW_COLUMNS, TIMING_COLUMNS, summarize
from attrbound_lite.sweep import SweepConfigError, load_config, plan_shards, report, run_sweep

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def config(data_root):
    """A CI-sized sweep: 24 MNIST test images in 4 shards, a width-0.25 smooth CNN trained by recipe,
    3 (norm, eps) x 2 attacks x 2 restarts = 288 attacks."""
    from attrbound_lite.data import load_dataset
    load_dataset("mnist", "test", root=data_root, mirror=data_mirror(), download=False)  # fill the cache once
    return {
        "seed": 7, "shard_size": 6,
        "data": {"name": "mnist", "split": "test", "n_samples": 24, "root": str(data_root),
                 "mirror": str(data_mirror()), "download": False},
        "models": [{"name": "cnn", "model": {"width": 0.25, "activation": "softplus", "beta": 10.0, "pool": "avg"},
                    "train": {"subset": 512, "epochs": 1, "batch_size": 64}}],
        "norms": ["l2", "linf"], "eps": {"l2": [0.05, 0.5], "linf": [0.003]},
        "attributions": ["saliency"], "restarts": 2,
        "attacks": [{"type": "pgd", "steps": 4}, {"type": "ifia", "steps": 4, "k": 50}],
        "bound": {"max_dense_n": 0},
    }


@pytest.fixture(scope="module")
def config_file(config, tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def reference(config_file, tmp_path_factory):
    """The uninterrupted single-process run."""
    out = tmp_path_factory.mktemp("reference")
    return out, run_sweep(config_file, out, progress=False)


def _without_timings(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=list(TIMING_COLUMNS))


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_sweep_table_manifest_and_report(reference, config, capsys):
    out, table = reference
    shards = plan_shards(load_config(config))
    assert len(shards) == 4 and sum(s.attacks for s in shards) == 288
    assert list(table.columns) == list(ROW_COLUMNS) and len(table) == 288
    assert not table.duplicated(list(KEY_COLUMNS)).any()
    assert sorted(table["sample"].unique()) == list(range(24))  # the first 24 test images
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), table)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_attacks_done"] == 288 and manifest["world_size"] == 1
    assert [s["status"] for s in manifest["shards"]] == ["done"] * 4
    assert (out / "models" / "cnn" / "model.safetensors").is_file()  # the recipe's model, cached
    result = report(out)
    printed = capsys.readouterr().out
    assert "complete: 4 of 4 shards, 288 of 288 attacks" in printed and "violations" in printed
    assert result.n_attacks == 288 and result.complete
    pd.testing.assert_frame_equal(result.summary, summarize(table))
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summarize(table), check_dtype=False)


def test_one_shard_run_alone_gives_its_rows_of_the_whole_sweep(reference, config):
    """``run_shard``: a shard's rows do not depend on the other shards (a committed sweep is verified this way)."""
    from attrbound_lite.checkpoints import load_checkpoint
    from attrbound_lite.sweep import load_data, run_shard

    out, table = reference
    cfg = load_config(config)
    shard = plan_shards(cfg)[2]
    model, _ = load_checkpoint(out / "models" / "cnn" / "model.safetensors", device="cpu")
    alone = run_shard(cfg, shard, model, load_data(cfg))
    part = table[table["sample"].between(shard.start, shard.stop - 1)].reset_index(drop=True)
    pd.testing.assert_frame_equal(_without_timings(alone), _without_timings(part))
    with pytest.raises(TypeError, match="run_shard"):
        run_shard(config, shard, model, load_data(cfg))  # the YAML's own mapping, not load_config's


def test_sigkilled_sweep_resumes_to_the_uninterrupted_table(reference, config_file, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "attrbound_lite.sweep", str(config_file), "--out", str(out),
                             "--no-progress"], env=_env(), cwd=ROOT, stderr=subprocess.PIPE)
    shard_dir = out / "shards" / "cnn"
    deadline = time.monotonic() + 120
    while not (shard_dir.is_dir() and any(shard_dir.glob("shard-*.parquet"))):
        assert proc.poll() is None, f"the sweep ended before writing a shard: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "no shard file within 120 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    finished = {p.name: p.stat().st_mtime_ns for p in shard_dir.glob("shard-*.parquet")}
    assert 1 <= len(finished) < 4, f"the kill came too late to test resuming: {sorted(finished)}"
    assert not (out / "results.parquet").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    table = run_sweep(config_file, out, progress=False)  # the same command again
    for name, mtime in finished.items():  # finished shards were skipped, not recomputed
        assert (shard_dir / name).stat().st_mtime_ns == mtime
    assert not list(out.rglob(".*.tmp"))
    pd.testing.assert_frame_equal(_without_timings(table), _without_timings(reference[1]))


def test_two_gloo_processes_give_the_one_process_table(reference, config_file, tmp_path):
    out = tmp_path / "two"
    torchrun = VENV_BIN / "torchrun"
    command = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    run = subprocess.run([*command, "--standalone", "--nproc_per_node=2", "-m", "attrbound_lite.sweep",
                          str(config_file), "--out", str(out), "--no-progress"],
                         env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "complete"
    table = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(_without_timings(table), _without_timings(reference[1]))


def test_a_changed_config_is_refused(reference, config):
    out, table = reference
    changed = copy.deepcopy(config)
    changed["attacks"][0]["steps"] = 5
    with pytest.raises(ValueError, match=r"different config .*attacks\[0\]\.steps \(4 -> 5\)"):
        run_sweep(changed, out, progress=False)
    # where the data is read from is not part of the config's identity
    moved = copy.deepcopy(config)
    moved["data"]["download"] = True
    # ... and defaults spelled out are the same config
    moved["attacks"][0].update(restarts=load_config(config)["restarts"], relative_alpha=0.25)
    pd.testing.assert_frame_equal(_without_timings(run_sweep(moved, out, progress=False)), _without_timings(table))


def test_cli_sweep_and_report(reference, config_file, capsys):
    from attrbound_lite.cli import main

    out, _ = reference
    assert main(["report", str(out)]) == 0
    assert "288 of 288 attacks" in capsys.readouterr().out
    assert main(["sweep", str(config_file), "--out", str(out), "--no-progress"]) == 0  # complete: nothing to run
    assert main(["report", str(out.parent / "nowhere")]) == 2
    assert "holds no sweep" in capsys.readouterr().err


def _set(config: dict, path: str, value) -> dict:
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return config


@pytest.mark.parametrize("path, value, message", [
    ("attacks.1.steps", 0, r"attacks\[1\]\.steps: must be a positive integer, got 0"),
    ("attacks.0.stepz", 3, r"attacks\[0\]\.stepz: unknown key; allowed keys here: type, name, steps"),
    ("attacks.0.type", "fgsm", r"attacks\[0\]\.type: must be one of pgd, ifia; got 'fgsm'"),
    ("attacks.1.k", 5000, r"attacks\[1\]\.k: must be at most 784"),
    ("attacks.0.k", 5, r"attacks\[0\]\.k: only for type ifia"),
    ("attacks.1.name", "pgd", r"attacks\[1\]\.name: duplicate attack name 'pgd'"),
    ("eps.l2", [0.1, -0.2], r"eps\.l2\[1\]: must be a positive number, got -0.2"),
    ("eps.l3", [0.1], r"eps\.l3: unknown key"),
    ("eps", {"l2": [0.1]}, r"eps\.linf: missing \(required\)"),
    ("norms", ["l2", "l1"], r"norms\[1\]: must be one of l2, linf"),
    ("data.n_samples", 20000, r"data\.n_samples: must be at most 10000"),
    ("data.name", "imagenet", r"data\.name: must be one of mnist"),
    ("data", KeyError, r"data: missing \(required\)"),
    ("shard_size", "big", r"shard_size: must be a positive integer, got 'big'"),
    ("seeds", 1, r"seeds: unknown key"),
    ("device", "tpu", r"device: must be auto, cpu, cuda or cuda:N"),
    ("models.0.train.epochs", -1, r"models\[0\]\.train\.epochs: must be a positive integer"),
    ("models.0.train.lr_decay", 0.5, r"models\[0\]\.train\.lr_decay: unknown key"),
    ("models.0.model.pool", "max", r"models\[0\]\.model: activation 'softplus' with pool 'max' is not smooth"),
    ("models.0.checkpoint", "nowhere.safetensors", r"models\[0\]: give exactly one of checkpoint"),
    ("models.0.name", "a/b", r"models\[0\]\.name: must be a name"),
    ("attributions.0", {"name": "saliency", "n_steps": 4}, r"attributions\[0\]\.n_steps: only for integrated_gr"),
    ("bound.tol", 0, r"bound\.tol: must be a positive number"),
    ("tolerance", {"rtol": -1}, r"tolerance\.rtol: must be a non-negative number"),
    # a misspelt key and a bad value at every depth
    ("models.0.train.epoch", 2, r"models\[0\]\.train\.epoch: unknown key; allowed keys here: method, epochs"),
    ("models.0.train.epochs", True, r"models\[0\]\.train\.epochs: must be a positive integer, got True"),
    ("models.0.train.method", "pgd_at", r"models\[0\]\.train: method 'pgd_at' needs eps"),
    ("models.0.train.subset", 70000, r"models\[0\]\.train\.subset: must be at most 60000"),
    ("models.0.model.widht", 0.5, r"models\[0\]\.model\.widht: unknown key; allowed keys here: width"),
    ("models.0.model.width", 0, r"models\[0\]\.model\.width: must be a positive number, got 0"),
    ("attacks.1.step", 4, r"attacks\[1\]\.step: unknown key"),
    ("attacks.1.relative_alpha", "fast", r"attacks\[1\]\.relative_alpha: must be a positive number or null"),
    ("attacks.1.objective", "cosine", r"attacks\[1\]\.objective: only for type pgd"),
    ("bound.tolerance", 1e-3, r"bound\.tolerance: unknown key; allowed keys here: method, tol"),
    ("bound.tol", "small", r"bound\.tol: must be a positive number, got 'small'"),
    ("bound.method", "svd", r"bound\.method: must be one of lanczos, power, exact; got 'svd'"),
    ("data.n_sample", 24, r"data\.n_sample: unknown key; allowed keys here: name, split, n_samples"),
    ("data.n_samples", 0, r"data\.n_samples: must be a positive integer, got 0"),
    ("data.download", "yes", r"data\.download: must be true or false, got 'yes'"),
    ("attributions", ["saliency", {"name": "saliency"}], r"attributions: has repeats"),
    ("models", [], r"models: must be a non-empty list, got \[\]"),
])
def test_config_errors_name_the_key(config, tmp_path, path, value, message):
    bad = _set(config, path, value)
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(bad))
    with pytest.raises(SweepConfigError, match=f"^{file}: {message}"):
        load_config(file)


def test_config_defaults_and_yaml_numbers(config, tmp_path):
    file = tmp_path / "ok.yaml"
    file.write_text(yaml.safe_dump(config).replace("0.003", "3e-3"))  # YAML 1.1 reads 3e-3 as a string
    cfg = load_config(file)
    assert cfg["eps"]["linf"] == [0.003]
    assert cfg["attacks"][0] == {"type": "pgd", "name": None, "steps": 4, "relative_alpha": 0.25,
                                 "objective": "euclidean", "k": None, "restarts": cfg["restarts"]}
    assert cfg["batch_size"] == cfg["shard_size"]
    assert cfg["models"][0]["train"]["seed"] == 7 and cfg["models"][0]["train"]["method"] == "natural"
    assert cfg["tolerance"] == {"rtol": 0.01, "cosine_atol": 0.001}
    with pytest.raises(SweepConfigError, match="must be a mapping"):
        load_config(_set(config, "bound", [1]))
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.yaml")


def test_example_config_is_valid(monkeypatch):
    cfg = load_config(ROOT / "configs" / "sweep-ci.yaml")
    assert sum(s.attacks for s in plan_shards(cfg)) >= 1000


def test_a_fixed_gpu_is_refused_with_several_ranks(monkeypatch):
    from attrbound_lite.sweep.distributed import _Ranks
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="same GPU"):
        _Ranks("cuda:1")


# configs/sweep-ci.yaml's identity hash, computed by the code before the sweep became a package with pydantic
# models (sweep.py of commit HEAD at the time): an unchanged config keeps its hash, so old sweep folders resume.
CI_CONFIG_HASH = {"cpu": "b7e502c31d521c1b62f26988742b2ff672d098f622d002423fd2d38311d57c81",
                  "cuda": "25910cc554970c80159e269ae0b760e9b2a4b9014afbec971518477d7374fd35"}


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_the_config_hash_is_pinned(device_type):
    from attrbound_lite.sweep import config_hash, config_identity

    cfg = load_config(ROOT / "configs" / "sweep-ci.yaml")
    assert config_hash(config_identity(cfg, device_type)) == CI_CONFIG_HASH[device_type]
    assert load_config(cfg) == cfg  # a filled-in config is its own validated form


def test_attack_defaults_are_resolved_once(config, trained_toy):
    """The sweep spells out AttackSpec.resolved's defaults, and build uses the same ones."""
    from attrbound_lite.experiments import AttackSpec

    raw = [{"type": "pgd"}, {"type": "pgd", "objective": "cosine", "restarts": 1}, {"type": "ifia"},
           {"type": "ifia", "name": "ifia-k", "k": 5, "relative_alpha": 0.5}]
    cfg = load_config({**config, "attacks": raw})
    assert cfg["attacks"] == [AttackSpec(**a).resolved(pixels=784, restarts=config["restarts"]).to_dict() for a in raw]
    assert [(a["relative_alpha"], a["k"], a["restarts"]) for a in cfg["attacks"]] == [
        (0.25, None, 2), (0.25, None, 1), (0.125, 78, 2), (0.5, 5, 2)]
    model, x, _ = trained_toy
    for given, filled in zip(raw, cfg["attacks"], strict=True):
        built = [AttackSpec(**spec).build(model, "saliency", eps=0.2, norm="l2", restarts=1, surrogate_beta=None,
                                          seed=0, pixels=784) for spec in (given, filled)]
        assert type(built[0]) is type(built[1]) and built[0].alpha == built[1].alpha == 0.2 * filled["relative_alpha"]
        assert getattr(built[0], "k", None) == getattr(built[1], "k", None) == filled["k"]


def test_relative_paths_are_taken_from_the_config_folder(config, tmp_path):
    from attrbound_lite.checkpoints import save_checkpoint
    from attrbound_lite.models import model_for_dataset

    save_checkpoint(model_for_dataset("mnist", width=0.125), tmp_path / "ck" / "model.safetensors", {})
    folder = tmp_path / "configs"
    folder.mkdir()
    file = folder / "sweep.yaml"
    moved = _set(_set(config, "data.root", "../cache"), "data.mirror", "~/mirror")
    file.write_text(yaml.safe_dump({**moved, "models": [{"name": "ck", "checkpoint": "../ck/model.safetensors"}]}))
    cfg = load_config(file)
    assert cfg["data"]["root"] == str(tmp_path / "cache")
    assert cfg["data"]["mirror"] == str(Path("~/mirror").expanduser())
    assert cfg["models"] == [{"name": "ck", "checkpoint": str(tmp_path / "ck" / "model.safetensors")}]


def test_recipe_training_keeps_its_given_values(config):
    """A recipe's train section: the sweep's seed and data set fill in, alpha stays as given (null: derived at
    training time), and YAML's 1e-3 strings are numbers."""
    entry = {"name": "r", "train": {"method": "pgd_at", "eps": "1e-1", "steps": 4, "lr": "2e-3", "lam": 1}}
    cfg = load_config({**config, "models": [entry]})
    train = cfg["models"][0]["train"]
    assert (train["seed"], train["dataset"], train["alpha"], train["eps"], train["lr"], train["lam"]) == (
        7, "mnist", None, 0.1, 0.002, 1.0)
    assert cfg["models"][0]["model"] == {"width": 1.0, "activation": "softplus", "beta": 10.0, "pool": "avg"}
    from attrbound_lite.sweep import recipe_of
    assert recipe_of(cfg["models"][0]).train_config().alpha == pytest.approx(2.5 * 0.1 / 4)
