"""The GPU session's pieces without a GPU: the paper-scale sweep files, benchmarks/gpu.sh and the GPU section's
helpers in benchmarks/sweep.py (the device run itself is benchmarks/gpu.sh's; its --tiny mode runs on a CPU)."""

from __future__ import annotations

import ast
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

from attrbound_lite.book.profiles import chapter_settings
from attrbound_lite.book.runner import notebook_parameters
from attrbound_lite.sweep import load_config, plan_shards
from attrbound_lite.zoo import REFERENCE

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("mnist", "fashion-mnist")
METHODS = ("natural", "pgd_at", "ig_norm", "aat", "advaat")


def _full_chapter6() -> dict:
    """Chapter 6's settings in the full profile (its notebook defaults through profiles.CHAPTER_SIZES)."""
    values = {name: ast.literal_eval(p["default"])
              for name, p in notebook_parameters(ROOT / "notebooks" / "06_validation.ipynb").items()
              if name != "profile"}
    return dict(chapter_settings("full", "06_validation", **values).values)


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_paper_sweep_is_chapter6_full_profile_on_the_reference_zoo(dataset):
    cfg = load_config(ROOT / "configs" / f"sweep-paper-{dataset}.yaml")
    full = _full_chapter6()
    assert cfg["data"]["name"] == dataset and cfg["data"]["n_samples"] == full["n_samples"]
    assert cfg["restarts"] == full["restarts"]
    assert {a["type"]: a["steps"] for a in cfg["attacks"]} == {"pgd": full["steps"], "ifia": full["steps"]}
    assert cfg["eps"] == {"l2": full["eps_l2"], "linf": full["eps_linf"]}
    assert [a["name"] for a in cfg["attributions"]] == ["saliency", "integrated_gradients"]
    assert cfg["attributions"][1]["n_steps"] == full["ig_steps"]
    # the five reference models of the data set, by their recipe keys (the zoo's folders)
    keys = {m["name"]: Path(m["checkpoint"]).parent.name for m in cfg["models"]}
    assert keys == {m: REFERENCE[f"{dataset}-{m}"].key for m in METHODS}
    assert all(Path(m["checkpoint"]).is_file() for m in cfg["models"])
    assert cfg["compile"] is False and cfg["chunk_size"] is None


def test_the_paper_sweep_holds_at_least_a_million_attacks():
    counts = [sum(s.attacks for s in plan_shards(load_config(ROOT / "configs" / f"sweep-paper-{ds}.yaml")))
              for ds in DATASETS]
    assert counts == [960_000, 960_000] and sum(counts) >= 1_000_000


def test_gpu_sh_is_valid_bash_and_names_what_it_writes():
    script = ROOT / "benchmarks" / "gpu.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    for name in ("sweep_gpu-", "training_gpu-", "sweep_paper-", "--gpu-section", "benchmarks/training.py",
                 "configs/sweep-paper-$ds.yaml", "timeout"):
        assert name in text, name
    usage = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr


@pytest.fixture(scope="module")
def bench():
    """benchmarks/sweep.py as a module (it imports its neighbour bounds.py)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("bench_sweep", ROOT / "benchmarks" / "sweep.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_the_fp32_peak_table_knows_hopper_and_refuses_to_guess(bench):
    assert bench.fp32_peak("NVIDIA H200") == 67.0
    assert bench.fp32_peak("NVIDIA H100 80GB HBM3") == 67.0
    assert bench.fp32_peak("NVIDIA H100 PCIe") == 51.0
    assert bench.fp32_peak("NVIDIA GH200 480GB") == 67.0
    assert bench.fp32_peak("Tesla T4") is None


def test_the_gpu_checks_take_the_best_compile_mode(bench):
    def row(model, attribution, attack, compile_mode, rate):
        return dict(model=model, attribution=attribution, attack=attack, compile=compile_mode,
                    attacks_per_second=rate)

    ig = "integrated_gradients(m=16)"
    checks = bench.gpu_checks([row("mnist_cnn", "saliency", "pgd", "off", 1000.0),
                               row("mnist_cnn", "saliency", "pgd", "default", 1500.0),
                               row("mnist_cnn", ig, "pgd", "off", 160.0),
                               row("mnist_cnn", ig, "pgd", "default", None)])
    assert checks["mnist_saliency_pgd_ge_1400"] == {"value": 1500.0, "target": 1400.0, "passed": True}
    assert not checks["mnist_saliency_pgd_ge_2800"]["passed"]
    assert checks["mnist_cnn_pgd_ig_over_saliency_ge_0.1"]["passed"]
    assert math.isclose(checks["mnist_cnn_pgd_ig_over_saliency_ge_0.1"]["value"], 160 / 1500, rel_tol=1e-3)


def test_a_gpu_batch_holds_every_radius_restart_and_sample(bench):
    import torch

    model = bench.GPU_MODELS["mnist_cnn"][0]()
    batch = bench.GpuBatch(model, "mnist_cnn", (0.1, 0.3), samples=3, restarts=2, device=torch.device("cpu"))
    assert batch.n == 12 and batch.pixels == 784
    assert batch.eps.tolist() == pytest.approx([0.1] * 6 + [0.3] * 6)  # radius-major, then restart, then sample
    assert torch.equal(batch.x[:3], batch.x[3:6]) and torch.equal(batch.x[:3], batch.x[6:9])
