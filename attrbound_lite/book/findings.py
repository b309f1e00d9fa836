"""The Findings page: each claim the book tests, the verdict this build measured, and where the evidence is.

The page executes after the chapters (``runner.SUMMARY_PAGES``) and reads the values they glued
(``runner.glued_values`` of their executed notebooks); every cell of its table is such a value, never typed.

    values = chapter_values(executed_dir, CHAPTERS)      # what the chapters glued
    findings_table(values)                               # one row per claim, every cell from those values
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .runner import glued_values

__all__ = ["Claim", "CLAIMS", "CHAPTERS", "chapter_values", "findings_table"]


@dataclass(frozen=True)
class Claim:
    """A claim of a paper and the templates that state this build's evidence on it.

    Args:
        claim: the claim, in the paper's sense.
        source: who claims it.
        chapter: the notebook stem whose glued values hold the evidence.
        measured: a ``str.format`` template over that chapter's glued values: the verdict with its interval.
        where: the chapter and figure that show it.
        scale: a template of the same kind: how much evidence, against the papers' scale.
    """

    claim: str
    source: str
    chapter: str
    measured: str
    where: str
    scale: str


_FAR = "FAR 2021 (its methods as reconstructed in chapter 4)"
_DS = (("MNIST", "mnist"), ("Fashion-MNIST", "fashion_mnist"), ("CIFAR-10 subset", "cifar10_subset"))
_CH7_ATTACK = ("IFIA steered by IG, {ch7_attack} (RAR: {ch7_rar_attack}); small CNNs trained on two CPU cores "
               "(chapter 4): smaller than the papers'")
_CH7_SCALE = ("{ch7_n_ifia} correctly classified test images per model, {ch7_seeds} training runs per method "
              "(intervals over the runs; failed runs left out: {ch7_failed}); " + _CH7_ATTACK)
_CH7_STUDY = ("one training run per model, models below {ch7_study_floor} clean accuracy left out; "
              "{ch7_n_study} test images; " + _CH7_ATTACK)


def _per_dataset(template: str) -> str:
    return "; ".join(f"{name}: " + template.replace("<ds>", key) for name, key in _DS)


CLAIMS: tuple[Claim, ...] = (
    Claim("The first-order bound is an upper bound of the deviations attacks reach", "Wang & Kong 2023",
          "06_validation", "{ch6_l2_smallest}; {ch6_linf_smallest}", "chapter 6, violation rates by radius",
          "{ch6_n_images} test images per data set, every reference model, attribution PGD and IFIA with "
          "{ch6_steps} steps and {ch6_restarts} restart(s): smaller than the paper's 10 million attacks"),
    Claim("... and where it stops being one (the linearisation's limit)", "Wang & Kong 2023 (not stated there)",
          "06_validation", "{ch6_l2_onset}; {ch6_linf_onset}", "chapter 6, achieved / bound against the radius",
          "as above"),
    Claim("A bound over the whole ball (mean-value inequality, supremum estimated by ascent) holds where the "
          "first-order bound is exceeded", "this book (beyond the papers)", "08_region",
          "{ch8_l2_point}; {ch8_l2_region}. {ch8_linf_point}; {ch8_linf_region}",
          "the region-bound chapter, violation rates of both bounds",
          "the first {ch8_n_images} images per model of the validation sweep, {ch8_n_models} reference models, "
          "{ch8_steps} ascent steps, {ch8_restarts} start(s)"),
    Claim("Robust training shrinks the worst-case deviation (relative bound, against natural training)",
          "FAR 2021; RAR 2019", "05_bounds",
          _per_dataset("at {ch5_rel_<ds>_eps}, {ch5_rel_<ds>_summary}"), "chapter 5, bounds by method",
          "{ch5_n_images} test images per model or more, paired by image; one training run (seed 0) per method, "
          "so a difference between methods may be one between runs"),
    Claim("Attributions of naturally trained networks are fragile: IFIA moves the top-k pixels more than random "
          "noise of the same radius", "Ghorbani et al. 2019", "07_far", _per_dataset("{ch7_fragile_<ds>_natural}"),
          "chapter 7, the phenomenon", _CH7_SCALE),
    Claim("IG-NORM makes attributions more robust than natural training", "RAR 2019", "07_far",
          _per_dataset("{ch7_sentence_<ds>_ig_norm}"), "chapter 7, IFIA by method", _CH7_SCALE),
    Claim("AAT makes attributions more robust than natural training", _FAR, "07_far",
          _per_dataset("{ch7_sentence_<ds>_aat}"), "chapter 7, IFIA by method", _CH7_SCALE),
    Claim("AdvAAT makes attributions more robust than natural training", _FAR, "07_far",
          _per_dataset("{ch7_sentence_<ds>_advaat}"), "chapter 7, IFIA by method", _CH7_SCALE),
    Claim("FAR's methods make attributions better than or comparable to the earlier methods (PGD-AT, IG-NORM)",
          _FAR, "07_far", _per_dataset("{ch7_versus_<ds>}"), "chapter 7, FAR against the earlier methods",
          _CH7_SCALE),
    Claim("FAR's robustness depends less on the training radius than earlier methods'", _FAR, "07_far",
          "{ch7_sentence_eps}", "chapter 7, training-radius study",
          "MNIST only, 12,000 training images, one epoch per model, " + _CH7_STUDY),
    Claim("FAR's robustness depends less on attribution estimation parameters (IG steps) than earlier methods'",
          _FAR, "07_far", "{ch7_sentence_steps}", "chapter 7, IG-steps study",
          "MNIST only, 6,000 training images, one epoch per model, " + _CH7_STUDY),
    Claim("Adversarial training (PGD-AT) raises accuracy under PGD", "Madry et al. 2018", "04_training",
          "{ch4_pgd_sentence}", "chapter 4, accuracy figure",
          "the first 1,000 test images per model, RAR's PGD at the training radius, one random start"),
)


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


def findings_table(values: dict[str, dict], claims=None) -> pd.DataFrame:
    """One row per claim: the claim, its source, the measured verdict, where it is shown, the scale of the evidence.

    Args:
        values: the glued values by chapter (``chapter_values``).
        claims: the claims (default ``CLAIMS``).

    Returns:
        The table, every cell of the measured and scale columns filled from glued values.

    Raises:
        ValueError: a chapter did not glue a value a claim needs (names the chapter and the value).
    """
    rows = []
    for c in claims if claims is not None else CLAIMS:
        chapter = values.get(c.chapter, {})
        try:
            measured, scale = c.measured.format_map(chapter), c.scale.format_map(chapter)
        except KeyError as err:
            raise ValueError(f"chapter {c.chapter} glued no {err.args[0]!r}, which the Findings page needs for "
                           f"{c.claim!r}.") from None
        rows.append({"claim": c.claim, "source": c.source, "measured in this build": measured, "shown in": c.where,
                     "scale of the evidence": scale})
    return pd.DataFrame(rows)
