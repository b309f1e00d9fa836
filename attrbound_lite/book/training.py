"""Chapter 4 (the reference models): the zoo's recipes, accuracies with their intervals, provenance, verdicts.

Every number comes from the models' manifests (``zoo.read_manifest``), written when ``attrbound zoo build`` trained
and evaluated them; a build that retrains the zoo (``Settings.retrain``) evaluates the retrained models the same way.
"""

from __future__ import annotations

import pandas as pd

from .. import zoo
from ..stats import rate_difference, verdict, wilson
from .findings import comparison
from .tables import DATASET_NAMES, METHOD_NAMES, glue_key, radius_label, reader_table

__all__ = ["reference_names", "seed_names", "recipes_table", "zoo_results", "results_table", "seeds_table",
           "failed_values", "describe_failed", "run_label", "accuracy_values", "provenance_table"]


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


def seed_names(datasets, methods) -> list[str]:
    """Every training run of ``datasets`` x ``methods``: the reference model and its reruns (``zoo.SEEDS``)."""
    return [zoo.reference_name(ds, m, seed=seed) for ds in datasets for m in methods for seed in zoo.SEEDS]


def seeds_table(results: pd.DataFrame):
    """``zoo_results`` of ``seed_names`` for readers: per data set and method, each seed's clean and PGD accuracy."""
    def runs(frame, column, digits):
        return " / ".join(f"{v:.{digits}f}" + ("" if ok else " (failed)")
                          for v, ok in zip(frame[column], frame["trained"], strict=True))

    rows = [{"dataset": ds, "method": m, "clean accuracy, seeds 0 / 1 / 2": runs(g, "clean_accuracy", 4),
             "floor": g["floor"].iloc[0], "PGD accuracy, seeds 0 / 1 / 2": runs(g, "pgd_accuracy", 3)}
            for (ds, m), g in results.sort_values("seed").groupby(["dataset", "method"], sort=False)]
    return reader_table(pd.DataFrame(rows), caption="three training runs of every recipe")


def failed_values(results: pd.DataFrame) -> dict:
    """``ch4_failed``: the runs below their accuracy floor (``"none"`` when every run trained); ``ch4_floors``."""
    failed = results[~results["trained"]]
    floors = ", ".join(f"{DATASET_NAMES[ds]} {zoo.ACCURACY_FLOORS['natural'][ds]:g} (natural) and "
                       f"{zoo.ACCURACY_FLOORS['robust'][ds]:g} (robust)" for ds in dict.fromkeys(results["dataset"]))
    return {"ch4_n_runs": len(results), "ch4_floors": floors, "ch4_failed": describe_failed(failed)}


def run_label(name: str) -> str:
    """What tells zoo model ``name`` from the other runs of its method, in words.

    ``"seed 1"`` for a reference model; a study model, one run each, by what its study varies: ``"training radius
    0.1"``, ``"2 IG steps in training"``.
    """
    recipe = zoo.REFERENCE[name]
    if recipe.n_train is None:  # the reference models train on the whole split
        return f"seed {recipe.seed}"
    if recipe.n_train == zoo.STUDY_IG_N_TRAIN:
        return f"{recipe.options['ig_steps']} IG steps in training"
    return "the study's natural model" if recipe.train_eps is None else f"training radius {recipe.train_eps:g}"


def describe_failed(failed: pd.DataFrame) -> str:
    """``"IG-NORM on MNIST, seed 1 (clean accuracy 0.9698, floor 0.97)"``, joined by "; "; ``"none"`` if empty.

    ``failed``: rows with name, dataset, method, clean_accuracy and floor (``zoo_results`` where not ``trained``).
    """
    return "; ".join(f"{METHOD_NAMES.get(r.method, r.method)} on {DATASET_NAMES.get(r.dataset, r.dataset)}, "
                     f"{run_label(r.name)} (clean accuracy {r.clean_accuracy:.4f}, floor {r.floor:g})"
                     for r in failed.itertuples()) or "none"


def zoo_results(s, names) -> pd.DataFrame:
    """Accuracy, PGD accuracy (with Wilson intervals), training time and size of each model.

    Also ``name``, ``seed``, ``floor`` (``zoo.accuracy_floor``) and ``trained`` (clean accuracy at least the floor).

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
        n, floor = sub["n"], zoo.accuracy_floor(recipe)
        rows.append({"name": name, "dataset": recipe.dataset, "method": recipe.method, "seed": recipe.seed,
                     "train_eps": recipe.train_eps, "floor": floor, "trained": evaluation["clean_accuracy"] >= floor,
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


def accuracy_values(results: pd.DataFrame) -> dict:
    """The sentences chapter 4 states: the floors met, and PGD-AT against natural training under PGD per data set.

    The difference of the two PGD accuracies (the same test images, treated as independent trials: conservative) has
    Newcombe's interval and Fisher's p-value (``stats.rate_difference``); ``ch4_test_pgd_<ds>`` is that comparison for
    the Findings page's family (``findings.comparison``).
    """
    out = {"ch4_n_models": len(results), "ch4_train_hours": float(results["minutes"].sum()) / 60,
           "ch4_min_clean_natural": float(results.loc[results["method"] == "natural", "clean_accuracy"].min()),
           "ch4_min_clean_robust": float(results.loc[results["method"] != "natural", "clean_accuracy"].min())}
    by = results.set_index(["dataset", "method"])
    sentences = []
    for ds in dict.fromkeys(results["dataset"]):
        if (ds, "natural") not in by.index or (ds, "pgd_at") not in by.index:
            continue
        nat, pgd = by.loc[(ds, "natural"), "pgd_interval"], by.loc[(ds, "pgd_at"), "pgd_interval"]
        diff = rate_difference(round(pgd.estimate * pgd.n), pgd.n, round(nat.estimate * nat.n), nat.n)
        radius = radius_label(by.loc[(ds, "pgd_at"), "pgd_eps"])
        shown = f"at {radius}, {pgd} for PGD-AT against {nat} for natural training"
        sentences.append(f"on {DATASET_NAMES[ds]} {shown} ({verdict(diff, 'higher', 'lower')}, difference {diff})")
        out[f"ch4_test_pgd_{glue_key(ds)}"] = comparison(
            diff, DATASET_NAMES[ds], "higher", "lower", shown, unit="images",
            where=f"{DATASET_NAMES[ds]}, ℓ∞ ε = {radius}", test="Fisher's exact test")
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


def accuracy_figure(table):
    """Clean and PGD accuracy by training method, one panel per data set.

    ``table``: columns dataset, method, clean_accuracy, pgd_accuracy.
    """
    from .style import _methods, sns
    long = table.melt(id_vars=["dataset", "method"], value_vars=["clean_accuracy", "pgd_accuracy"],
                      var_name="accuracy", value_name="value")
    long["accuracy"] = long["accuracy"].map({"clean_accuracy": "clean", "pgd_accuracy": "PGD"})
    grid = sns.catplot(long, x="method", y="value", hue="accuracy", col="dataset", kind="bar",
                       order=_methods(table["method"]), height=3.2, aspect=1.15, sharey=True)
    grid.set(ylim=(0, 1), ylabel="accuracy", xlabel="")
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.tick_params(axis="x", rotation=30)
    return grid.figure
