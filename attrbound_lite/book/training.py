"""Chapter 4 (the reference models): the zoo's recipes, accuracies with their intervals, provenance, verdicts.

Every number comes from the models' manifests (``zoo.read_manifest``), written when ``attrbound zoo build`` trained
and evaluated them; a build that retrains the zoo (``Settings.retrain``) evaluates the retrained models the same way.
"""

from __future__ import annotations

import pandas as pd

from .. import zoo
from ..stats import Interval, wilson
from .tables import DATASET_NAMES, METHOD_NAMES, radius_label, reader_table

__all__ = ["reference_names", "recipes_table", "zoo_results", "results_table", "accuracy_values", "provenance_table"]


def reference_names(datasets, methods) -> list[str]:
    """The reference models of ``datasets`` x ``methods`` (``zoo.reference_name``)."""
    return [zoo.reference_name(ds, m) for ds in datasets for m in methods]


def recipes_table(names) -> pd.DataFrame:
    """What determines each model: one row per reference model, by data set and method."""
    rows = []
    for name in names:
        r = zoo.REFERENCE[name]
        cfg = r.train_config()
        rows.append({"dataset": r.dataset, "method": r.method, "train_eps": r.train_eps,
                     "training images": r.n_train or "all", "epochs": r.epochs,
                     "starts from": "fresh weights" if r.init is None else f"{METHOD_NAMES[r.init.method]} model",
                     "inner steps x step": "-" if r.method == "natural" else
                     f"{cfg.steps} x {radius_label(cfg.alpha)}",
                     "warm-up epochs": cfg.warmup_epochs if r.method != "natural" else "-",
                     "IG steps": cfg.ig_steps if r.method == "ig_norm" else "-",
                     "augmentation": "crop + flip" if cfg.augment == "crop_flip" else "-",
                     "lr": r.lr})
    return pd.DataFrame(rows)


def zoo_results(s, names) -> pd.DataFrame:
    """Accuracy, PGD accuracy (with Wilson intervals), training time and size of each model.

    From the manifests, or (``s.retrain``) from the models retrained into the build folder, evaluated now exactly as
    ``attrbound zoo build`` evaluates them.
    """
    rows = []
    for name in names:
        recipe = zoo.REFERENCE[name]
        if s.retrain:
            model, sidecar = s.load(name)
            evaluation = zoo.evaluate_reference(model, recipe, s.device)
            history = pd.DataFrame(sidecar["metadata"]["history"])
            seconds, size = float(history["seconds"].sum()), float("nan")
        else:
            manifest = zoo.read_manifest(name)
            evaluation, seconds, size = manifest["evaluation"], manifest["seconds"], manifest["size_bytes"] / 1e6
        sub = evaluation["subset"]
        n = sub["n"]
        rows.append({"dataset": recipe.dataset, "method": recipe.method, "train_eps": recipe.train_eps,
                     "clean_accuracy": evaluation["clean_accuracy"], "n_test": evaluation["n_test"],
                     "pgd_eps": sub["pgd"]["eps"], "n": n, "clean_subset": sub["clean_accuracy"],
                     "pgd_accuracy": sub["pgd_accuracy"],
                     "pgd_interval": wilson(round(sub["pgd_accuracy"] * n), n),
                     "minutes": seconds / 60, "size_mb": size})
    return pd.DataFrame(rows)


def results_table(results: pd.DataFrame, caption: str):
    """``zoo_results`` for readers: data set, method, radii, accuracies (PGD with its interval), minutes, size."""
    shown = results[["dataset", "method", "train_eps", "clean_accuracy", "pgd_eps", "pgd_interval", "minutes",
                     "size_mb"]]
    return reader_table(shown.assign(pgd_interval=shown["pgd_interval"].map(str)), caption=caption,
                        headers={"clean_accuracy": "clean accuracy (whole test split)", "pgd_eps": "PGD radius",
                                 "pgd_interval": "PGD accuracy (95 % interval)", "train_eps": "training radius",
                                 "minutes": "training minutes", "size_mb": "size (MB)"})


def _versus(a: Interval, b: Interval) -> str:
    """Rates compared by their (unpaired) Wilson intervals: above, below, or overlapping."""
    if a.low > b.high:
        return "higher"
    if a.high < b.low:
        return "lower"
    return "not distinguishable (the intervals overlap)"


def accuracy_values(results: pd.DataFrame) -> dict:
    """The sentences chapter 4 states: the floors met, and PGD-AT against natural training under PGD per data set."""
    out = {"ch4_n_models": len(results), "ch4_train_hours": float(results["minutes"].sum()) / 60,
           "ch4_min_clean_natural": float(results.loc[results["method"] == "natural", "clean_accuracy"].min()),
           "ch4_min_clean_robust": float(results.loc[results["method"] != "natural", "clean_accuracy"].min())}
    by = results.set_index(["dataset", "method"])
    sentences = []
    for ds in dict.fromkeys(results["dataset"]):
        if (ds, "natural") not in by.index or (ds, "pgd_at") not in by.index:
            continue
        nat, pgd = by.loc[(ds, "natural"), "pgd_interval"], by.loc[(ds, "pgd_at"), "pgd_interval"]
        sentences.append(f"on {DATASET_NAMES[ds]} at {radius_label(by.loc[(ds, 'pgd_at'), 'pgd_eps'])}, "
                         f"{pgd} for PGD-AT against {nat} for natural training ({_versus(pgd, nat)})")
    out["ch4_pgd_sentence"] = "; ".join(sentences)
    return out


def provenance_table(names) -> pd.DataFrame:
    """Where each model comes from: its key, the sha256 of its weights, the machine, torch and the training time."""
    rows = []
    for name in names:
        m = zoo.read_manifest(name)
        rows.append({"model": f"{DATASET_NAMES[m['recipe']['dataset']]}, {METHOD_NAMES[m['recipe']['method']]}",
                     "reference name": name, "key": m["key"], "sha256": m["sha256"][:16],
                     "trained on": f"{m['hardware']['processor']} ({m['hardware']['torch_threads']} threads)",
                     "torch": m["torch"], "seconds": round(m["seconds"])})
    return pd.DataFrame(rows)
