"""Chapter 11's GPU section: the result files of a GPU session (``benchmarks/gpu.sh``) and what the chapter says.

``load_gpu_results`` reads ``sweep_gpu-<device>.json``, ``training_gpu-<device>.json`` and
``sweep_paper-<device>.json`` (smoke runs left out), ``gpu_table`` gives the measured sweep rows and ``gpu_values``
every GPU sentence, recomputed from the files present: without them, that the GPU figures have not been measured.
``speed`` reads the CPU benchmarks and merges these values into the chapter's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .tables import METHOD_NAMES

__all__ = ["GPU_FILES", "load_gpu_results", "gpu_table", "gpu_values"]


# The GPU session's files (benchmarks/gpu.sh), one per device: ``<kind>-<device slug>.json``.
GPU_FILES = {"sweep_gpu": "sweep_gpu-*.json", "training_gpu": "training_gpu-*.json",
             "sweep_paper": "sweep_paper-*.json"}


def load_gpu_results(results_dir: str | Path) -> dict:
    """The GPU session's result files in ``results_dir``: ``{kind: [payload, ...]}`` per kind of ``GPU_FILES``.

    Newest first, each payload with its ``file`` name; ``"smoke"`` lists the files left out because they come from a
    smoke run (``benchmarks/gpu.sh --tiny``: mode tiny or device cpu). Missing files are no error (the chapter says
    they have not been measured).
    """
    found: dict = {kind: [] for kind in GPU_FILES}
    found["smoke"] = []
    for kind, pattern in GPU_FILES.items():
        for path in sorted(Path(results_dir).glob(pattern)):
            payload = {**json.loads(path.read_text()), "file": path.name}
            if payload.get("mode") == "tiny" or "cpu" in (payload.get("device"), payload.get("device_slug")):
                found["smoke"].append(path.name)
            else:
                found[kind].append(payload)
        found[kind].sort(key=lambda p: str(p.get("date", "")), reverse=True)
    return found


# The GPU targets, where a file does not record its own (benchmarks/sweep.py GPU_TARGETS).
_GPU_TARGETS = {"mnist_saliency_pgd": 1400.0, "mnist_saliency_pgd_aim": 2800.0, "ig_over_saliency": 0.1}


def gpu_table(gpu: dict) -> pd.DataFrame:
    """The measured rows of every ``sweep_gpu-*.json`` (newest file per device), with a ``device`` column.

    Columns: device, model, attribution, attack, compile, instances, chunk, attacks_per_second, tflops, peak_fraction,
    max_memory_gb, hours_for_10M, first_call_seconds, error, skipped (those present in the file). Empty without files.
    """
    frames, seen = [], set()
    for payload in gpu.get("sweep_gpu", []):
        device = payload.get("device_name") or payload.get("device_slug", "?")
        if device in seen:
            continue
        seen.add(device)
        frames.append(pd.DataFrame(payload["rows"]).assign(device=device))
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    columns = ["device", "model", "attribution", "attack", "compile", "instances", "chunk", "attacks_per_second",
               "tflops", "peak_fraction", "max_memory_gb", "hours_for_10M", "first_call_seconds", "error", "skipped"]
    return table[[c for c in columns if c in table]]


def _gpu_sentence(payload: dict) -> str:
    """What one ``sweep_gpu-*.json`` measured, with the verdicts recomputed from its rows and its targets."""
    rows = pd.DataFrame(payload["rows"])
    ok = rows[rows["attacks_per_second"].notna()] if "attacks_per_second" in rows else rows.iloc[:0]
    device, targets = payload.get("device_name", payload.get("device_slug")), payload.get("targets") or _GPU_TARGETS
    head = (f"On {device} ({str(payload.get('date', ''))[:10]}, torch {payload.get('torch_version')}, "
            f"{payload.get('file')}), ")
    if ok.empty:
        return head + "no row of the GPU benchmark finished."
    best = ok.groupby(["model", "attribution", "attack"])["attacks_per_second"].max()
    parts = []
    if ("mnist_cnn", "saliency", "pgd") in best.index:
        base = ok[(ok["model"] == "mnist_cnn") & (ok["attribution"] == "saliency") & (ok["attack"] == "pgd")]
        top = base.loc[base["attacks_per_second"].idxmax()]
        rate = float(top["attacks_per_second"])
        low, aim = targets["mnist_saliency_pgd"], targets["mnist_saliency_pgd_aim"]
        verdict = (f"above the aim of {aim:,.0f}" if rate >= aim else
                   f"above the target of {low:,.0f} but below the aim of {aim:,.0f}" if rate >= low else
                   f"below the target of {low:,.0f}")
        parts.append(f"100-step saliency attribution PGD on the full-width MNIST CNN ran at {rate:,.0f} attacks per "
                     f"second (compile: {top['compile']}), {verdict}; 10 million such attacks would take "
                     f"{1e7 / rate / 3600:.1f} hours")
    ratios = [float(rate / best[model, "saliency", attack]) for (model, attribution, attack), rate in best.items()
              if attribution != "saliency" and (model, "saliency", attack) in best.index]
    if ratios:
        n_pass = sum(r >= targets["ig_over_saliency"] for r in ratios)
        spread = (f"about {min(ratios):.2f}" if f"{min(ratios):.2f}" == f"{max(ratios):.2f}" else
                  f"{min(ratios):.2f} to {max(ratios):.2f}")
        parts.append(f"Integrated Gradients with 16 points ran at {spread} times the saliency rate of the same model "
                     f"and attack ({n_pass} of {len(ratios)} pairs at the target of at least "
                     f"{targets['ig_over_saliency']:g})")
    if "tflops" in ok and ok["tflops"].notna().any():
        top = ok.loc[ok["tflops"].idxmax()]
        peak = payload.get("fp32_peak_tflops")
        parts.append(f"the busiest row ({top['model']}, {top['attribution']}, {top['attack']}) reached "
                     f"{top['tflops']:.1f} TFLOP/s" + (f", {top['tflops'] / peak:.0%} of the {peak:g} TFLOP/s FP32 "
                                                       "peak" if peak else " (no FP32 peak known for this device)"))
    if "max_memory_gb" in ok and ok["max_memory_gb"].notna().any():
        parts.append(f"no row used more than {ok['max_memory_gb'].max():.1f} GiB of GPU memory")
    text = head + "; ".join(parts) + "."
    eager = ok[ok["compile"] == "off"].set_index(["model", "attribution", "attack"])["attacks_per_second"]
    gains = [float(r.attacks_per_second / eager[r.model, r.attribution, r.attack]) for r in ok.itertuples()
             if r.compile != "off" and (r.model, r.attribution, r.attack) in eager.index]
    failed = int(rows["error"].notna().sum()) if "error" in rows else 0
    if gains:
        text += (f" Compiling the step changed the rate by a factor of {min(gains):.2f} to {max(gains):.2f} over "
                 f"{len(gains)} compiled rows.")
    if failed:
        text += f" {failed} of {len(rows)} rows failed (the file records each error)."
    skipped = int(rows["skipped"].notna().sum()) if "skipped" in rows else 0
    if skipped:
        text += f" {skipped} of {len(rows)} rows were not run (time budget or device)."
    if not payload.get("targets_apply", False):
        text += " The targets are set for an H100-class GPU at full size; they do not apply to this run."
    return text


def _training_sentence(payloads: list[dict]) -> str:
    """What the newest ``training_gpu-*.json`` measured.

    Seconds per epoch on all of MNIST per method and batch size (``benchmarks/training.py``'s GPU section), or a
    main-section run's training times.
    """
    if not payloads:
        return ("The training benchmark has not been run on a GPU yet (no training_gpu-*.json measured on a GPU in "
                "the results folder).")
    t = payloads[0]
    where = f"{t.get('device_name') or t.get('device')} ({str(t.get('date', ''))[:10]}, {t['file']})"
    rows = pd.DataFrame(t.get("rows", []))
    if not rows.empty and {"method", "batch_size", "epoch_seconds"} <= set(rows.columns):
        target = t.get("target_seconds")
        parts = []
        for batch, group in rows.groupby("batch_size", sort=True):
            timed = group[group["epoch_seconds"].notna()]
            if timed.empty:
                parts.append(f"at batch {batch} no method finished")
                continue
            fast, slow = timed.loc[timed["epoch_seconds"].idxmin()], timed.loc[timed["epoch_seconds"].idxmax()]
            n_extra = int(timed["extrapolated"].sum()) if "extrapolated" in timed else 0
            verdict = "" if target is None else (
                f"; {int((timed['epoch_seconds'] < target).sum())} of {len(group)} methods under the target of "
                f"{target:g} s")
            fast_name, slow_name = (METHOD_NAMES.get(m["method"], m["method"]) for m in (fast, slow))
            parts.append(f"at batch {batch}, one epoch took {fast['epoch_seconds']:.1f} s ({fast_name}) to "
                         f"{slow['epoch_seconds']:.1f} s ({slow_name}){verdict}"
                         + (f" ({n_extra} extrapolated from a probe of a few batches)" if n_extra else ""))
        n_train = f"{int(t['n_train']):,} " if t.get("n_train") else ""
        text = f"On {where}, training on all {n_train}MNIST training images: " + "; ".join(parts) + "."
        if not t.get("targets_apply", True):
            text += " The target is set for a CUDA device at full size; it does not apply to this run."
        return text
    rows = pd.DataFrame(t.get("results", []))
    if rows.empty or not {"method", "train_seconds"} <= set(rows.columns):
        return f"The training benchmark ran on {where}; its file holds no per-method training times."
    rows = rows.set_index("method")
    size = "quick size" if t.get("quick") else "full size"
    return (f"On {where}, the training benchmark ({size}) trained the {len(rows)} methods in "
            f"{rows['train_seconds'].sum():.0f} s in all, from {rows['train_seconds'].min():.1f} s "
            f"({rows['train_seconds'].idxmin()}) to {rows['train_seconds'].max():.1f} s "
            f"({rows['train_seconds'].idxmax()}).")


def _paper_sentence(payloads: list[dict]) -> str:
    if not payloads:
        return ("The paper-scale sweep (configs/sweep-paper-*.yaml, 1,920,000 attacks) has not been run on a GPU "
                "yet (no sweep_paper-*.json measured on a GPU in the results folder).")
    p = payloads[0]
    parts = []
    for ds, sw in p.get("sweeps", {}).items():
        if not sw.get("ran"):
            parts.append(f"{ds}: not run")
            continue
        state = "complete" if sw.get("complete") else ("stopped by its time cap" if sw.get("stopped_by_cap") else
                                                       "incomplete")
        rate = sw.get("attacks_per_second_between_shards") or sw.get("attacks_per_second_wall")
        parts.append(f"{ds}: {sw['attacks_run']:,} of {sw['attacks_planned']:,} attacks ({state}"
                     + (f", {rate:,.0f} attacks per second" if rate else "") + ")")
    return (f"The paper-scale sweep ran {p.get('attacks_run', 0):,} of its {p.get('attacks_planned', 0):,} attacks on "
            f"{p.get('device_slug')} ({str(p.get('date', ''))[:10]}, {p['file']}): " + "; ".join(parts)
            + ". A stopped sweep resumes where it stopped (benchmarks/gpu.sh prints the command).")


def gpu_values(gpu: dict) -> dict:
    """The GPU section's sentences, all derived from the GPU files present (``load_gpu_results``)."""
    sweeps = gpu.get("sweep_gpu", [])
    smoke = gpu.get("smoke", [])
    if sweeps:
        status = " ".join(_gpu_sentence(p) for p in sweeps)
        caption = ("GPU throughput of 100-step attribution attacks on the full-width smooth CNNs (random weights), "
                   "one batch of every (sample, radius, restart) instance: (a) attacks per second per model, "
                   "attribution and attack, eager and compiled (log scale; dashed: the target of 1,400 for saliency "
                   "PGD on the MNIST CNN); (b) achieved TFLOP/s against the device's FP32 peak.")
    else:
        status = ("No GPU figures have been measured yet: the results folder holds no sweep_gpu-*.json measured on "
                  "a GPU (benchmarks/gpu.sh writes it on a CUDA machine)"
                  + (f"; {len(smoke)} smoke-run file(s) from benchmarks/gpu.sh --tiny were left out" if smoke else "")
                  + ", so every throughput in this chapter is a CPU one.")
        caption = "GPU throughput: not measured yet (no sweep_gpu-*.json in the results folder)."
    return {"ch10_gpu_status": status, "ch10_gpu_caption": caption,
            "ch10_gpu_training": _training_sentence(gpu.get("training_gpu", [])),
            "ch10_gpu_paper": _paper_sentence(gpu.get("sweep_paper", []))}
