"""The summary of a sweep folder, finished or not."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pandas as pd

from .._checks import check_flag
from ..experiments import ROW_COLUMNS, summarize
from .runner import _read_manifest

__all__ = ["SweepReport", "report", "PAPER_ATTACKS"]

PAPER_ATTACKS = 10_000_000


@dataclass
class SweepReport:
    """What ``report`` found.

    Args:
        summary: ``experiments.summarize`` of the rows run so far (per model, eps, norm, attribution, attack).
        n_attacks: rows run.
        n_attacks_planned: rows of the whole sweep.
        shards_done: shard files present.
        shards_total: shards of the whole sweep.
        complete: whether the sweep finished (its merged table written).
    """

    summary: pd.DataFrame
    n_attacks: int
    n_attacks_planned: int
    shards_done: int
    shards_total: int
    complete: bool

    def __str__(self) -> str:
        state = "complete" if self.complete else "INCOMPLETE (rerun the sweep command to finish it)"
        head = (f"{state}: {self.shards_done} of {self.shards_total} shards, {self.n_attacks:,} of "
                f"{self.n_attacks_planned:,} attacks run ({self.n_attacks / PAPER_ATTACKS:.2%} of the paper's 10 "
                "million)")
        if self.summary.empty:
            return head
        columns = ["model", "attribution", "norm", "eps", "attack", "n_attacks", "n_kept", "violation_rate",
                   "ratio_euclidean_median", "ratio_euclidean_p95", "ratio_cosine_median", "ratio_cosine_p95"]
        table = self.summary[columns].rename(columns=lambda c: c.replace("ratio_", "").replace("euclidean", "euc")
                                             .replace("cosine", "cos").replace("violation_rate", "violations"))
        return (f"{head}\nviolation rate among attacks that kept the label; tightness = achieved / bound (Euclidean "
                f"distance; cosine: 1 - cos), median and 95th percentile\n"
                + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _read_results(path: Path, out: Path) -> pd.DataFrame:
    """A results file of the sweep; an unreadable one is named with the command that rebuilds it."""
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow's errors have no common base: each is re-raised with the fix
        raise ValueError(f"cannot read {path} ({type(err).__name__}: {str(err)[:120]}); the file is damaged: delete "
                         f"it and rerun `attrbound sweep CONFIG --out {out}` (the sweep resumes and rewrites it).") \
            from err


def report(out_dir: str | os.PathLike, *, quiet: bool = False, file: TextIO | None = None) -> SweepReport:
    """Summary tables and attack count of the sweep in ``out_dir`` (an unfinished one: of its finished shards).

    Args:
        out_dir: a sweep folder.
        quiet: do not print.
        file: where to print (default stdout).

    Returns:
        A ``SweepReport``.

    Raises:
        FileNotFoundError: ``out_dir`` holds no sweep.
        TypeError: ``quiet`` is not True or False.
    """
    quiet = check_flag(quiet, "quiet")
    out = Path(out_dir)
    manifest = _read_manifest(out)
    if manifest is None:
        raise FileNotFoundError(f"{out} holds no sweep (no manifest.json); run `attrbound sweep CONFIG --out {out}`.")
    files = [out / s["file"] for s in manifest["shards"]]
    done = [f for f in files if f.is_file()]
    complete = manifest.get("status") == "complete" and (out / "results.parquet").is_file()
    if complete:
        table = _read_results(out / "results.parquet", out)
    elif done:
        table = pd.concat([_read_results(f, out) for f in done], ignore_index=True)
    else:
        table = pd.DataFrame(columns=list(ROW_COLUMNS))
    result = SweepReport(summarize(table) if len(table) else pd.DataFrame(), len(table),
                         int(manifest.get("n_attacks_planned", 0)), len(done), len(files), complete)
    if not quiet:
        print(f"sweep {out}: {result}", file=file or sys.stdout)
    return result
