"""Chapter 11 (speed and scale): the stored benchmark results and what the chapter draws from them.

What it draws: the tables and figures' inputs, and every number and sentence the chapter's prose quotes
(``chapter_values``).

The results are the JSON files of ``benchmarks/results/`` (``bounds.json``, ``training.json``,
``sweep.json``, and where a GPU session ran ``benchmarks/gpu.sh``, ``sweep_gpu-<device>.json``,
``training_gpu-<device>.json`` and ``sweep_paper-<device>.json``); ``load_results`` reads them,
``chapter_values(results)`` returns ``{glue name: value}``. Without GPU files the chapter says, from their absence,
that the GPU figures have not been measured.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path

import pandas as pd

from ..stats import sig
from .speed_gpu import GPU_FILES, gpu_values, load_gpu_results

__all__ = ["MAKE_TARGETS", "load_results", "machines_table", "bound_rows",
           "training_table", "sweep_tables", "layout_values", "BASE_LAYOUTS",
           "target_line", "label", "chapter_values", "note_values", "bound_values",
           "iteration_values", "training_values", "sweep_values", "compile_values"]

MAKE_TARGETS = {"bounds.json": "make bench", "training.json": "make bench-training", "sweep.json": "make bench-sweep"}
_BUSY = {True: "yes (disturbed timings)", False: "no", None: "not recorded"}


def load_results(results_dir: str | Path) -> dict:
    """``{"bounds": ..., "training": ..., "sweep": ...}`` from ``results_dir``.

    A missing file is a ``FileNotFoundError`` that names the make target producing it.
    """
    results = {}
    for name, target in MAKE_TARGETS.items():
        path = Path(results_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"benchmark result {path.resolve()} is missing: run `{target}` in the "
                                    f"project root to produce it (see benchmarks/README.md), or point the parameter "
                                    f"results_dir at a folder that has it.")
        results[name.removesuffix(".json")] = json.loads(path.read_text())
    results["gpu"] = load_gpu_results(results_dir)
    return results


def machines_table(results: dict) -> pd.DataFrame:
    """One row per result file: when and on what it was measured."""
    bounds, training, sweep = results["bounds"], results["training"], results["sweep"]
    return pd.DataFrame([
        {"file": "bounds.json", "date (UTC)": bounds["date"][:16].replace("T", " "), "device": bounds["device"],
         "CPU": bounds.get("cpu_model"), "cores": bounds.get("cpu_count"), "torch threads": bounds.get("num_threads"),
         "machine busy": _BUSY[bounds.get("machine_busy")], "mode": bounds.get("mode"),
         "torch": bounds.get("torch_version")},
        {"file": "training.json", "date (UTC)": training["date"][:16].replace("T", " "), "device": training["device"],
         "CPU": training.get("cpu_model", training.get("cpu")), "cores": training.get("cpu_count", "not recorded"),
         "torch threads": training.get("threads"), "machine busy": _BUSY[training.get("machine_busy")],
         "mode": "quick" if training.get("quick") else "full", "torch": training.get("torch")},
        {"file": "sweep.json", "date (UTC)": sweep["date"][:16].replace("T", " "),
         "device": "cpu" if not sweep.get("gpu") else f"cpu + {sweep['gpu']}", "CPU": sweep.get("cpu_model"),
         "cores": sweep.get("cpu_count"), "torch threads": "per layout",
         "machine busy": _BUSY[sweep.get("machine_busy")], "mode": sweep.get("mode"),
         "torch": sweep.get("torch_version")},
        *[{"file": r["file"], "date (UTC)": str(r.get("date", ""))[:16].replace("T", " "),
           "device": r.get("device_name") or r.get("device_slug") or r.get("device"), "CPU": r.get("cpu_model"),
           "cores": r.get("cpu_count", "not recorded"), "torch threads": "default",
           "machine busy": "not recorded", "mode": r.get("mode", "quick" if r.get("quick") else "full"),
           "torch": r.get("torch_version", r.get("torch"))}
          for kind in GPU_FILES for r in results.get("gpu", {}).get(kind, [])],
    ]).set_index("file")


def _minutes(m: float) -> str:
    return f"{m:.1f}" if m < 10 else f"{m:.0f}"


def note_values(results: dict) -> dict:
    """The note at the top of the chapter: what ran where and when, and how long the benchmarks took."""
    bounds, training, sweep = results["bounds"], results["training"], results["sweep"]
    devices = {"bounds": bounds["device"], "training": training["device"],
               "sweep": "/".join(dict.fromkeys(row["device"] for row in sweep["rows"]))}
    on_cpu = all(d == "cpu" for d in devices.values())
    if on_cpu and not sweep.get("gpu"):
        gpu_note = ("all three benchmarks ran on device cpu, and the sweep benchmark, which adds GPU rows when CUDA "
                    "is present, found none")
    else:
        gpu_note = "devices: " + ", ".join(f"{k} {v}" for k, v in devices.items()) + (
            f"; GPU found by the sweep benchmark: {sweep['gpu']}" if sweep.get("gpu") else "")
    cores = [c for c in dict.fromkeys(r.get("cpu_count") for r in (bounds, sweep)) if c]
    cpus = [c for c in dict.fromkeys(r.get("cpu_model") for r in (bounds, sweep)) if c]
    days = sorted({r["date"][:10] for r in (bounds, training, sweep)})
    minutes = {"bounds": float(bounds["total_seconds"]) / 60, "sweep": float(sweep["total_seconds"]) / 60,
               "training": sum(float(r["train_seconds"]) + float(r["eval_seconds"]) for r in training["results"]) / 60}
    return {
        "ch10_devices": "CPU numbers" if on_cpu else "CPU and GPU numbers",
        "ch10_gpu_note": gpu_note,
        "ch10_machine": f"a {cores[0]}-core {' / '.join(cpus) or 'CPU'} machine" if len(cores) == 1 else
                       f"{' / '.join(cpus) or 'CPU'} machines with " + " and ".join(map(str, cores)) + " cores",
        "ch10_disturb": f"With only {min(cores)} cores any other process running during a benchmark disturbs its "
                       "timings" if cores and min(cores) <= 4 else
                       "Other processes running during a benchmark disturb its timings",
        "ch10_dates": days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}",
        "ch10_bench_minutes": f"{_minutes(minutes['bounds'])} min (bounds), {_minutes(minutes['sweep'])} min (sweep) "
                             f"and at least {_minutes(minutes['training'])} min (training: the sum of its training "
                             "and evaluation times)",
        "ch10_any_busy": "one of them" if any(r.get("machine_busy") for r in (bounds, sweep)) else "none of them",
    }


def bound_rows(bounds: dict) -> pd.DataFrame:
    """The rows of ``bounds.json`` with ``family`` and ``exact_estimate_s`` columns.

    ``family``: the attribution without its number of steps. ``exact_estimate_s``: for saliency, the exact route at
    sizes where it was not run, estimated as n Hessian-vector products at the bound's cost per product (what building
    the Jacobian row by row costs at least; the SVD is left out).
    """
    rows = pd.DataFrame(bounds["rows"])
    rows["family"] = rows["attribution"].str.replace(r"\(m=\d+\)", "", regex=True).str.replace("_", " ")
    rows["exact_estimate_s"] = (rows["n"] * rows["bound_s"] / rows["hvps_median"]).where(rows["family"] == "saliency")
    return rows


def label(attribution: str) -> str:
    """'integrated_gradients(m=16)' -> 'integrated gradients (m = 16)'."""
    return re.sub(r"\(m=(\d+)\)", r" (m = \1)", attribution).replace("_", " ")


def target_line(bounds: dict) -> tuple[float, str]:
    """The benchmark's target (b) for bound time / IFIA time, as ``(ratio, label)`` for the figure."""
    ratio = float(bounds["targets"]["bound_over_ifia"])
    return ratio, f"target (b): {Fraction(ratio).limit_denominator(100)}"


def _bound_vs_attack(rows: pd.DataFrame) -> str:
    dearer = rows[rows["bound_over_ifia"] > 1]
    cheaper = rows[rows["bound_over_ifia"] <= 1]
    if dearer.empty:
        dearest = rows.loc[rows["bound_over_ifia"].idxmax()]
        return (f"No bound costs more than the attack: the dearest, {label(dearest['attribution'])} "
                f"on {dearest['model']}, costs {rows['bound_over_ifia'].max():.2f} of it.")
    items = [f"{label(r.attribution)} on {r.model} ({r.bound_over_ifia:.1f} times)" for r in dearer.itertuples()]
    verdict = "The bound costs more than the attack for " + (
        items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1])
    if set(dearer["family"]) == {"integrated gradients"}:
        verdict += (" (the attack differentiates saliency; each Hessian-vector product of the Integrated "
                    "Gradients bound spans all the path points)")
    if not cheaper.empty:
        verdict += f"; every other bound costs at most {cheaper['bound_over_ifia'].max():.2f} of the attack"
    return verdict + "."


def bound_values(rows: pd.DataFrame, bounds: dict) -> dict:
    """The bound against the exact route and against attacks (``rows``: ``bound_rows(bounds)``)."""
    sal = rows[rows["family"] == "saliency"].set_index("model")
    measured = sal[sal["exact_s"].notna()]
    largest_measured = measured.loc[measured["n"].idxmax()]
    largest = sal.loc[sal["n"].idxmax()]
    under = measured["exact_s"] / measured["exact_estimate_s"]
    ig = rows[rows["family"] == "integrated gradients"].copy()
    ig["m"] = ig["attribution"].str.extract(r"m=(\d+)", expand=False)
    ig_steps = [f"{m} on {' and '.join(g['model'])}" for m, g in ig.groupby("m", sort=False)]
    return {
        "ch10_models_n": ", ".join(f"{m}: n = {n:,}"
                                  for m, n in dict(zip(rows["model"], rows["n"], strict=True)).items()),
        "ch11_speedup_small": float(measured.loc[measured["n"].idxmin(), "exact_speedup"]),
        "ch10_n_small": int(measured["n"].min()),
        "ch11_speedup_exact_largest": float(largest_measured["exact_speedup"]),
        "ch10_n_exact_largest": int(largest_measured["n"]),
        "ch10_rel_err_max": float(measured["rel_err"].max()),
        "ch10_rel_err_max_shown": sig(float(measured["rel_err"].max()), 2),
        "ch10_exact_s_largest": float(largest_measured["exact_s"]),
        "ch10_bound_s_exact_largest": float(largest_measured["bound_s"]),
        "ch10_n_largest": f"{int(largest['n']):,}",
        "ch10_largest_model": str(largest.name),
        "ch10_bound_s_largest": float(largest["bound_s"]),
        "ch10_ifia_s_largest": float(largest["ifia100_s"]),
        "ch10_ifia_speedup_largest": float(largest["ifia100_s"] / largest["bound_s"]),
        "ch10_exact_estimate_h_largest": float(largest["exact_estimate_s"]) / 3600,
        "ch11_speedup_estimate_largest": float(largest["exact_estimate_s"] / largest["bound_s"]),
        "ch10_jacobian_gb_largest": float(largest["n"]) ** 2 * 4 / 1e9,
        "ch10_estimate_under_min": float(under.min()),
        "ch10_estimate_under_max": float(under.max()),
        "ch10_bound_over_ifia_max": float(rows.loc[rows["family"] == "saliency", "bound_over_ifia"].max()),
        "ch10_target_b": float(bounds["targets"]["bound_over_ifia"]),
        "ch10_ig_steps": "Integrated Gradients with " + ig_steps[0].replace(" on ", " steps on ", 1)
                        + "".join(", " + s for s in ig_steps[1:]) if ig_steps else "no Integrated Gradients rows",
        "ch10_bound_vs_attack": _bound_vs_attack(rows),
        "ch10_checks": ", ".join(f"({k[0]}) {'passed' if v['pass'] else 'FAILED'}"
                                for k, v in bounds["checks"].items()),
        "ch10_region": _region_cost(rows),
    }


def _region_cost(rows: pd.DataFrame) -> str:
    """The region bound's cost (chapter 8) in first-order bounds and 100-step IFIAs, from the saliency rows."""
    sal = rows[rows["family"] == "saliency"]
    if "region_over_point" not in sal or sal["region_over_point"].isna().all():
        return "The stored results predate the region bound; running make bench measures it."
    parts = [f"{m}: {r.region_over_point:.1f} first-order bounds, {r.region_over_ifia:.2f} of a 100-step IFIA"
             for m, r in sal.set_index("model").iterrows()]
    return "The region bound of chapter 8 (10 ascent steps) costs, per batch, " + "; ".join(parts) + "."


def iteration_values(rows: pd.DataFrame, bounds: dict) -> dict:
    """Lanczos iterations and the bound's cost in forward + backward passes."""
    sal_iters = [f"{v:g}" for v in rows.loc[rows["family"] == "saliency"].sort_values("n")["iters_median"]]
    first_order = rows[rows["family"] != "integrated gradients"]
    per_product = first_order["bound_per_fwd_bwd"] / first_order["hvps_median"]
    return {
        "ch10_iters_median_min": float(rows["iters_median"].min()),
        "ch10_iters_median_max": float(rows["iters_median"].max()),
        "ch10_iters_max": int(rows["iters_max"].max()),
        "ch10_converged": "Every sample converged" if rows["converged"].min() == 1 else
                         f"Not every sample converged (smallest converged fraction {rows['converged'].min():.2f})",
        "ch10_sal_iters": ", ".join(sal_iters[:-1]) + " and " + sal_iters[-1],
        "ch10_pass_per_hvp_min": float(per_product.min()),
        "ch10_pass_per_hvp_max": float(per_product.max()),
        "ch10_fwd_bwd_min": float(first_order["bound_per_fwd_bwd"].min()),
        "ch10_fwd_bwd_max": float(first_order["bound_per_fwd_bwd"].max()),
        "ch10_tol": float(re.search(r"tol=([0-9.e-]+)", bounds["notes"]).group(1)),
    }


def training_table(training: dict) -> pd.DataFrame:
    """One row per training method of ``training.json``."""
    return pd.DataFrame(training["results"])[["method", "train_seconds", "eval_seconds", "clean_accuracy",
                                              "pgd_accuracy", "topk_intersection", "bound_l2_euclidean_mean"]]


def training_values(training: dict) -> dict:
    """Training cost per method, relative to natural training and PGD-AT."""
    base = training_table(training).set_index("method")
    dear = base["train_seconds"].idxmax()
    eval_longer = list(base.index[base["eval_seconds"] > base["train_seconds"]])
    if len(eval_longer) == len(base):
        eval_note = "longer than its training for every method"
    elif not eval_longer:
        eval_note = "shorter than its training for every method"
    else:
        eval_note = (f"longer than its training for {len(eval_longer)} of the {len(base)} methods "
                     f"({', '.join(eval_longer)})")
    natural = base.loc["natural", "train_seconds"]
    return {
        "ch10_train_subset": f"{int(training['settings']['subset']):,}",
        "ch10_train_epochs": int(training["settings"]["epochs"]),
        "ch10_train_steps": int(training["settings"]["steps"]),
        "ch10_train_natural_s": float(natural),
        "ch10_train_dear": str(dear),
        "ch10_train_dear_s": float(base.loc[dear, "train_seconds"]),
        "ch10_train_dear_factor": float(base.loc[dear, "train_seconds"] / natural),
        "ch10_train_pgd_factor": float(base.loc["pgd_at", "train_seconds"] / natural),
        "ch10_train_advaat_over_pgd": float(base.loc["advaat", "train_seconds"] / base.loc["pgd_at", "train_seconds"]),
        "ch10_bound_natural": float(base.loc["natural", "bound_l2_euclidean_mean"]),
        "ch10_bound_advaat": float(base.loc["advaat", "bound_l2_euclidean_mean"]),
        "ch10_eval_s_min": float(base["eval_seconds"].min()),
        "ch10_eval_s_max": float(base["eval_seconds"].max()),
        "ch10_eval_vs_train": eval_note,
    }


BASE_LAYOUTS = ("1 process x 1 thread", "1 process x 2 threads", "2 processes x 1 thread")


def sweep_tables(sweep: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows, projection)`` of ``sweep.json``: throughput per attack in the three process layouts, hours for 10M.

    The rows are the eager ones with every radius in one attack batch; the per-radius and compiled rows are
    ``layout_values``' and ``compile_values``'.
    """
    rows = pd.DataFrame(sweep["rows"])
    eager = rows["compile"].fillna("off") == "off" if "compile" in rows else True
    return (rows[eager & rows["layout"].isin(BASE_LAYOUTS)].reset_index(drop=True),
            pd.DataFrame([{"attack": k, **v} for k, v in sweep["projection_10M"].items()]))


def layout_values(sweep: dict) -> dict:
    """The batched layout (every radius in one attack batch) against one attack batch per radius, in one run.

    ``ch10_layout_gain``: the sentence, from ``sweep.json``'s ``cpu_target`` (the issue's target: 1.3 times).
    """
    target = sweep.get("cpu_target")
    if not target:
        return {"ch10_layout_gain": "The stored sweep results predate the comparison of the batched layout with "
                                    "one attack batch per radius (make bench-sweep measures it)."}
    rows = pd.DataFrame(sweep["rows"])
    rows = rows[rows.get("compile", pd.Series("off", index=rows.index)).fillna("off") == "off"]
    rate = rows.set_index(["attack", "layout"])["attacks_per_second"]
    goal = float(sweep.get("target_cpu_ratio", 1.3))
    parts = []
    for attack, t in target.items():
        ratio = t["batched_over_per_radius"]
        parts.append(f"{attack.upper()} at {rate[attack, '1 process x 2 threads']:.0f} attacks per second against "
                     f"{rate[attack, '1 process x 2 threads, per-radius batches']:.0f} with one batch per radius "
                     f"({ratio:.2f} times, {_pace(ratio)})")
    met = all(t["batched_over_per_radius"] >= goal for t in target.values())
    same = sweep.get("same_table_batched_and_per_radius")
    tables = ("The two layouts' PGD tables are bit-identical." if same else
              "The two layouts' PGD tables differ (timing columns aside)." if same is False else "")
    verdict = (f"That reaches the goal of {goal:g} times." if met else
               f"That falls short of the goal of {goal:g} times: a step is one forward and double backward of the "
               "batch in either layout, and on this CPU that pass costs about as much per image at any batch size.")
    return {"ch10_layout_gain": (
        "In the same run (one process, two threads), holding every radius in one attack batch ran "
        + " and ".join(parts) + ". " + verdict + " " + tables).strip()}


def _pace(ratio: float) -> str:
    """``faster``, ``slower`` or ``as fast`` for a rate ratio (within 2%: as fast)."""
    return "as fast" if abs(ratio - 1) < 0.02 else "faster" if ratio > 1 else "slower"


def _layout_verdict(rate: pd.Series, attacks: list[str]) -> str:
    procs_win = [a.upper() for a in attacks if rate[a, "2 processes x 1 thread"] > rate[a, "1 process x 2 threads"]]
    threads_win = [a.upper() for a in attacks if a.upper() not in procs_win]
    both = "both attacks" if len(attacks) == 2 else "every attack"
    if not threads_win:
        return f"two single-threaded processes beat one process with two threads for {both}"
    if not procs_win:
        return f"one process with two threads beats two single-threaded processes for {both}"
    return (f"two single-threaded processes beat one process with two threads for {', '.join(procs_win)}, "
            f"not for {', '.join(threads_win)}")


def sweep_values(sweep: dict) -> dict:
    """Sweep throughput per layout, the layout verdict and the 10-million-attack projection."""
    sw, _ = sweep_tables(sweep)
    rate = sw.set_index(["attack", "layout"])["attacks_per_second"]
    attacks = list(dict.fromkeys(sw.loc[sw["device"] == "cpu", "attack"]))
    mix = sweep["projection_10M"]["pgd+ifia, half each"]
    values = {"ch10_sweep_attacks": int(sw["attacks"].iloc[0])}
    for attack in ("pgd", "ifia"):
        for key, layout in (("1x1", "1 process x 1 thread"), ("1x2", "1 process x 2 threads"),
                            ("2x1", "2 processes x 1 thread")):
            values[f"ch10_{attack}_{key}"] = float(rate[attack, layout])
    values.update({
        "ch10_pgd_scaling": float(rate["pgd", "2 processes x 1 thread"] / rate["pgd", "1 process x 1 thread"]),
        "ch10_sweep_machine": f"{sweep['cpu_count']}-core machine" if sweep.get("cpu_count") else "machine",
        "ch10_sweep_cores": f"{sweep['cpu_count']} cores" if sweep.get("cpu_count") else "its CPU",
        "ch10_layout_verdict": _layout_verdict(rate, attacks),
        "ch10_bound_share_min": float(sw["bound_share"].min()) * 100,
        "ch10_bound_share_max": float(sw["bound_share"].max()) * 100,
        "ch10_proj_mix_h": float(mix["hours_for_10M"]),
        "ch10_proj_mix_rate": float(mix["attacks_per_second"]),
        "ch10_proj_layout": str(sweep["projection_10M"]["pgd"]["layout"]),
        "ch10_same_table": "equal" if sweep["same_table_1_and_2_processes"] else "NOT equal",
        "ch10_step_ratio_max": float(pd.DataFrame(sweep["step_ratio"])["ratio"].max()),
        "ch10_step_ratio_target": float(sweep["target_step_ratio"]),
        "ch10_sweep_gpu": "no GPU" if not sweep.get("gpu") else str(sweep["gpu"]),
    })
    return values


def compile_values(sweep: dict) -> dict:
    """Whether compiling the attack step helps at CI size.

    The compiled CPU rows of ``sweep.json`` (cold and warm inductor cache) against the eager 1 process x 2 threads rows.
    """
    sw = pd.DataFrame(sweep["rows"])
    if "compile" not in sw or not (sw["compile"].fillna("off") != "off").any():
        return {"ch10_compile_verdict": "The stored sweep results predate the compiled rows (make bench-sweep "
                                        "measures them)."}
    factors, failed = {"cold": [], "warm": []}, []
    for attack, group in sw[sw["device"] == "cpu"].groupby("attack", sort=False):
        eager = group.loc[(group["layout"] == "1 process x 2 threads") & (group["compile"].fillna("off") == "off"),
                          "attacks_per_second"]
        for cache in ("cold", "warm"):
            row = group[(group["compile"].fillna("off") != "off") & (group["cache"] == cache)]
            if row.empty or eager.empty:
                continue
            rate = row["attacks_per_second"].iloc[0]
            if pd.isna(rate):
                failed.append(f"{attack.upper()} with a {cache} cache failed "
                              f"({row['error'].iloc[0] if 'error' in row else 'no rate'})")
            else:
                factors[cache].append(f"{float(rate / eager.iloc[0]):.2f} ({attack.upper()})")
    if not factors["cold"] and not factors["warm"] and not failed:
        return {"ch10_compile_verdict": "No compiled row has an eager row to compare with."}
    clauses = [f"{' and '.join(f)} times the eager rate with a {cache} cache" for cache, f in factors.items() if f]
    text = ("At CI size, with the compilation counted in the sweep's time, "
            + (f"compiled sweeps ran at {'; '.join(clauses)}" if clauses else "no compiled sweep ran")
            + "".join(f"; {f}" for f in failed) + ".")
    steady = [r for r in sweep.get("step_ratio", []) if r.get("compiled_over_eager") is not None]
    if steady:
        text += (" Once compiled, one step cost " + " and ".join(
            f"{r['compiled_over_eager']:.2f} ({r['attack'].upper()})" for r in steady) + " times an eager one (the "
            "first call, compilation included: " + " and ".join(f"{r['compile_seconds']:.0f} s" for r in steady) + ")")
        pays = [r["attack"].upper() for r in steady if r["compiled_over_eager"] < 0.95]
        rest = [r["attack"].upper() for r in steady if r["compiled_over_eager"] >= 0.95]
        text += (f": compiling can pay for a sweep of {' and '.join(pays)} long enough to amortise the compilation"
                 if pays else ": compiling does not pay on this CPU")
        text += f", not for {' and '.join(rest)}." if pays and rest else "."
    return {"ch10_compile_verdict": text}


def chapter_values(results: dict) -> dict:
    """Every value chapter 11's prose quotes, by glue name, from ``load_results``' dict."""
    rows = bound_rows(results["bounds"])
    return {**note_values(results), **bound_values(rows, results["bounds"]),
            **iteration_values(rows, results["bounds"]), **training_values(results["training"]),
            **sweep_values(results["sweep"]), **layout_values(results["sweep"]), **compile_values(results["sweep"]),
            **gpu_values(results.get("gpu", {}))}
