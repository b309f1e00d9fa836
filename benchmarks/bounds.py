#!/usr/bin/env python
"""Cost of the matrix-free bounds (point and region) against the exact Jacobian, a gradient and a 100-step IFIA.

Three smooth classifiers (MNIST CNN, CIFAR CNN, softplus ResNet-18 at 224 x 224), RANDOM weights (seeded;
no pretrained weights can be downloaded here) and random inputs in [0, 1], eval mode, float32. Every
time is per sample; the targets are checked as ratios of times taken in the same run. See README.md.

    .venv/bin/python benchmarks/bounds.py [--quick] [--device cpu|cuda] [--out PATH]
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchvision.models import resnet18

import attrbound_lite
from attrbound_lite import _io
from attrbound_lite.attacks import IFIA
from attrbound_lite.bounds import MAX_EXACT_N, attribution_bound
from attrbound_lite.models import CifarCNN, MnistCNN, Normalize, smooth_relu
from attrbound_lite.region import RegionOptions, region_bound
from attrbound_lite.runtime import cpu_model, resolve_device

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EPS_L2, TOL, BETA = 0.5, 1e-4, 10.0  # the bound's l2 radius (the cost does not depend on it), Lanczos tol
TARGETS = {"exact_speedup": 50.0, "rel_err": 1e-3, "bound_over_ifia": 0.25, "resnet_bound_s": 60.0,
           "region_over_ifia": 1.0, "region_over_point": 20.0, "certified_over_point": 20.0}
CERT_EPS = {"l2": 0.05, "linf": 1 / 255}  # the certificate's cost hardly depends on the radius
REGION = RegionOptions()  # the region bound's defaults (10 ascent steps from x, 2 power steps per step)
BUSY_CORES = 0.25  # flag the run when other processes used more than this many cores during a timed call
START = time.perf_counter()


def log(message: str) -> None:
    """Progress line with the time elapsed since the start."""
    print(f"[{time.perf_counter() - START:7.1f}s] {message}", flush=True)


def cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine incl. steal, CPU seconds of this process), None without /proc."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    mine = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), mine.user + mine.system


OTHER_CPU: list[float] = []  # per timed call: mean number of cores used by OTHER processes meanwhile


def wait_until_quiet(max_wait: float = 120.0) -> None:
    """Sleep (in 2 s windows) until the machine's busy cores drop below ``BUSY_CORES``, at most ``max_wait`` s."""
    deadline = time.perf_counter() + max_wait
    while time.perf_counter() < deadline:
        before = cpu_seconds()
        time.sleep(2.0)
        after = cpu_seconds()
        if before is None or after is None or (after[0] - before[0]) / 2.0 < BUSY_CORES:
            return


def measure(fn, device: torch.device, retries: int = 2):
    """``(seconds, fn())`` of one call, ``time.perf_counter``, device synchronised. A call of 0.5 s or more
    during which other processes used more than ``BUSY_CORES`` cores is retried (after waiting for a quiet
    machine) up to ``retries`` times; the others' CPU use during the kept call goes to ``OTHER_CPU``."""
    for attempt in range(retries + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        cpu0, start = cpu_seconds(), time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds, cpu1 = time.perf_counter() - start, cpu_seconds()
        if cpu0 is None or cpu1 is None or seconds < 0.5:  # /proc/stat counts 10 ms ticks
            break
        other = max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1])) / seconds
        if other <= BUSY_CORES or attempt == retries:
            OTHER_CPU.append(other)
            break
        log(f"  (other processes used {other:.2f} cores during a {seconds:.1f} s measurement: waiting, retrying)")
        wait_until_quiet()
    return seconds, out


def timed(fn, device: torch.device, warmup=None, repeats: int = 1):
    """Fastest of ``repeats`` measured calls of ``fn`` (see ``measure``) and its result, after one call of
    ``warmup`` (warnings silenced) if given."""
    if warmup is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warmup()
    runs = [measure(fn, device) for _ in range(repeats)]
    return min(t for t, _ in runs), runs[-1][1]


def resnet18_smooth() -> nn.Module:
    """torchvision ResNet-18 (random weights), ReLUs replaced by softplus(beta), ImageNet Normalize in front."""
    net = smooth_relu(resnet18(weights=None, num_classes=1000), beta=BETA)
    return nn.Sequential(Normalize(IMAGENET_MEAN, IMAGENET_STD), net)


def model_specs(quick: bool) -> list[dict]:
    """What to run per model: builder, input shape, batch, IFIA radius and steps, exact samples, IG setup
    (``ig``: (batch, n_steps) or None), ``repeats`` (IFIA and the saliency / input x gradient bounds are
    timed as the fastest of this many calls; IG and exact once)."""
    return [
        dict(name="mnist_cnn", build=lambda: MnistCNN(activation="softplus", beta=BETA), shape=(1, 28, 28),
             batch=8 if quick else 32, ifia_eps=0.3, ifia_steps=100, exact=1 if quick else 2,
             ig=(8 if quick else 32, 16), repeats=3),
        dict(name="cifar_cnn", build=lambda: CifarCNN(activation="softplus", beta=BETA), shape=(3, 32, 32),
             batch=4 if quick else 16, ifia_eps=8 / 255, ifia_steps=100, exact=1 if quick else 2,
             ig=(4 if quick else 16, 16), repeats=3),
        dict(name="resnet18", build=resnet18_smooth, shape=(3, 224, 224), batch=1 if quick else 2,
             ifia_eps=8 / 255, ifia_steps=10 if quick else 100, exact=0, ig=None if quick else (1, 4), repeats=1),
    ]


def fwd_bwd_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Fastest of 5 forward + backward passes (gradient of the summed target logits w.r.t. the input)."""
    def run(inp, lab):
        inp = inp.detach().clone().requires_grad_(True)
        torch.autograd.grad(model(inp).gather(1, lab[:, None]).sum(), inp)
    return timed(lambda: run(x, y), device, warmup=lambda: run(x[:1], y[:1]), repeats=5)[0]


def bench_model(spec: dict, device: torch.device) -> list[dict]:
    """One row per attribution for one model: bound (and, for saliency, exact) cost, gradient and IFIA cost."""
    torch.manual_seed(0)
    model = spec["build"]().to(device).eval()
    batch, n = spec["batch"], int(np.prod(spec["shape"]))
    x = torch.rand(batch, *spec["shape"], device=device)
    with torch.no_grad():
        y = model(x).argmax(1)
    first_call = len(OTHER_CPU)
    log(f"{spec['name']}: n = {n}, batch = {batch}")
    fwd_bwd = fwd_bwd_seconds(model, x, y, device) / batch

    k = max(1, round(0.1 * spec["shape"][1] * spec["shape"][2]))  # 10% of the pixels of the saliency map
    steps = spec["ifia_steps"]

    def attack(s):  # surrogate_beta: as for the bound (see there); no ReLU, so one model per step
        return IFIA(model, "saliency", eps=spec["ifia_eps"], alpha=spec["ifia_eps"] / 10, steps=s, k=k,
                    surrogate_beta=BETA)

    t_ifia, _ = timed(lambda: attack(steps)(x, y), device, warmup=lambda: attack(2)(x[:1], y[:1]),
                      repeats=spec["repeats"])
    ifia100 = t_ifia * 100 / steps / batch  # linear in the steps: each step costs the same
    log(f"  IFIA {steps} steps: {t_ifia:.2f} s for the batch")
    shared_calls = OTHER_CPU[first_call:]  # the IFIA (and forward + backward) behind every row

    runs = [("saliency", {}, batch), ("input_x_gradient", {}, batch)]
    if spec["ig"] is not None:
        runs.append(("integrated_gradients", {"n_steps": spec["ig"][1]}, spec["ig"][0]))
    rows = []
    for attribution, options, b in runs:
        # the loop variables are bound as defaults (B023); every closure is called within this iteration
        def bound(inp, *, attribution=attribution, options=options, **kw):
            # surrogate_beta: the same function for these softplus models (no ReLU to replace), but required
            # by the package because of their max-pooling layers
            return attribution_bound(model, inp, EPS_L2, norm="l2", attribution=attribution, tol=TOL,
                                     surrogate_beta=BETA, **options, **kw)

        repeats, row_call = 1 if options else spec["repeats"], len(OTHER_CPU)
        t_bound, res = timed(lambda b=b: bound(x[:b]), device, warmup=lambda: bound(x[:1], max_iter=3), repeats=repeats)
        label = attribution + (f"(m={options['n_steps']})" if options else "")
        log(f"  bound {label}: {t_bound:.2f} s for {b} samples")
        row = dict(model=spec["name"], n=n, attribution=label, batch=b, repeats=repeats, bound_s=t_bound / b,
                   iters_median=float(np.median(res.iterations.cpu().numpy())),
                   iters_max=int(res.iterations.max()),
                   hvps_median=float(np.median(res.products.cpu().numpy())),
                   converged=float(res.converged.float().mean()), exact_s=None, rel_err=None, exact_speedup=None,
                   fwd_bwd_s=fwd_bwd, bound_per_fwd_bwd=t_bound / b / fwd_bwd, ifia100_s=ifia100,
                   ifia_extrapolated=steps != 100, bound_over_ifia=t_bound / b / ifia100)
        if attribution == "saliency" and spec["exact"] and n <= MAX_EXACT_N:
            # sample by sample (about the same cost per sample as a batch of 2; shorter calls to retry)
            times, errors = [], []
            for i in range(spec["exact"]):
                t_exact, exact = timed(lambda i=i: bound(x[i:i + 1], method="exact"), device)
                sigma = float(exact.sigma_max[0])
                times.append(t_exact)
                errors.append(abs(float(res.sigma_max[i]) - sigma) / sigma)
            row.update(exact_s=float(np.mean(times)), rel_err=max(errors))
            row["exact_speedup"] = row["exact_s"] / row["bound_s"]
            log(f"  exact: {row['exact_s']:.2f} s/sample, rel. error {row['rel_err']:.2e}")
        if attribution == "saliency":  # the curvature-aware region bound, point bound included, on the same batch
            def region(inp, **kw):
                options = {**REGION.to_dict(), **kw}  # the warm-up runs one ascent step
                return region_bound(model, inp, EPS_L2, "l2", tol=TOL, surrogate_beta=BETA, **options)

            t_region, reg = timed(lambda b=b: region(x[:b]), device, warmup=lambda: region(x[:1], steps=1))
            row.update(region_s=t_region / b, region_over_point=t_region / t_bound,
                       region_over_ifia=t_region / b / ifia100, region_gain_median=float(reg.gain.median()))
            log(f"  region bound: {t_region:.2f} s for {b} samples ({t_region / t_bound:.1f} point bounds)")
        # the most cores other processes used during the row's timed calls (IFIA, bound, exact, region)
        row["other_cpu"] = max(shared_calls + OTHER_CPU[row_call:], default=float("nan"))
        rows.append(row)
    return rows


def bench_certified(quick: bool, device: torch.device) -> list[dict]:
    """The certificate's cost in first-order bounds per image, on the committed reference models (trained weights,
    the zoo's smooth architecture: the certificate refuses max-pooling), the same batch: ``certified_bound`` (float64,
    its three routes) against ``attribution_bound`` (float32 Lanczos, the package's default), saliency."""
    from attrbound_lite import data, zoo
    from attrbound_lite.certified import certified_bound

    rows = []
    for name, batch in (("mnist-natural", 4), ("cifar10-subset-natural", 1))[:1 if quick else 2]:
        model, _ = zoo.load_reference(name, device=device)
        dataset = zoo.REFERENCE[name].dataset
        x = data.load_dataset(dataset, "test").images[:batch].to(device)
        model64 = copy.deepcopy(model).double()
        certified_bound(model64, x[:1].double(), 0.01)  # warm-up: the blocks' operator norms, once per model
        for norm, eps in CERT_EPS.items():
            t_point, point = timed(lambda m=model, x=x, eps=eps, norm=norm: attribution_bound(m, x, eps, norm, tol=TOL),
                                   device, repeats=3)
            t_cert, cert = timed(lambda m=model64, x=x, eps=eps, norm=norm: certified_bound(m, x.double(), eps, norm),
                                 device)
            ratio = cert.euclidean / point.euclidean.double()
            rows.append(dict(model=name, norm=norm, eps=eps, batch=batch, certified_s=t_cert / batch,
                             point_s=t_point / batch, certified_over_point=t_cert / t_point,
                             certificate_over_first_order_median=float(ratio.median()),
                             routes=sorted(set(cert.route))))
            log(f"  certified {name} {norm} {eps:.3g}: {t_cert:.2f} s for {batch} images = {t_cert / t_point:.1f} "
                f"first-order bounds; certificate / first-order bound {float(ratio.median()):.3g} (median)")
    return rows


def run_checks(rows: list[dict], cert_rows: list[dict] | None = None) -> dict:
    """The three targets on the saliency rows, with the measured values and ``pass`` (None: not measured)."""
    sal = {r["model"]: r for r in rows if r["attribution"] == "saliency"}
    a = {"target": "exact_s / bound_s >= 50 and rel_err <= 1e-3 at n = 3072", "pass": None}
    for r in (r for r in sal.values() if r["n"] == 3072 and r["exact_s"] is not None):
        a.update(speedup=r["exact_speedup"], rel_err=r["rel_err"])
        a["pass"] = bool(r["exact_speedup"] >= TARGETS["exact_speedup"] and r["rel_err"] <= TARGETS["rel_err"])
    b = {"target": "bound time / 100-step IFIA time <= 1/4, same batch"}
    for name, r in sal.items():
        b[name] = {"ratio": r["bound_over_ifia"], "ifia_extrapolated": r["ifia_extrapolated"],
                   "pass": bool(r["bound_over_ifia"] <= TARGETS["bound_over_ifia"])}
    b["pass"] = all(v["pass"] for v in b.values() if isinstance(v, dict))
    res = sal.get("resnet18")
    c = {"target": "ResNet-18 at 224x224 bounded in <= 60 s per image",
         "bound_s": None if res is None else res["bound_s"],
         "pass": None if res is None else bool(res["bound_s"] <= TARGETS["resnet_bound_s"])}
    d = {"target": "region bound (point bound included) <= one 100-step IFIA and <= 20 point bounds, same batch"}
    for name, r in sal.items():
        d[name] = {"over_ifia": r["region_over_ifia"], "over_point": r["region_over_point"],
                   "pass": bool(r["region_over_ifia"] <= TARGETS["region_over_ifia"]
                                and r["region_over_point"] <= TARGETS["region_over_point"])}
    d["pass"] = all(v["pass"] for v in d.values() if isinstance(v, dict))
    e = {"target": "certified bound <= 20 first-order bounds per MNIST image, same batch"}
    for r in (r for r in cert_rows or [] if r["model"] == "mnist-natural"):
        e[r["norm"]] = {"over_point": r["certified_over_point"],
                        "pass": bool(r["certified_over_point"] <= TARGETS["certified_over_point"])}
    e["pass"] = all(v["pass"] for v in e.values() if isinstance(v, dict)) if len(e) > 1 else None
    return {"a_exact_speedup_at_n3072": a, "b_bound_le_quarter_ifia100": b, "c_resnet18_le_60s_per_image": c,
            "d_region_le_ifia100_and_20_points": d, "e_certified_le_20_points": e}


def print_checks(checks: dict) -> None:
    """PASS / FAIL / N/A line per target."""
    word = {True: "PASS", False: "FAIL", None: "N/A "}
    a = checks["a_exact_speedup_at_n3072"]
    print(f"{word[a['pass']]} (a) n=3072 exact/bound speed-up {a.get('speedup', float('nan')):.0f}x (>= 50x), "
          f"rel. error {a.get('rel_err', float('nan')):.1e} (<= 1e-3)")
    for name, v in checks["b_bound_le_quarter_ifia100"].items():
        if isinstance(v, dict):
            extra = " (IFIA extrapolated from fewer steps)" if v["ifia_extrapolated"] else ""
            print(f"{word[v['pass']]} (b) {name}: bound / IFIA-100 = {v['ratio']:.3f} (<= 0.25){extra}")
    c = checks["c_resnet18_le_60s_per_image"]
    bound_s = float("nan") if c["bound_s"] is None else c["bound_s"]
    print(f"{word[c['pass']]} (c) ResNet-18 224x224 saliency bound {bound_s:.1f} s/image (<= 60 s)")
    for name, v in checks["d_region_le_ifia100_and_20_points"].items():
        if isinstance(v, dict):
            print(f"{word[v['pass']]} (d) {name}: region bound / IFIA-100 = {v['over_ifia']:.3f} (<= 1), "
                  f"= {v['over_point']:.1f} point bounds (<= 20)")
    for name, v in checks["e_certified_le_20_points"].items():
        if isinstance(v, dict):
            print(f"{word[v['pass']]} (e) MNIST {name}: certified bound = {v['over_point']:.1f} first-order bounds "
                  "(<= 20)")


def git_commit() -> str | None:
    """The repository's HEAD commit, with ``+dirty`` if the package has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "attrbound_lite"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def finite(value):
    """``value`` with every NaN / infinite float replaced by None (strict JSON), recursively."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` (non-finite floats as null) atomically."""
    _io.write_json(path, finite(payload))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches, no ResNet IG, 10 IFIA steps on ResNet")
    parser.add_argument("--device", default=str(resolve_device()))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "bounds.json")
    args = parser.parse_args()
    commit = git_commit()  # now: the package was imported at start-up, it may be edited during the run
    device = torch.device(args.device)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"{'quick' if args.quick else 'full'} run; random weights and inputs (seed 0)")
    rows = [row for spec in model_specs(args.quick) for row in bench_model(spec, device)]
    cert_rows = bench_certified(args.quick, device)
    checks = run_checks(rows, cert_rows)
    total = time.perf_counter() - START

    table = pd.DataFrame(rows).set_index(["model", "attribution"])
    with pd.option_context("display.width", 250, "display.max_columns", None):
        print(table.to_string(float_format=lambda v: f"{v:.3g}", na_rep="-"))
    print_checks(checks)
    disturbed = [f"{r['model']}/{r['attribution']}" for r in rows if r["other_cpu"] > BUSY_CORES]
    busy = bool(disturbed)
    if busy:
        print(f"WARNING: other processes used the CPU during the timings of {', '.join(disturbed)} (column "
              "other_cpu > 0.25 core): those times and ratios are unreliable; rerun on a quiet machine.")
    payload = dict(
        rows=rows, certified=cert_rows, checks=checks, targets=TARGETS, mode="quick" if args.quick else "full",
        machine_busy=busy, package_version=attrbound_lite.__version__, package_commit=commit,
        torch_version=torch.__version__, num_threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(), device=str(device),
        cpu_model=cpu_model(), date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=shlex.join([Path(sys.executable).name, *sys.argv]), total_seconds=total,
        notes="random (untrained) weights, seed 0; inputs uniform in [0, 1]; times in seconds per sample; "
              f"l2 bound, eps={EPS_L2}, Lanczos tol={TOL}; float32, eval mode.")
    write_json(args.out, payload)
    log(f"wrote {args.out} (total {total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
