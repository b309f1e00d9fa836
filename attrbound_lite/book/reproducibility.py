"""Chapter 12 (reproducibility): what the build ran on and how long each chapter took.

What it ran on is the software, commit, seeds and hardware; both parts come as tables and as the sentences the
chapter's prose quotes.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

from ..runtime import cpu_model
from .runner import BOOK_TIMES_ENV, EXECUTED_DIR, toc_files

__all__ = ["chapter_stems", "version", "git_commit", "versions_table", "seeds_table", "seed_values",
           "hardware_table", "times_table", "times_note"]

PACKAGES = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "papermill", "jupyter-book", "myst-nb",
            "sphinx")
TIMES_COLUMNS = ["notebook", "seconds", "profile", "parameters", "executed", "this_build"]


def chapter_stems(root: str | Path) -> list[str]:
    """The stems of the book's notebooks in reading order (``_toc.yml``)."""
    prefix = EXECUTED_DIR + "/"
    return [f.removeprefix(prefix) for f in toc_files(Path(root) / "_toc.yml") if f.startswith(prefix)]


def version(dist: str) -> str:
    """The installed version of a distribution.

    Args:
        dist: the distribution's name.

    Returns:
        Its version, or ``"not installed"``.
    """
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git_commit(root: str | Path) -> str:
    """HEAD, and whether the files the book is built from have uncommitted changes."""
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=60)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "attrbound_lite", "notebooks", "book",
                                "_toc.yml", "_config.yml"], capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "not available (not a git checkout)"
    return head.stdout.strip()[:12] + (" with uncommitted changes" if dirty.stdout.strip() else "")


def versions_table(package_version: str, commit: str) -> pd.DataFrame:
    """Python, the package (with ``commit``) and the versions of its main dependencies."""
    return pd.DataFrame(
        [("python", platform.python_version()), ("attrbound_lite", f"{package_version} ({commit})")]
        + [(dist, version(dist)) for dist in PACKAGES],
        columns=["component", "version"]).set_index("component")


def seeds_table(notebooks: str | Path, stems: list[str]) -> pd.DataFrame:
    """Per notebook, the default of its ``seed`` parameter ("(none)" without one) and its parameters."""
    import papermill

    rows = []
    for stem in stems:
        try:
            params = papermill.inspect_notebook(str(Path(notebooks) / f"{stem}.ipynb"))
        except Exception as err:  # a notebook being edited while this one runs
            rows.append({"notebook": stem, "seed": f"unreadable: {type(err).__name__}", "parameters": ""})
            continue
        rows.append({"notebook": stem, "seed": params["seed"]["default"] if "seed" in params else "(none)",
                     "parameters": ", ".join(params)})
    return pd.DataFrame(rows).set_index("notebook")


def seed_values(seeds: pd.DataFrame) -> dict:
    """How many notebooks have a seed, and which defaults are not 0."""
    other = {k: v for k, v in seeds["seed"].items() if v not in ("0", "(none)") and not str(v).startswith("unreadable")}
    return {"ch11_seeded": int((seeds["seed"] != "(none)").sum()), "ch11_notebooks": len(seeds),
            "ch11_seed_note": "every one of them defaults to 0" if not other else
                             "not 0 in " + ", ".join(f"{k} ({v})" for k, v in other.items())}


def hardware_table() -> tuple[pd.DataFrame, dict]:
    """The machine this runs on, as a table and as ``{glue name: value}``."""
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU only)"
    table = pd.DataFrame([("CPU", cpu_model()), ("CPU cores (machine)", os.cpu_count()), ("CPU cores (usable)", usable),
                          ("PyTorch threads", torch.get_num_threads()), ("CUDA device", gpu),
                          ("operating system", platform.platform())], columns=["item", "value"]).set_index("item")
    return table, {"ch11_cpu": cpu_model(), "ch11_cores": int(usable), "ch11_threads": int(torch.get_num_threads()),
                   "ch11_gpu": gpu}


def times_table(times_file: str | Path | None, stems: list[str], this: str) -> pd.DataFrame:
    """The execution times recorded in ``times_file``, in reading order, without ``this`` notebook.

    ``times_file``: ``OUT/execution_times.json`` (``None`` or missing: none). ``this`` is left out because its time is
    written after it finishes; ``this_build`` marks the chapters executed by the build that runs now.
    """
    rows = []
    if times_file and Path(times_file).is_file():
        record = json.loads(Path(times_file).read_text())
        entries = record.get("notebooks", {})
        order = [s for s in stems if s in entries] + sorted(s for s in entries if s not in stems)
        for stem in order:
            if stem == this:  # an earlier build's time of this page: this run's is written after it finishes
                continue
            e = entries[stem]
            given = ", ".join(f"{k} = {v}" for k, v in (e.get("parameters") or {}).items())
            rows.append({"notebook": stem, "seconds": float(e["seconds"]), "profile": e.get("profile"),
                         "parameters": given or "defaults", "executed": e.get("executed"),
                         "this_build": e.get("build_started") is not None
                         and e.get("build_started") == record.get("build_started")})
    return pd.DataFrame(rows, columns=TIMES_COLUMNS)


def times_note(times: pd.DataFrame, times_file: str | Path | None) -> str:
    """What the execution-times table shows, as a clause of the chapter's prose."""
    now = times[times["this_build"].astype(bool)]
    if not times_file:
        return (f"this page was executed outside attrbound book ({BOOK_TIMES_ENV} is not set), so there are no "
                "build times to show")
    if now.empty:
        note = "no chapter was executed before this one in this build"
    else:
        note = (f"the {len(now)} chapter{'s' if len(now) > 1 else ''} executed before this one in this build took "
                f"{now['seconds'].sum():.1f} s in all")
    reused = len(times) - len(now)
    if reused:
        note += (f"; {reused} page{'s were' if reused > 1 else ' was'} executed by an earlier build into the same "
                 "output folder and reused (grey)")
    return note + "; this chapter's own time is recorded when it finishes"


def execution_times_figure(table, empty: str = "no execution times"):
    """Execution time per notebook (horizontal bars, reading order top to bottom).

    ``table``: ``notebook``, ``seconds`` and ``this_build`` (bool: executed in this build, else reused from an earlier
    one). An empty table gives a figure with the text ``empty``.
    """
    from .style import COLORS, plt
    if table.empty:
        fig, ax = plt.subplots(figsize=(7.0, 1.4))
        ax.text(0.5, 0.5, empty, ha="center", va="center", wrap=True)
        ax.axis("off")
        return fig
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(table) + 1.4))
    colors = [COLORS["bound"] if now else "0.7" for now in table["this_build"]]
    bars = ax.barh(table["notebook"], table["seconds"], color=colors)
    ax.bar_label(bars, fmt="%.1f s", fontsize="small", padding=2)
    ax.invert_yaxis()
    ax.set(xlabel="execution time (s)", xlim=(0, 1.2 * float(table["seconds"].max())))
    ax.grid(axis="y", visible=False)
    if not all(table["this_build"]):
        from matplotlib.patches import Patch
        ax.legend(handles=[Patch(color=COLORS["bound"], label="executed in this build"),
                           Patch(color="0.7", label="reused from an earlier build")], loc="lower right")
    fig.tight_layout()
    return fig
