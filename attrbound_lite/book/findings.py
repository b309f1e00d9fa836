"""The Findings page: each claim the book tests, the verdict this build measured, and where the evidence is.

The page executes after the chapters (``runner.SUMMARY_PAGES``) and reads the values they glued
(``runner.glued_values`` of their executed notebooks); every cell of its table is such a value, never typed.

    values = chapter_values(executed_dir, ["04_training", "05_bounds", "06_validation", "07_far"])
    findings_table(values)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .runner import glued_values

__all__ = ["Claim", "CLAIMS", "chapter_values", "findings_table"]


@dataclass(frozen=True)
class Claim:
    """A claim of a paper and the glued values that test it.

    Args:
        claim: the claim, in the paper's sense.
        source: who claims it.
        chapter: the notebook stem whose glued values hold the evidence.
        verdict: the glued name of the measured verdict (a sentence with its interval).
        where: the chapter and figure that show it.
        scale: the glued name of the sentence saying at which scale the evidence was gathered.
    """

    claim: str
    source: str
    chapter: str
    verdict: str
    where: str
    scale: str


CLAIMS: tuple[Claim, ...] = ()  # filled below, one per claim the book tests


def chapter_values(executed_dir: str | Path, stems) -> dict[str, dict]:
    """The glued values of each executed chapter, by stem.

    Raises:
        FileNotFoundError: a chapter has not been executed in this build (build the whole book, or that chapter first).
    """
    out = {}
    for stem in stems:
        path = Path(executed_dir) / f"{stem}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"the Findings page reads chapter {stem}, which this build has not executed "
                                    f"({path} is missing): build the whole book, or run `attrbound book --only "
                                    f"{stem}` first.")
        out[stem] = glued_values(path)
    return out


def findings_table(values: dict[str, dict], claims=None) -> pd.DataFrame:
    """One row per claim: the claim, its source, the measured verdict, where it is shown, the scale of the evidence.

    Raises:
        KeyError: a chapter did not glue a value a claim needs (names the chapter and the value).
    """
    rows = []
    for c in claims if claims is not None else CLAIMS:
        chapter = values.get(c.chapter, {})
        missing = [name for name in (c.verdict, c.scale) if name not in chapter]
        if missing:
            raise KeyError(f"chapter {c.chapter} glued no {missing}, which the Findings page needs for "
                           f"{c.claim!r}.")
        rows.append({"claim": c.claim, "source": c.source, "measured in this build": chapter[c.verdict],
                     "shown in": c.where, "scale of the evidence": chapter[c.scale]})
    return pd.DataFrame(rows)
