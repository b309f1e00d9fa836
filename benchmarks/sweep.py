#!/usr/bin/env python
"""Throughput of bound-validation sweeps: attacks per second for PGD and IFIA, on the CPU at CI size and on a GPU.

CPU section. The CI sweep (configs/sweep-ci.yaml: 64 MNIST test images, a width-0.25 smooth CNN, 6 (norm, eps), 2
restarts, 20 steps) is run once per attack type and process layout, as real sweeps (`python -m
attrbound_lite.sweep`, `torchrun --standalone --nproc_per_node=2 -m attrbound_lite.sweep`) into fresh
folders; the rate is the sweep's own compute time (recorded in its manifest: from the moment every rank
starts its shards to the final barrier, bounds included), the projection is 10 million attacks at that
rate. The 1-process x 2-threads layout is run again with `compile: true`, twice with one fresh
TORCHINDUCTOR_CACHE_DIR (cold, then warm cache). In-process, the cost of one attack step is compared with one
forward + double backward of the same batch (shard_size x restarts images); target: at most 1.5x.

GPU section (when CUDA is available, or --gpu-section alone; --tiny at toy size, e.g. on a CPU): 100-step attribution
PGD and IFIA top-k on the full-width smooth MNIST and CIFAR CNNs (random weights), saliency and Integrated Gradients
(16 points), one batch of every (sample, radius, restart) instance with a radius per row, eager and compiled: attacks
per second, achieved TFLOP/s against the device's FP32 peak, memory, hours for 10 million attacks; written to
benchmarks/results/sweep_gpu-<device>.json. See README.md.

    .venv/bin/python benchmarks/sweep.py [--quick] [--out PATH] [--no-compile]     # CPU section (+ GPU if CUDA)
    .venv/bin/python benchmarks/sweep.py --gpu-section [--device cuda] [--gpu-budget S] [--gpu-out PATH]
    .venv/bin/python benchmarks/sweep.py --gpu-section --device cpu --tiny --gpu-out /tmp/sweep_gpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bounds import cpu_model, cpu_seconds, git_commit, write_json  # noqa: E402  (shared helpers)

import attrbound_lite  # noqa: E402
from attrbound_lite._checks import full_precision  # noqa: E402
from attrbound_lite.attacks import IFIA, AttributionPGD  # noqa: E402
from attrbound_lite.attributions import get_explainer  # noqa: E402
from attrbound_lite.checkpoints import load_checkpoint  # noqa: E402
from attrbound_lite.data import load_dataset  # noqa: E402
from attrbound_lite.experiments import TIMING_COLUMNS  # noqa: E402
from attrbound_lite.models import CifarCNN, MnistCNN  # noqa: E402
from attrbound_lite.runtime import run_in_chunks  # noqa: E402
from attrbound_lite.sweep import load_config, recipe_of  # noqa: E402
from attrbound_lite.zoo import train_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "sweep-ci.yaml"
PAPER_ATTACKS = 10_000_000
STEP_TARGET = 1.5
CPU_TARGET = 1.3  # issue 14: the CI sweep's attacks/s at least 1.3 x the per-radius layout's
ISSUE_BASELINE = {"pgd": 101.45}  # the per-radius layout's 1 process x 2 threads rate of 2026-11-23 (issue 14)
PER_RADIUS = "1 process x 2 threads, per-radius batches"
BUSY_CORES = 0.25
START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - START:7.1f}s] {message}", flush=True)


def mirror() -> str | None:
    """The offline data mirror: $ATTRBOUND_DATA_MIRROR, else ../shared/data beside the repository if present."""
    env = os.environ.get("ATTRBOUND_DATA_MIRROR")
    if env:
        return env
    shared = ROOT.parent / "shared" / "data"
    return str(shared) if shared.is_dir() else None


def train_model(cfg: dict, work: Path) -> Path:
    """The CI config's recipe model, trained once (as the sweep would, with its defaults filled in, on the CPU),
    saved as a checkpoint; its initial weights are drawn after ``torch.manual_seed(0)``."""
    entry = load_config(cfg)["models"][0]
    train_recipe(recipe_of(entry), work / "model", init_seed=0, device="cpu", progress=False,
                 data_root=cfg["data"].get("root"), mirror=cfg["data"].get("mirror"), metadata={"recipe": entry})
    return work / "model" / "model.safetensors"


def run_sweep_process(cfg: dict, work: Path, name: str, processes: int, threads: int, env: dict | None = None) -> dict:
    """One sweep in a fresh folder, as a subprocess (torchrun for 2 processes); its manifest's timing. ``env``: extra
    environment variables."""
    config_file, out = work / f"{name}.yaml", work / name
    config_file.write_text(yaml.safe_dump(cfg))
    sweep = ["-m", "attrbound_lite.sweep", str(config_file), "--out", str(out), "--no-progress"]
    if processes == 1:
        command = [sys.executable, *sweep]
    else:
        command = [str(Path(sys.executable).parent / "torchrun"), "--standalone", f"--nproc_per_node={processes}",
                   *sweep]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
    children0, cpu0, t0 = os.times(), cpu_seconds(), time.perf_counter()
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    wall, children1, cpu1 = time.perf_counter() - t0, os.times(), cpu_seconds()
    if run.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{run.stderr[-3000:]}")
    ours = (children1.children_user + children1.children_system) - (children0.children_user + children0.children_system)
    other = None if cpu0 is None or cpu1 is None else max(0.0, (cpu1[0] - cpu0[0]) - ours) / wall
    manifest = json.loads((out / "manifest.json").read_text())
    last = manifest["runs"][-1]
    table = pd.read_parquet(out / "results.parquet")
    bound_s = table.drop_duplicates(["model", "sample", "attribution"])["bound_seconds"].sum()
    attack_s = table["attack_seconds"].sum()
    return dict(processes=processes, threads=threads, attacks=last["attacks_run"],
                compute_seconds=last["compute_seconds"], attacks_per_second=last["attacks_per_second"],
                wall_seconds=round(wall, 2), bound_share=round(bound_s / (bound_s + attack_s), 3),
                other_cpu=None if other is None else round(other, 2))


def compile_rows(cfg: dict, work: Path) -> list[dict]:
    """The CI sweep of ``cfg``'s (single) attack in the 1 process x 2 threads layout with ``compile: true``: twice, with
    one fresh TORCHINDUCTOR_CACHE_DIR (and TRITON_CACHE_DIR inside it), first cold then warm. A failing sweep is a row
    with ``error`` (the benchmark is a report)."""
    kind = cfg["attacks"][0]["type"]
    cfg = {**copy.deepcopy(cfg), "compile": True}
    cache = work / f"inductor-cache-{kind}"
    shutil.rmtree(cache, ignore_errors=True)
    env = {"TORCHINDUCTOR_CACHE_DIR": str(cache), "TRITON_CACHE_DIR": str(cache / "triton")}
    rows = []
    for state in ("cold", "warm"):
        label = f"1 process x 2 threads, compiled ({state} cache)"
        try:
            row = run_sweep_process(cfg, work, f"{kind}-1p2t-compile-{state}", 1, 2, env=env)
            row["error"] = None
        except RuntimeError as err:
            row = dict(processes=1, threads=2, attacks=None, compute_seconds=None, attacks_per_second=None,
                       wall_seconds=None, bound_share=None, other_cpu=None,
                       error=str(err).strip().splitlines()[-1][:300])
        rows.append(dict(attack=kind, layout=label, device="cpu", compile="default", cache=state, **row))
        if row["error"]:
            log(f"{kind:4s} {label:45s} ERROR {row['error']}")
        else:
            log(f"{kind:4s} {label:45s} {row['attacks']} attacks in {row['compute_seconds']:.1f} s: "
                f"{row['attacks_per_second']:.1f} attacks/s (wall {row['wall_seconds']:.1f} s; other processes "
                f"{row['other_cpu']} cores)")
    return rows


def fwd_double_bwd(model, x, y) -> None:
    """One forward, the input gradient of the target logits with a graph, and its gradient (double backward)."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x, create_graph=True)
    torch.autograd.grad((grad ** 2).sum(), x)


def step_ratios(cfg: dict, checkpoint: Path, threads: int, repeats: int, compiled: bool = True) -> list[dict]:
    """Per attack type: (attack time / steps) / (forward + double backward of the shard_size x restarts batch),
    fastest of ``repeats`` interleaved measurements each; with 2 threads (and ``compiled``) also the compiled step in
    steady state (``compiled_step_ms``, ``compiled_over_eager``; its first call, the compilation, is
    ``compile_seconds``)."""
    torch.set_num_threads(threads)
    model, _ = load_checkpoint(checkpoint)
    data = load_dataset(cfg["data"]["name"], cfg["data"].get("split", "test"), root=cfg["data"].get("root"),
                        mirror=cfg["data"].get("mirror"))
    batch, reps = cfg["shard_size"], cfg.get("restarts", 1)
    x = data.images[:batch]
    with torch.no_grad():
        y = model(x).argmax(1)
    rows = []
    for spec in cfg["attacks"]:
        steps, eps = spec["steps"], cfg["eps"]["linf"][0]
        if spec["type"] == "pgd":
            attack = AttributionPGD(model, "saliency", eps=eps, alpha=eps / 4, steps=steps, restarts=reps,
                                    per_restart=True)
        else:
            attack = IFIA(model, "saliency", eps=eps, alpha=eps / 8, steps=steps, k=spec["k"], restarts=reps,
                          per_restart=True)
        xr, yr = x.repeat(reps, 1, 1, 1), y.repeat(reps)
        attack(x[:2], y[:2])
        fwd_double_bwd(model, xr, yr)
        attack_t, ref_t = [], []
        for _ in range(repeats):
            for _ in range(3):
                t0 = time.perf_counter()
                fwd_double_bwd(model, xr, yr)
                ref_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            attack(x, y)
            attack_t.append(time.perf_counter() - t0)
        step, ref = min(attack_t) / steps, min(ref_t)
        row = dict(attack=spec["type"], threads=threads, batch=batch * reps, steps=steps,
                   step_ms=round(step * 1e3, 3), fwd_double_bwd_ms=round(ref * 1e3, 3),
                   ratio=round(step / ref, 3), passed=bool(step / ref <= STEP_TARGET))
        if compiled and threads == 2:  # the same attack with compile=True, after its compilation (steady state)
            fast = type(attack)(model, "saliency", eps=attack.eps, alpha=attack.alpha, steps=steps, restarts=reps,
                                per_restart=True, compile=True, **({"k": spec["k"]} if spec["type"] == "ifia" else {}))
            t0 = time.perf_counter()
            fast(x, y)
            row["compile_seconds"] = round(time.perf_counter() - t0, 1)
            fast_t = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fast(x, y)
                fast_t.append(time.perf_counter() - t0)
            row["compiled_step_ms"] = round(min(fast_t) / steps * 1e3, 3)
            row["compiled_over_eager"] = round(min(fast_t) / min(attack_t), 3)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ GPU section
# Dense FP32 peak (TFLOP/s, no tensor cores, boost clock, NVIDIA's data sheets), by a substring of the device name;
# the first match wins (GH200 before H200, the PCIe and NVL H100s before the SXM one).
FP32_PEAK_TFLOPS = (("GH200", 67.0), ("H200", 67.0), ("H100 PCIe", 51.0), ("H100 NVL", 60.0), ("H100", 67.0),
                    ("A100", 19.5))
GPU_TARGETS = {"mnist_saliency_pgd": 1400.0, "mnist_saliency_pgd_aim": 2800.0, "ig_over_saliency": 0.1}
GPU_MODELS = {  # name: (constructor, l-infinity radii of the batch)
    "mnist_cnn": (lambda: MnistCNN(activation="softplus", beta=10.0, pool="avg"), (0.01, 0.03, 0.1, 0.3)),
    "cifar_cnn": (lambda: CifarCNN(activation="softplus", beta=10.0, pool="avg"), (1 / 255, 2 / 255, 4 / 255, 8 / 255)),
}
GPU_ATTRIBUTIONS = {"saliency": {}, "integrated_gradients(m=16)": {"n_steps": 16}}
GPU_ATTACKS = ("pgd", "ifia")
COMPILE_MODES = ("off", "default", "reduce-overhead")
# Sizes of the GPU section: samples per batch (saliency; IG rows hold n_steps path points each, so IG batches take
# ig_divisor times fewer samples), radii, restarts, attack steps and the batches of the fill curve (in instances).
GPU_SIZES = {
    "full": dict(steps=100, restarts=3, ig_divisor=8, fill=(768, 1536, 3072, 6144, 12288, 24576), fill_steps=10),
    "tiny": dict(steps=3, restarts=1, ig_divisor=2, fill=(4, 8), fill_steps=2),
}


def device_slug(device: torch.device) -> str:
    """``"nvidia-h200"`` for an NVIDIA H200, ``"cpu"`` on a CPU: the file name's device part."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def fp32_peak(name: str) -> float | None:
    """The device's dense FP32 peak in TFLOP/s (``FP32_PEAK_TFLOPS``), None for an unknown device or a CPU."""
    return next((peak for key, peak in FP32_PEAK_TFLOPS if key.lower() in name.lower()), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _short(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


class GpuBatch:
    """One batch of attack instances: every (radius, restart, sample) of ``samples`` random images as a row,
    radius-major, each with its own radius (a (N,) eps tensor), as a sweep's attack batch holds them."""

    def __init__(self, model, model_name: str, radii, samples: int, restarts: int, device: torch.device, seed: int = 0):
        shape = (1, 28, 28) if model_name == "mnist_cnn" else (3, 32, 32)
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(samples, *shape, generator=gen).to(device)
        with torch.no_grad():
            y = model(x).argmax(1)
        copies = len(radii) * restarts
        self.x, self.y = x.repeat(copies, 1, 1, 1), y.repeat(copies)
        self.eps = torch.tensor(radii, dtype=x.dtype, device=device).repeat_interleave(restarts * samples)
        self.n, self.pixels = self.x.shape[0], shape[1] * shape[2]


def _attack(model, attribution: str, kind: str, eps, steps: int, pixels: int, compile_mode: str):
    explainer = get_explainer(attribution.split("(")[0], model, **GPU_ATTRIBUTIONS[attribution])
    compile_arg = False if compile_mode == "off" else (True if compile_mode == "default" else compile_mode)
    if kind == "pgd":  # the sweep's step sizes (AttackSpec.RELATIVE_ALPHA) and IFIA's k (10 % of the pixels)
        return AttributionPGD(model, explainer, eps=eps, alpha=0.25 * eps, steps=steps, norm="linf",
                              per_restart=True, compile=compile_arg)
    return IFIA(model, explainer, eps=eps, alpha=0.125 * eps, steps=steps, k=max(1, round(0.1 * pixels)),
                norm="linf", per_restart=True, compile=compile_arg)


def run_batch(model, batch: GpuBatch, attribution: str, kind: str, steps: int, compile_mode: str,
              device: torch.device, key) -> dict:
    """Attack every instance of ``batch`` in chunks of ``runtime.run_in_chunks`` (on CUDA: the whole batch, halved on
    out-of-memory errors; the size that fits is remembered under ``key``); timed."""
    n = batch.n
    chunks = []

    def chunk(start: int, stop: int):
        atk = _attack(model, attribution, kind, batch.eps[start:stop], steps, batch.pixels, compile_mode)
        result = atk(batch.x[start:stop], batch.y[start:stop])
        chunks.append(stop - start)
        return result.label_kept

    _sync(device)
    t0 = time.perf_counter()
    kept = run_in_chunks(chunk, n, device, key=key)
    _sync(device)
    seconds = time.perf_counter() - t0
    return dict(seconds=seconds, chunk=max(chunks), chunks=len(chunks),
                label_kept=float(torch.cat(kept).float().mean()))


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s module tracker: its per-module backward hooks break ``autograd.grad`` inside
    a backward pass (the attacks' double backward: "A leaf node was passed to _will_engine_execute_node"); the
    total is all this benchmark reads."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def attack_flops(model, batch: GpuBatch, attribution: str, kind: str, steps: int) -> float:
    """FLOPs of one attack of ``steps`` steps, from ``FlopCounterMode`` (matrix products and convolutions, forward and
    every backward) on two instances at 1 and 2 steps (eager): the set-up plus ``steps`` times one step."""
    from torch.utils.flop_counter import FlopCounterMode

    totals = []
    for k in (1, 2):
        atk = _attack(model, attribution, kind, batch.eps[:2], k, batch.pixels, "off")
        counter = FlopCounterMode(display=False)
        counter.mod_tracker = _GlobalOnly()
        with counter:
            atk(batch.x[:2], batch.y[:2])
        totals.append(counter.get_total_flops() / 2)
    per_step = totals[1] - totals[0]
    return float(totals[0] - per_step + steps * per_step)


def fill_curve(model, model_name: str, radii, sizes: dict, device: torch.device) -> list[dict]:
    """Saliency PGD on the MNIST CNN at growing batches (``sizes["fill"]`` instances, ``fill_steps`` steps each):
    instance-steps per second, to see where the device is full."""
    restarts, steps = sizes["restarts"], sizes["fill_steps"]
    out = []
    for n in sizes["fill"]:
        samples = max(1, n // (len(radii) * restarts))
        try:
            batch = GpuBatch(model, model_name, radii, samples, restarts, device)
            run_batch(model, batch, "saliency", "pgd", 1, "off", device, key=None)  # allocator pools, cuDNN plans
            r = run_batch(model, batch, "saliency", "pgd", steps, "off", device, key=None)
            out.append(dict(instances=batch.n, steps=steps, seconds=round(r["seconds"], 4), chunk=r["chunk"],
                            instance_steps_per_second=round(batch.n * steps / r["seconds"], 1),
                            attacks_per_second_100=round(batch.n * steps / r["seconds"] / 100, 1), error=None))
        except torch.cuda.OutOfMemoryError as err:
            torch.cuda.empty_cache()
            out.append(dict(instances=n, steps=steps, error=_short(err)))
            break
        log(f"fill: {out[-1]['instances']:6d} instances, {out[-1]['instance_steps_per_second']:,.0f} instance-steps/s "
            f"(= {out[-1]['attacks_per_second_100']:,.0f} attacks/s at 100 steps; largest chunk {r['chunk']})")
    return out


def _fill_choice(curve: list[dict], radii, restarts: int) -> int:
    """Samples per saliency batch: the smallest batch of the fill curve within 5 % of its best rate."""
    ok = [c for c in curve if c.get("error") is None]
    if not ok:  # not even the smallest batch ran: take it anyway (run_in_chunks splits it), the rows say more
        return max(1, curve[0]["instances"] // (len(radii) * restarts))
    best = max(c["instance_steps_per_second"] for c in ok)
    n = next(c["instances"] for c in ok if c["instance_steps_per_second"] >= 0.95 * best)
    return max(1, n // (len(radii) * restarts))


def gpu_rows(device: torch.device, mode: str, budget: float, peak: float | None, on_row=None
             ) -> tuple[list[dict], list[dict]]:
    """Every (model, attribution, attack, compile mode) row of the GPU section: the eager rows first, then the compiled
    ones with both modes of a (model, attribution, attack) together, MNIST saliency PGD first. Rows that the time
    budget leaves no room for are recorded with ``skipped``, failures with ``error``. ``on_row(rows, curve)`` is
    called after every row (the caller saves what it has, in case the run is killed)."""
    sizes = GPU_SIZES[mode]
    steps, restarts = sizes["steps"], sizes["restarts"]
    started = time.perf_counter()
    models = {}
    for name, (make, radii) in GPU_MODELS.items():
        torch.manual_seed(0)
        models[name] = (make().to(device).eval(), radii)
    mnist, mnist_radii = models["mnist_cnn"]
    curve = fill_curve(mnist, "mnist_cnn", mnist_radii, sizes, device)
    samples = _fill_choice(curve, mnist_radii, restarts)
    log(f"GPU section: {samples} samples x {len(models['mnist_cnn'][1])} radii x {restarts} restarts per saliency "
        f"batch (IG: {max(1, samples // sizes['ig_divisor'])} samples), {steps} steps, budget {budget:.0f} s")
    cases = [(m, a, k) for m in GPU_MODELS for a in GPU_ATTRIBUTIONS for k in GPU_ATTACKS]
    plan = [(*case, "off") for case in cases] + [(*case, c) for case in cases for c in COMPILE_MODES[1:]]
    batches, flops, rows = {}, {}, []
    for model_name, attribution, kind, compile_mode in plan:
        model, radii = models[model_name]
        ig = attribution != "saliency"
        n_samples = max(1, samples // sizes["ig_divisor"]) if ig else samples
        row = dict(model=model_name, n=784 if model_name == "mnist_cnn" else 3072, attribution=attribution,
                   attack=kind, compile=compile_mode, steps=steps, samples=n_samples, radii=len(radii),
                   restarts=restarts, instances=n_samples * len(radii) * restarts, error=None, skipped=None)
        elapsed = time.perf_counter() - started
        if compile_mode != "off" and device.type != "cuda":
            row["skipped"] = "compile rows run on CUDA only"
        elif elapsed > budget:
            row["skipped"] = f"time budget ({budget:.0f} s) spent"
        if row["skipped"]:
            rows.append(row)
            if on_row is not None:
                on_row(rows, curve)
            continue
        try:
            if (model_name, ig) not in batches:
                batches[(model_name, ig)] = GpuBatch(model, model_name, radii, n_samples, restarts, device)
            batch = batches[(model_name, ig)]
            if (model_name, attribution, kind) not in flops:
                flops[(model_name, attribution, kind)] = attack_flops(model, batch, attribution, kind, steps)
            key = ("bench", model_name, attribution, kind, compile_mode)
            # first call: 2 steps on the whole batch (finds the chunk that fits, fills the allocator's pools; compiles)
            warm = run_batch(model, batch, attribution, kind, 2, compile_mode, device, key)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            timed = run_batch(model, batch, attribution, kind, steps, compile_mode, device, key)
            rate = batch.n / timed["seconds"]
            per_attack = flops[(model_name, attribution, kind)]
            tflops = rate * per_attack / 1e12
            row.update(seconds=round(timed["seconds"], 3), attacks_per_second=round(rate, 1),
                       first_call_seconds=round(warm["seconds"], 2), chunk=timed["chunk"], chunks=timed["chunks"],
                       label_kept=round(timed["label_kept"], 3), gflop_per_attack=round(per_attack / 1e9, 3),
                       tflops=round(tflops, 3), peak_fraction=None if peak is None else round(tflops / peak, 4),
                       max_memory_gb=round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                       if device.type == "cuda" else None,
                       hours_for_10M=round(PAPER_ATTACKS / rate / 3600, 2))
            log(f"{model_name:9s} {attribution:26s} {kind:4s} compile={compile_mode:15s} {rate:9.1f} attacks/s "
                f"({batch.n} instances, chunk {timed['chunk']}, {tflops:.2f} TFLOP/s"
                + (f" = {tflops / peak:.1%} of FP32 peak" if peak else "")
                + (f", {row['max_memory_gb']} GiB" if row["max_memory_gb"] is not None else "")
                + f"; first call {warm['seconds']:.1f} s)")
        except Exception as err:  # noqa: BLE001  (a report: a failing row, e.g. a compile mode, is recorded)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            row["error"] = _short(err)
            log(f"{model_name:9s} {attribution:26s} {kind:4s} compile={compile_mode:15s} ERROR {row['error']}")
        rows.append(row)
        if on_row is not None:
            on_row(rows, curve)
    return rows, curve


def gpu_checks(rows: list[dict]) -> dict:
    """The issue's targets: saliency PGD on the MNIST CNN at >= 1,400 attacks/s (aim 2,800), and IG (16 steps) at
    >= 1/10 of the saliency rate per model and attack; the best compile mode of each counts."""
    frame = pd.DataFrame([r for r in rows if r.get("attacks_per_second") is not None])
    if frame.empty:
        return {}
    best = frame.groupby(["model", "attribution", "attack"])["attacks_per_second"].max()
    checks = {}
    if ("mnist_cnn", "saliency", "pgd") in best.index:
        rate = float(best["mnist_cnn", "saliency", "pgd"])
        checks["mnist_saliency_pgd_ge_1400"] = dict(value=rate, target=GPU_TARGETS["mnist_saliency_pgd"],
                                                    passed=rate >= GPU_TARGETS["mnist_saliency_pgd"])
        checks["mnist_saliency_pgd_ge_2800"] = dict(value=rate, target=GPU_TARGETS["mnist_saliency_pgd_aim"],
                                                    passed=rate >= GPU_TARGETS["mnist_saliency_pgd_aim"])
    for (model, attribution, kind), rate in best.items():
        if attribution != "saliency" and (model, "saliency", kind) in best.index:
            ratio = float(rate / best[model, "saliency", kind])
            checks[f"{model}_{kind}_ig_over_saliency_ge_0.1"] = dict(value=round(ratio, 4),
                                                                     target=GPU_TARGETS["ig_over_saliency"],
                                                                     passed=ratio >= GPU_TARGETS["ig_over_saliency"])
    return checks


def gpu_section(args, device: torch.device, commit: str | None) -> Path:
    """Run the GPU section and write its JSON (after every row: ``complete`` false until the end, so that a run
    stopped by a time limit leaves what it measured); returns the file written."""
    mode = "tiny" if args.tiny else "full"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model() or "cpu"
    slug = device_slug(device)
    peak = fp32_peak(name) if device.type == "cuda" else None
    out = args.gpu_out or (Path(tempfile.gettempdir()) / f"sweep_gpu-{slug}-tiny.json" if args.tiny else
                           ROOT / "benchmarks" / "results" / f"sweep_gpu-{slug}.json")
    applies = device.type == "cuda" and mode == "full" and any(k in name for k in ("H100", "H200"))
    t0 = time.perf_counter()

    def save(rows: list[dict], curve: list[dict], complete: bool = False) -> dict:
        checks = gpu_checks(rows)
        ok = [r for r in rows if r.get("attacks_per_second")]
        eager = {(r["model"], r["attribution"], r["attack"]): r["attacks_per_second"] for r in ok
                 if r["compile"] == "off"}
        gain = {f"{r['model']} {r['attribution']} {r['attack']} {r['compile']}":
                round(r["attacks_per_second"] / eager[r["model"], r["attribution"], r["attack"]], 3)
                for r in ok if r["compile"] != "off" and (r["model"], r["attribution"], r["attack"]) in eager}
        payload = dict(
            rows=rows, fill_curve=curve, checks=checks, targets=GPU_TARGETS, targets_apply=applies, compile_gain=gain,
            complete=complete, device=str(device), device_name=name, device_slug=slug, fp32_peak_tflops=peak,
            tf32=False, mode=mode, sizes=GPU_SIZES[mode], budget_seconds=args.gpu_budget,
            models={k: "random weights after torch.manual_seed(0): MnistCNN / CifarCNN(activation='softplus', "
                       "beta=10, pool='avg'), full width" for k in GPU_MODELS},
            inputs="uniform random images in [0, 1] (seed 0), labels = the predicted classes",
            radii={k: list(v[1]) for k, v in GPU_MODELS.items()}, norm="linf",
            cuda_version=torch.version.cuda, package_version=attrbound_lite.__version__, package_commit=commit,
            torch_version=torch.__version__, cpu_count=os.cpu_count(), cpu_model=cpu_model(),
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            command=shlex.join([Path(sys.executable).name, *sys.argv]),
            total_seconds=round(time.perf_counter() - t0, 1),
            notes="attacks_per_second: instances / wall seconds of one call of the attack on the whole batch (chunks "
                  "of runtime.run_in_chunks), torch.cuda.synchronize around it, after a 2-step call on the same batch "
                  "(chunk search, allocator pools, compilation: first_call_seconds). gflop_per_attack: FlopCounterMode "
                  "(matrix products and convolutions only) of one attack; tflops = attacks_per_second x "
                  "gflop_per_attack; peak_fraction against fp32_peak_tflops (dense FP32, TF32 off). max_memory_gb: "
                  "torch.cuda.max_memory_allocated during the timed call. compile_gain: compiled rate / eager rate.")
        write_json(out, payload)
        return payload

    log(f"GPU section on {name} ({device}), mode {mode}, FP32 peak {peak} TFLOP/s, TF32 off; writing {out}")
    with full_precision():
        rows, curve = gpu_rows(device, mode, args.gpu_budget, peak, on_row=save)
    payload = save(rows, curve, complete=True)
    for key, check in payload["checks"].items():
        log(f"{'PASS' if check['passed'] else 'FAIL'} {key}: {check['value']:,.4g} (target {check['target']:g})"
            + ("" if applies else " [not an H100-class GPU at full size: the targets do not apply]"))
    for key, gain in payload["compile_gain"].items():
        log(f"compile: {key}: {gain:.2f} x the eager rate")
    log(f"wrote {out} (GPU section {payload['total_seconds']:.0f} s)")
    return out


def cpu_section(args, commit: str | None) -> None:
    """The CPU section (the CI sweep in three layouts, compiled rows, step ratios); writes ``args.out``."""
    base = yaml.safe_load(CONFIG.read_text())
    base["data"].update(mirror=mirror(), download=False)
    if args.quick:
        base["data"]["n_samples"] = 32
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    base["data"]["root"] = str(work / "data")
    log(f"torch {torch.__version__}, {os.cpu_count()} CPUs; config {CONFIG.relative_to(ROOT)}, "
        f"{base['data']['n_samples']} samples; work folder {work}")
    checkpoint = train_model(base, work)
    log(f"trained {checkpoint}")
    base["models"] = [{"name": base["models"][0]["name"], "checkpoint": str(checkpoint)}]

    layouts = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1)]
    gpu = torch.cuda.is_available()
    rows = []
    for spec in base["attacks"]:
        cfg = copy.deepcopy(base)
        cfg["attacks"] = [spec]
        for label, processes, threads in layouts:
            row = run_sweep_process(cfg, work, f"{spec['type']}-{processes}p{threads}t", processes, threads)
            rows.append(dict(attack=spec["type"], layout=label, device="cpu", compile="off", cache=None, **row))
            log(f"{spec['type']:4s} {label:24s} {row['attacks']} attacks in {row['compute_seconds']:.1f} s: "
                f"{row['attacks_per_second']:.1f} attacks/s (bounds {row['bound_share']:.0%} of the time; wall "
                f"{row['wall_seconds']:.1f} s with start-up; other processes {row['other_cpu']} cores)")
        # The layout before per-row radii: one attack batch per radius (restarts x samples rows), in the same run.
        per_radius = {**copy.deepcopy(cfg), "chunk_size": cfg["shard_size"] * cfg.get("restarts", 1)}
        row = run_sweep_process(per_radius, work, f"{spec['type']}-1p2t-per-radius", 1, 2)
        rows.append(dict(attack=spec["type"], layout=PER_RADIUS, device="cpu", compile="off", cache=None, **row))
        log(f"{spec['type']:4s} {PER_RADIUS:24s} {row['attacks']} attacks in {row['compute_seconds']:.1f} s: "
            f"{row['attacks_per_second']:.1f} attacks/s")
        if not args.no_compile:
            rows.extend(compile_rows(cfg, work))
        if gpu:
            cfg["device"] = "cuda"
            row = run_sweep_process(cfg, work, f"{spec['type']}-cuda", 1, 1)
            rows.append(dict(attack=spec["type"], layout="1 process, cuda", device="cuda", compile="off", cache=None,
                             **row))
    # the same shards on 1 or 2 processes give the same table (1 thread each)
    tables = {p: pd.read_parquet(work / f"pgd-{p}" / "results.parquet").drop(columns=list(TIMING_COLUMNS))
              for p in ("1p1t", "2p1t")}
    same_table = bool(tables["1p1t"].equals(tables["2p1t"]))
    # one attack batch per radius or every radius in one batch: the same table
    batched, per_radius = (pd.read_parquet(work / name / "results.parquet").drop(columns=list(TIMING_COLUMNS))
                           for name in ("pgd-1p2t", "pgd-1p2t-per-radius"))
    layouts_equal = bool(batched.equals(per_radius))

    repeats = 3 if args.quick else 5
    steps = [r for threads in (1, 2) for r in step_ratios(base, checkpoint, threads, repeats, not args.no_compile)]
    for r in steps:
        log(f"{'PASS' if r['passed'] else 'FAIL'} {r['attack']:4s} {r['threads']} thread(s): one attack step "
            f"{r['step_ms']:.1f} ms = {r['ratio']:.2f} x forward + double backward ({r['fwd_double_bwd_ms']:.1f} ms, "
            f"batch {r['batch']}) (target <= {STEP_TARGET})")

    frame = pd.DataFrame(rows)
    projection = {}
    for attack, group in frame[frame["device"] == "cpu"].groupby("attack"):
        best = group.loc[group["attacks_per_second"].idxmax()]
        projection[attack] = dict(layout=best["layout"], attacks_per_second=float(best["attacks_per_second"]),
                                  hours_for_10M=round(PAPER_ATTACKS / best["attacks_per_second"] / 3600, 1))
    mix = 2 / sum(1 / p["attacks_per_second"] for p in projection.values())
    projection["pgd+ifia, half each"] = dict(attacks_per_second=round(mix, 2),
                                             hours_for_10M=round(PAPER_ATTACKS / mix / 3600, 1))
    if gpu:  # the same projection at the rate of one GPU (CI-sized batches: a lower bound on its throughput)
        cuda = frame[frame["device"] == "cuda"].set_index("attack")["attacks_per_second"]
        for attack, rate in cuda.items():
            projection[f"{attack} on 1 GPU"] = dict(layout="1 process, cuda", attacks_per_second=float(rate),
                                                   hours_for_10M=round(PAPER_ATTACKS / rate / 3600, 1))
    for name, p in projection.items():
        log(f"10 million attacks ({name}) at {p['attacks_per_second']:.1f} attacks/s: "
            f"{p['hours_for_10M']:.0f} h ({p['hours_for_10M'] / 24:.1f} days)")
    busy = any((r.get("other_cpu") or 0) > BUSY_CORES for r in rows)
    if busy:
        print("WARNING: other processes used the CPU during some sweeps (other_cpu > 0.25 core): rates are "
              "unreliable; rerun on a quiet machine.")
    compiled = {}
    for attack, group in frame[frame["compile"] != "off"].groupby("attack"):
        plain = frame[(frame["attack"] == attack) & (frame["layout"] == "1 process x 2 threads")]["attacks_per_second"]
        for r in group.itertuples():
            compiled[f"{attack} {r.cache} cache"] = (None if pd.isna(r.attacks_per_second) or plain.empty else
                                                     round(float(r.attacks_per_second / plain.iloc[0]), 3))
    for name, gain in compiled.items():
        log(f"compile: {name}: {'failed' if gain is None else f'{gain:.2f} x the eager 1 process x 2 threads rate'}")
    cpu_target = {}
    for attack, group in frame[frame["device"] == "cpu"].groupby("attack"):
        rate = group.set_index("layout")["attacks_per_second"]
        eager = group[(group["layout"] == "1 process x 2 threads") & (group["compile"] == "off")]["attacks_per_second"]
        best = float(group["attacks_per_second"].max())
        cpu_target[attack] = dict(
            batched_over_per_radius=round(float(eager.iloc[0] / rate[PER_RADIUS]), 3),
            best_over_per_radius=round(best / float(rate[PER_RADIUS]), 3),
            over_issue_baseline=round(float(eager.iloc[0]) / ISSUE_BASELINE[attack], 3) if attack in ISSUE_BASELINE
            else None)
        log(f"CPU target ({attack}): batched layout {cpu_target[attack]['batched_over_per_radius']:.2f} x the "
            f"per-radius layout in this run (target {CPU_TARGET}); "
            + (f"{cpu_target[attack]['over_issue_baseline']:.2f} x the issue's stored {ISSUE_BASELINE[attack]} "
               "attacks/s (another day)" if attack in ISSUE_BASELINE else ""))
    checks = {"step_le_1.5x_fwd_double_bwd": all(r["passed"] for r in steps),
              "cpu_1.3x_per_radius_layout": all(t["batched_over_per_radius"] >= CPU_TARGET
                                                for t in cpu_target.values())}
    total = time.perf_counter() - START
    payload = dict(
        compile_speedup=compiled, cpu_target=cpu_target, same_table_batched_and_per_radius=layouts_equal,
        rows=rows, step_ratio=steps, projection_10M=projection, same_table_1_and_2_processes=same_table,
        checks=checks, target_step_ratio=STEP_TARGET, target_cpu_ratio=CPU_TARGET,
        machine_busy=busy, gpu="cuda" if gpu else None, config=str(CONFIG.relative_to(ROOT)),
        n_samples=base["data"]["n_samples"], mode="quick" if args.quick else "full",
        package_version=attrbound_lite.__version__, package_commit=commit, torch_version=torch.__version__,
        cpu_count=os.cpu_count(), cpu_model=cpu_model(), date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=shlex.join([Path(sys.executable).name, *sys.argv]), total_seconds=round(total, 1),
        notes="rates from the manifests' compute_seconds (all shards, bounds included; start-up, data loading and "
              "training excluded: see wall_seconds); step ratio: fastest of repeated interleaved calls, in process.")
    write_json(args.out, payload)
    log(f"wrote {args.out} (total {total:.0f} s); tables of 1 and 2 processes equal: {same_table}")



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU section: 32 samples instead of 64, fewer repetitions")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sweep.json",
                        help="the CPU section's JSON")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweep folders here (default: a temp dir)")
    parser.add_argument("--no-compile", action="store_true", help="CPU section: no compiled (cold / warm cache) rows")
    parser.add_argument("--gpu-section", action="store_true",
                        help="run the GPU section only (default: the CPU section, then the GPU section if CUDA "
                             "is there)")
    parser.add_argument("--device", default=None, help="the GPU section's device (default cuda if available, else cpu)")
    parser.add_argument("--tiny", action="store_true", help="GPU section at toy size (a few instances, 3 steps): a "
                        "smoke run, e.g. on a CPU; its JSON says mode: tiny and defaults to the temp folder")
    parser.add_argument("--gpu-budget", type=float, default=600.0,
                        help="seconds after which the GPU section starts no further row (skipped rows are recorded)")
    parser.add_argument("--gpu-out", type=Path, default=None,
                        help="the GPU section's JSON (default benchmarks/results/sweep_gpu-<device>.json)")
    args = parser.parse_args()
    commit = git_commit()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    if not args.gpu_section:
        cpu_section(args, commit)
    if args.gpu_section or device.type == "cuda":
        gpu_section(args, device, commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
