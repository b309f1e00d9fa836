#!/usr/bin/env python
"""Throughput of bound-validation sweeps: attacks per second for PGD and IFIA at CI size, 1 and 2 processes.

The CI sweep (configs/sweep-ci.yaml: 64 MNIST test images, a width-0.25 smooth CNN, 6 (norm, eps), 2
restarts, 20 steps) is run once per attack type and process layout, as real sweeps (`python -m
attrbound_lite.sweep`, `torchrun --standalone --nproc_per_node=2 -m attrbound_lite.sweep`) into fresh
folders; the rate is the sweep's own compute time (recorded in its manifest: from the moment every rank
starts its shards to the final barrier, bounds included), the projection is 10 million attacks at that
rate. In-process, the cost of one attack step is compared with one forward + double backward of the same
batch (shard_size x restarts images); target: at most 1.5x. See README.md.

    .venv/bin/python benchmarks/sweep.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
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
from attrbound_lite.attacks import IFIA, AttributionPGD  # noqa: E402
from attrbound_lite.checkpoints import load_checkpoint  # noqa: E402
from attrbound_lite.data import load_dataset  # noqa: E402
from attrbound_lite.experiments import TIMING_COLUMNS  # noqa: E402
from attrbound_lite.sweep import load_config, recipe_of  # noqa: E402
from attrbound_lite.zoo import train_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "sweep-ci.yaml"
PAPER_ATTACKS = 10_000_000
STEP_TARGET = 1.5
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


def run_sweep_process(cfg: dict, work: Path, name: str, processes: int, threads: int) -> dict:
    """One sweep in a fresh folder, as a subprocess (torchrun for 2 processes); its manifest's timing."""
    config_file, out = work / f"{name}.yaml", work / name
    config_file.write_text(yaml.safe_dump(cfg))
    sweep = ["-m", "attrbound_lite.sweep", str(config_file), "--out", str(out), "--no-progress"]
    if processes == 1:
        command = [sys.executable, *sweep]
    else:
        command = [str(Path(sys.executable).parent / "torchrun"), "--standalone", f"--nproc_per_node={processes}",
                   *sweep]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
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


def fwd_double_bwd(model, x, y) -> None:
    """One forward, the input gradient of the target logits with a graph, and its gradient (double backward)."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, y[:, None]).sum(), x, create_graph=True)
    torch.autograd.grad((grad ** 2).sum(), x)


def step_ratios(cfg: dict, checkpoint: Path, threads: int, repeats: int) -> list[dict]:
    """Per attack type: (attack time / steps) / (forward + double backward of the shard_size x restarts batch),
    fastest of ``repeats`` interleaved measurements each."""
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
        rows.append(dict(attack=spec["type"], threads=threads, batch=batch * reps, steps=steps,
                         step_ms=round(step * 1e3, 3), fwd_double_bwd_ms=round(ref * 1e3, 3),
                         ratio=round(step / ref, 3), passed=bool(step / ref <= STEP_TARGET)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="32 samples instead of 64, fewer repetitions")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sweep.json")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweep folders here (default: a temp dir)")
    args = parser.parse_args()
    commit = git_commit()
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
            rows.append(dict(attack=spec["type"], layout=label, device="cpu", **row))
            log(f"{spec['type']:4s} {label:24s} {row['attacks']} attacks in {row['compute_seconds']:.1f} s: "
                f"{row['attacks_per_second']:.1f} attacks/s (bounds {row['bound_share']:.0%} of the time; wall "
                f"{row['wall_seconds']:.1f} s with start-up; other processes {row['other_cpu']} cores)")
        if gpu:
            cfg["device"] = "cuda"
            row = run_sweep_process(cfg, work, f"{spec['type']}-cuda", 1, 1)
            rows.append(dict(attack=spec["type"], layout="1 process, cuda", device="cuda", **row))
    # the same shards on 1 or 2 processes give the same table (1 thread each)
    tables = {p: pd.read_parquet(work / f"pgd-{p}" / "results.parquet").drop(columns=list(TIMING_COLUMNS))
              for p in ("1p1t", "2p1t")}
    same_table = bool(tables["1p1t"].equals(tables["2p1t"]))

    repeats = 3 if args.quick else 5
    steps = [r for threads in (1, 2) for r in step_ratios(base, checkpoint, threads, repeats)]
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
    busy = any((r["other_cpu"] or 0) > BUSY_CORES for r in rows)
    if busy:
        print("WARNING: other processes used the CPU during some sweeps (other_cpu > 0.25 core): rates are "
              "unreliable; rerun on a quiet machine.")
    total = time.perf_counter() - START
    payload = dict(
        rows=rows, step_ratio=steps, projection_10M=projection, same_table_1_and_2_processes=same_table,
        checks={"step_le_1.5x_fwd_double_bwd": all(r["passed"] for r in steps)}, target_step_ratio=STEP_TARGET,
        machine_busy=busy, gpu="cuda" if gpu else None, config=str(CONFIG.relative_to(ROOT)),
        n_samples=base["data"]["n_samples"], mode="quick" if args.quick else "full",
        package_version=attrbound_lite.__version__, package_commit=commit, torch_version=torch.__version__,
        cpu_count=os.cpu_count(), cpu_model=cpu_model(), date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=shlex.join([Path(sys.executable).name, *sys.argv]), total_seconds=round(total, 1),
        notes="rates from the manifests' compute_seconds (all shards, bounds included; start-up, data loading and "
              "training excluded: see wall_seconds); step ratio: fastest of repeated interleaved calls, in process.")
    write_json(args.out, payload)
    log(f"wrote {args.out} (total {total:.0f} s); tables of 1 and 2 processes equal: {same_table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
