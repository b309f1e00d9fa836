"""The Findings page: each claim the book tests, the verdict this build measured, and where the evidence is.

The page executes after the chapters (``runner.SUMMARY_PAGES``) and reads the values they glued
(``runner.glued_values`` of their executed notebooks); every cell of its table is such a value, never typed.

    values = chapter_values(executed_dir, CHAPTERS)      # what the chapters glued
    findings_table(values)                               # one row per claim, every cell from those values
    family_table(values)                                 # the comparisons behind the verdicts, Holm-adjusted

The comparisons the page states are one family: a chapter glues each as a record (``comparison``: its interval,
p-value and verdict words), a claim's template names them (``{test:KEY}``, or ``{tests:KEY1,KEY2}`` for a list
grouped by verdict), and a verdict word is printed only where Holm's procedure over the whole family rejects
(``stats.holm``, family-wise error ``FAMILY_ALPHA``); the others read ``NOT_ESTABLISHED``. Counts of violations
(rows 1-2) are not comparisons: one confirmed violation refutes an upper bound.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..stats import Interval, holm, sig
from .runner import glued_values

__all__ = ["Claim", "CLAIMS", "CHAPTERS", "FAMILY_ALPHA", "NOT_ESTABLISHED", "comparison", "family_text",
           "chapter_values", "findings_table", "page_table", "scale_values", "family_table", "family_values",
           "protocol_values", "PROTOCOLS"]

FAMILY_ALPHA = 0.05  # the family-wise error rate of the page's verdicts (Holm)
NOT_ESTABLISHED = "not established after Holm"  # the verdict of a comparison the family's correction does not reject


TESTS = {"trained runs": "Student's t over the runs",
         "images": "bootstrap over the images (p from its standard error, normal approximation)"}


def comparison(interval: Interval, label: str, above: str = "larger", below: str = "smaller",
               shown: str | None = None, reason: str | None = None, unit: str = "units", min_n: int = 3,
               where: str = "", test: str | None = None) -> dict:
    """One comparison of the Findings family, in the plain values a chapter glues (``book.glue_all``).

    Args:
        interval: the comparison's estimate, 95 % interval and p-value (``stats.bootstrap``, ``stats.across_seeds``).
        label: what is compared, in readers' words ("AAT", "AAT vs PGD-AT").
        above: the verdict when the family rejects and the estimate is above 0.
        below: the verdict when the family rejects and the estimate is below 0.
        shown: the estimate and interval as the page prints them (default ``str(interval)``).
        reason: why the comparison is not made (e.g. one trained run): it is then not in the family.
        unit: what the interval counts, in words ("trained runs", "images"), for the reasons below.
        min_n: the fewest units a comparison is made on. Fewer (two trained runs: Student's t with one degree of
            freedom, which no family correction lets pass), or units that all agree (no p-value), leave it out of
            the family with that reason.
        where: the data set and radius the comparison is made at ("MNIST, ℓ∞ ε = 0.3"), for the family table.
        test: how its p-value was computed (default by ``unit``: ``TESTS``).

    Returns:
        ``{"label", "estimate", "low", "high", "n", "p", "above", "below", "shown", "reason", "unit", "where",
        "test"}``; ``p`` None where the comparison is not made or has no p-value.
    """
    if not isinstance(interval, Interval):
        raise TypeError(f"comparison takes a stats.Interval, got {type(interval).__name__}.")

    def finite(value):
        return float(value) if value is not None and math.isfinite(value) else None

    if reason is None and interval.n < min_n:
        reason = f"only {interval.n} {unit}: too few to test"
    elif reason is None and finite(interval.p_value) is None:
        reason = f"no test: the {unit} all agree" if interval.n >= 2 else f"no test on {interval.n} {unit}"

    return {"label": label, "estimate": finite(interval.estimate), "low": finite(interval.low),
            "high": finite(interval.high), "n": int(interval.n),
            "p": None if reason is not None else finite(interval.p_value), "above": above, "below": below,
            "shown": shown if shown is not None else str(interval), "reason": reason, "unit": unit, "where": where,
            "test": test if test is not None else TESTS.get(unit, "")}


@dataclass(frozen=True)
class Claim:
    """A claim of a paper and the templates that state this build's evidence on it.

    Args:
        claim: the claim, in the paper's sense.
        source: who claims it.
        chapter: the notebook stem whose glued values hold the evidence.
        measured: a ``str.format`` template over that chapter's glued values: the verdict with its interval.
        where: the chapter and figure that show it.
        scale: a template of the same kind: how much evidence (how it was measured: ``PROTOCOLS``).
        link: the page and anchor of that figure or table, relative to the Findings page.
    """

    claim: str
    source: str
    chapter: str
    measured: str
    where: str
    scale: str
    link: str


_FAR = "FAR 2021 (methods as rebuilt in chapter 4)"
_ROBUST = ("pgd_at", "ig_norm", "aat", "advaat")
_DS = (("MNIST", "mnist"), ("Fashion-MNIST", "fashion_mnist"), ("CIFAR-10 subset", "cifar10_subset"))
_CH6_SCALE = ("{ch6_n_images} test images per data set, 15 models; {ch6_float64_survive} of {ch6_float64_counted} "
              "violations confirmed in float64")
_CH7_SCALE = "{ch7_n_short} test images per model; up to {ch7_seeds} trained runs per method (failed runs left out)"
_CH7_STUDY = "MNIST, {size} training images, one run per model, {ch7_n_study} test images"
_TESTS_CH6 = "{tests:" + ",".join(f"ch6_test_cosine_<ds>_linf_{m}" for m in _ROBUST) + "}"
_TESTS_CH5 = "{tests:" + ",".join(f"ch5_rel_<ds>_{m}_test" for m in _ROBUST) + "}"
_TESTS_VERSUS = "{tests:" + ",".join(f"ch7_test_versus_<ds>_{m}_{e}" for m in ("aat", "advaat")
                                     for e in ("pgd_at", "ig_norm")) + "}"


def _per_dataset(template: str) -> str:
    return "; ".join(f"{name}: " + template.replace("<ds>", key) for name, key in _DS)


CLAIMS: tuple[Claim, ...] = (
    Claim("The first-order bound is an upper bound of the deviations attacks reach", "Wang & Kong 2023",
          "06_validation", "{ch6_l2_smallest}; {ch6_linf_smallest}; {ch6_budget_caveat}",
          "chapter 6, violations by radius", _CH6_SCALE, "06_validation.html#fig-violations"),
    Claim("... and where it stops being one (the linearisation's limit)",
          "this book (from Wang & Kong 2023's linearisation)",
          "06_validation", "{ch6_l2_onset}; {ch6_linf_onset}; {ch6_budget_caveat}",
          "chapter 6, achieved / bound against the radius",
          _CH6_SCALE, "06_validation.html#fig-ratio"),
    Claim("A bound over the whole ball (chapter 8) is exceeded less often than the first-order bound",
          "this book (beyond the papers)", "08_region",
          "{ch8_l2_reduction}; {ch8_linf_reduction} (no test: the ascent starts at x, so the region bound is never "
          "below the first-order one and cannot be exceeded more often; the row says by how much less)",
          "the region-bound chapter, violation rates of both bounds",
          "{ch8_n_images} images per model, {ch8_n_models} models", "08_region.html#fig-region-rates"),
    Claim("Robust training keeps the attacked saliency map closer to the clean one than natural training (the lowest "
          "cosine the attacks reach)", "FAR 2021; RAR 2019", "06_validation",
          _per_dataset("at {ch6_radius_<ds>_linf}, " + _TESTS_CH6) + "; the relative bound on the same images: "
          "{ch6_disagree_short}", "chapter 6, each method minus natural",
          "{ch6_n_images} test images per data set, paired by image; one training run (seed 0) per method",
          "06_validation.html#fig-method-differences"),
    Claim("... and shrinks the first-order bound (relative bound, against natural training)",
          "FAR 2021; RAR 2019", "05_bounds",
          _per_dataset("at {ch5_rel_<ds>_eps}, " + _TESTS_CH5) + "; at these radii the bound is at least "
          "‖A(x)‖ (the cosine bound vacuous) for {ch5_vacuous_rar} of the images and models, so the row compares "
          "sensitivity, not guarantees: to first order the ratio to natural training is the same at every radius, and "
          "with chapter 5's ℓ∞ bound ε √n σmax it is the ratio of σmax / ‖A(x)‖, the ℓ2 one (chapter 6's tighter "
          "row-sum form is not proportional to σmax and may order the methods differently)",
          "chapter 5, bounds by method",
          "{ch5_n_images} test images per model or more, paired by image; one training run (seed 0) per method",
          "05_bounds.html#fig-methods-ratio"),
    Claim("Attributions of naturally trained networks are fragile: IFIA moves the top-k pixels more than random "
          "noise of the same radius", "Ghorbani et al. 2019", "07_far",
          _per_dataset("{test:ch7_test_fragile_<ds>_natural}"), "chapter 7, the phenomenon", _CH7_SCALE,
          "07_far.html#fig-far-example"),
    Claim("IG-NORM makes attributions more robust than natural training", "RAR 2019", "07_far",
          _per_dataset("{test:ch7_test_<ds>_ig_norm}"), "chapter 7, IFIA by method", _CH7_SCALE,
          "07_far.html#fig-far-methods"),
    Claim("AAT makes attributions more robust than natural training", _FAR, "07_far",
          _per_dataset("{test:ch7_test_<ds>_aat}"), "chapter 7, IFIA by method", _CH7_SCALE,
          "07_far.html#fig-far-methods"),
    Claim("AdvAAT makes attributions more robust than natural training", _FAR, "07_far",
          _per_dataset("{test:ch7_test_<ds>_advaat}"), "chapter 7, IFIA by method", _CH7_SCALE,
          "07_far.html#fig-far-methods"),
    Claim("FAR's methods make attributions better than or comparable to the earlier methods (PGD-AT, IG-NORM)",
          _FAR, "07_far", _per_dataset(_TESTS_VERSUS), "chapter 7, FAR against the earlier methods", _CH7_SCALE,
          "07_far.html#far-against-the-earlier-methods"),
    Claim("FAR's robustness depends less on the training radius than earlier methods'", _FAR, "07_far",
          "{test:ch7_test_eps}", "chapter 7, training-radius study", _CH7_STUDY.replace("{size}", "12,000"),
          "07_far.html#fig-far-eps"),
    Claim("FAR's robustness depends less on attribution estimation parameters (IG steps) than earlier methods'",
          _FAR, "07_far", "{test:ch7_test_steps}", "chapter 7, IG-steps study",
          _CH7_STUDY.replace("{size}", "6,000"), "07_far.html#fig-far-steps"),
    Claim("Adversarial training (PGD-AT) raises accuracy under PGD", "Madry et al. 2018", "04_training",
          _per_dataset("{test:ch4_test_pgd_<ds>}"), "chapter 4, accuracy figure",
          "the first 1,000 test images per model", "04_training.html#fig-accuracy"),
)

# How each chapter measured, stated once under the table (the rows give only the scale).
PROTOCOLS = {
    "06_validation": "Chapters 6 and 8 attack with attribution PGD and IFIA, {ch6_budget} each; {ch6_budget_short}.",
    "08_region": "The region bound's supremum is estimated by {ch8_steps} ascent steps (starting points per unit: "
                 "{ch8_restarts}).",
    "07_far": "Chapter 7 compares training methods with IFIA steered by integrated gradients, {ch7_attack} (where "
              "this differs from RAR's protocol, chapter 7 says so and measures the difference), on the test images "
              "every trained run classifies correctly, {ch7_n_ifia}; that comparison was {ch7_headline_source}; "
              "{ch7_budget_short}. Its studies attack with {ch7_live_budget}. "
              "It leaves out failed runs (below their accuracy floor: {ch7_failed}) and study models below "
              "{ch7_study_floor} clean accuracy. FAR's \"comparable\" is tested two-sided against a margin of "
              "{ch7_far_margin} in top-k intersection (\"comparable or better\" above it, \"worse\" below it), set "
              "before its comparisons were looked at but after the seed-0 budget grid (which includes RAR's budget, on "
              "32 images) had been seen. Chapter 6's row tests the cosine, a choice made after the relative "
              "deviation's results had been seen (chapter 6 says why).",
    "04_training": "Chapter 4 measures accuracy under RAR's PGD at the training radius, one random start. All models "
                   "are small CNNs trained on two CPU cores: smaller than the papers'.",
}


def chapter_values(executed_dir: str | Path, stems) -> dict[str, dict]:
    """The glued values of each executed chapter, by stem.

    Raises:
        FileNotFoundError: a chapter has not been executed in this build (build the whole book, or that chapter first).
    """
    out = {}
    for stem in [stems] if isinstance(stems, str) else stems:  # one chapter's stem, or several
        path = Path(executed_dir) / f"{stem}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"the Findings page reads chapter {stem}, which this build has not executed "
                                    f"({path} is missing): build the whole book, or run `attrbound book --only "
                                    f"{stem}` first.")
        out[stem] = glued_values(path)
    return out


CHAPTERS = tuple(dict.fromkeys(claim.chapter for claim in CLAIMS))  # the chapters the page reads


def _family_keys(claims) -> list[tuple[str, str]]:
    """``(claim, key)`` of every comparison the claims' templates name (``{test:KEY}``, ``{tests:K1,K2}``), in order."""
    keys, seen = [], set()
    for c in claims:
        for _, field, spec, _ in string.Formatter().parse(c.measured):
            if field in ("test", "tests"):
                # a comparison named by two claims is one member of the family, listed under the first claim
                keys += [(c.claim, k) for k in spec.split(",") if not (k in seen or seen.add(k))]
    return keys


def _records(values: dict[str, dict]) -> dict[str, dict]:
    """Every glued comparison record of every chapter, by key; a key two chapters glue, or a partial record, refused."""
    records, where = {}, {}
    fields = ("label", "estimate", "n", "p", "above", "below", "shown", "reason")
    for name, chapter in values.items():
        for k, v in chapter.items():
            if not (isinstance(v, dict) and "above" in v):
                continue
            if k in records:
                raise ValueError(f"the comparison {k!r} is glued by two chapters, {where[k]} and {name}; each "
                                 "comparison of the family must have one name (rename one of them).")
            missing = [f for f in fields if f not in v]
            if missing:
                raise ValueError(f"chapter {name} glued the comparison {k!r} without {missing}; glue the record "
                                 "findings.comparison returns.")
            records[k], where[k] = v, name
    return records


def family_table(values: dict[str, dict], claims=None, alpha: float = FAMILY_ALPHA) -> pd.DataFrame:
    """The comparisons the page states, one row each, with their p-values adjusted by Holm over the whole family.

    Args:
        values: the glued values by chapter (``chapter_values``).
        claims: the claims (default ``CLAIMS``).
        alpha: the family-wise error rate.

    Returns:
        Columns ``claim``, ``key`` (the glued name), ``comparison`` (the record's label), ``where`` (data set and
        radius), ``difference`` (estimate and 95 % interval), ``n`` (the count and its unit: images, trained runs ...),
        ``test`` (how ``p`` was computed), ``p``, ``holm_p`` (NaN: not in the family), ``verdict``.

    Raises:
        ValueError: a claim names a comparison no chapter glued.
    """
    records = _records(values)
    rows = []
    for claim, key in _family_keys(claims if claims is not None else CLAIMS):
        if key not in records:
            raise ValueError(f"no chapter glued the comparison {key!r}, which the Findings page needs for {claim!r}.")
        r = records[key]
        rows.append({"claim": claim, "key": key, "comparison": r["label"], "where": r.get("where", ""),
                     "difference": r["shown"], "n": f"{r['n']} {r.get('unit', 'units')}", "test": r.get("test", ""),
                     "p": math.nan if r["p"] is None else r["p"], "reason": r["reason"]})
    reject, adjusted = holm([r["p"] for r in rows], alpha) if rows else ([], [])
    for r, rejected, holm_p in zip(rows, reject, adjusted, strict=True):
        record = records[r["key"]]
        r["holm_p"] = holm_p
        r["verdict"] = (r["reason"] if r["reason"] is not None else NOT_ESTABLISHED if not rejected
                        else record["above"] if record["estimate"] > 0 else record["below"])
    frame = pd.DataFrame(rows, columns=["claim", "key", "comparison", "where", "difference", "n", "test", "p",
                                        "reason", "holm_p", "verdict"])
    return frame.drop(columns="reason")


def _p_text(p: float) -> str:
    return "–" if not math.isfinite(p) else "< 10⁻⁶" if p < 1e-6 else sig(p, 2)


def family_text(family: pd.DataFrame) -> pd.DataFrame:
    """``family_table`` for the page: p-values to two digits (below 1e-6 as "< 10⁻⁶"), "–" where not in the family."""
    out = family.drop(columns="key").copy()
    for column in ("p", "holm_p"):
        out[column] = out[column].map(_p_text)
    return out


def protocol_values(values: dict[str, dict]) -> dict:
    """``findings_protocol``: how each chapter measured (``PROTOCOLS``), filled from its glued values."""
    try:
        return {"findings_protocol": " ".join(t.format_map(values[ch]) for ch, t in PROTOCOLS.items())}
    except KeyError as err:
        raise ValueError(f"the protocols under the Findings table need {err.args[0]!r}, which no chapter the "
                         "page reads glued.") from None


def family_values(family: pd.DataFrame, alpha: float = FAMILY_ALPHA) -> dict:
    """``findings_family``: the family's size and how many of its verdicts Holm supports, by kind, in one sentence.

    The kinds, by the unit a comparison counts: training recipes over their trained runs (would another run of the
    recipe do the same?), single trained models over test images (does this model do so on these images?), and any
    other unit by its name.
    """
    made = family["holm_p"].notna()
    stated = made & (family["verdict"] != NOT_ESTABLISHED)
    unadjusted = int((made & (family["p"] < alpha)).sum())
    unit = family["n"].str.split(" ", n=1).str[1]

    def of(kind):
        mask = unit == kind
        n = int((made & mask).sum())
        words = {"trained runs": "of training recipes over their trained runs",
                 "images": "of single trained models (seed 0) over test images"}.get(kind, f"over {kind}")
        return f"{int((stated & mask).sum())} of the {n} comparison{'s' if n != 1 else ''} {words}"

    kinds = [of(kind) for kind in sorted(set(unit[made]), key=lambda k: (k != "trained runs", k != "images", k))]
    left = int((~made).sum())
    return {"findings_family": (
        f"{int(made.sum())} comparisons on this page form one family; after Holm's procedure at a family-wise error "
        f"of {alpha * 100:g} %, {int(stated.sum())} of their verdicts stand, for or against the papers' claims "
        f"({unadjusted} would pass at 5 % each on their own): {' and '.join(kinds)}; {left} "
        f"comparison{' is' if left == 1 else 's are'} not made, for the reason given")}


class _Verdicts:
    """Renders ``{test:KEY}`` and ``{tests:K1,K2}`` in a claim's template from the family table's verdicts."""

    def __init__(self, family: pd.DataFrame):
        self.rows = family.set_index("key")  # each comparison once: the family has unique keys

    def __format__(self, spec: str) -> str:
        if "," not in spec:
            row = self.rows.loc[spec]  # a comparison not made reads its reason alone
            return row["verdict"] if pd.isna(row["holm_p"]) else f"{row['verdict']}, {row['difference']}"
        groups: dict[str, list[str]] = {}
        for key in spec.split(","):
            row = self.rows.loc[key]
            label = row["comparison"]
            if row["verdict"] == NOT_ESTABLISHED:  # made but not supported: its interval says which way it leans
                label += f" ({row['difference']})"
            groups.setdefault(row["verdict"], []).append(label)
        return "; ".join(f"{word} for {', '.join(labels)}" for word, labels in groups.items())


def page_table(table: pd.DataFrame) -> pd.DataFrame:
    """``findings_table`` as the page shows it, in two screens.

    Two columns: the claim with its source and a link to where it is shown beneath it, and the measurement; no scale
    column (``scale_values`` states each scale once under the table).
    """
    claim = table["claim"] + "<br><small>" + table["source"] + " · " + table["shown in"] + "</small>"
    return pd.DataFrame({"claim (source · shown in)": claim, "measured in this build": table["measured in this build"]})


def scale_values(table: pd.DataFrame) -> dict:
    """``findings_scale``: the scale of the evidence, each distinct one once, with the places that share it.

    ``"chapter 6, violations by radius and chapter 6, achieved / bound against the radius: 64 test images per data
    set, 15 models; ..."``, in the table's order.
    """
    places: dict[str, list[str]] = {}
    for shown, scale in zip(table["shown in"], table["scale of the evidence"], strict=True):
        where = places.setdefault(scale, [])
        if (place := re.sub(r"<[^>]+>", "", shown)) not in where:  # three rows shown in one figure: named once
            where.append(place)
    return {"findings_scale": "; ".join(f"{' and '.join(where)}: {scale}" for scale, where in places.items())}


def findings_table(values: dict[str, dict], claims=None) -> pd.DataFrame:
    """One row per claim: the claim, its source, the measured verdict, where it is shown, the scale of the evidence.

    Args:
        values: the glued values by chapter (``chapter_values``).
        claims: the claims (default ``CLAIMS``).

    Returns:
        The table, every cell of the measured and scale columns filled from glued values; a comparison's verdict word
        is Holm's over the page's family (``family_table``), with the comparison's own 95 % interval.

    Raises:
        ValueError: a chapter did not glue a value a claim needs (names the chapter and the value).
    """
    claims = claims if claims is not None else CLAIMS
    verdicts = _Verdicts(family_table(values, claims))
    rows = []
    for c in claims:
        chapter = values.get(c.chapter, {})
        try:
            measured = c.measured.format_map({**chapter, "test": verdicts, "tests": verdicts})
            scale = c.scale.format_map(chapter)
        except KeyError as err:
            raise ValueError(f"chapter {c.chapter} glued no {err.args[0]!r}, which the Findings page needs for "
                           f"{c.claim!r}.") from None
        rows.append({"claim": c.claim, "source": c.source, "measured in this build": measured,
                     "shown in": f'<a href="{c.link}">{c.where}</a>', "scale of the evidence": scale})
    return pd.DataFrame(rows)
