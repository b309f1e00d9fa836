"""Chapter 4 (training the models): train or load the book's models and evaluate them.

Also the sentences the chapter's prose quotes about them (``accuracy_values``).
"""

from __future__ import annotations

import pandas as pd

from ..data import load_dataset
from ..evaluation import evaluate
from ..zoo import get_model, training_history

__all__ = ["recipes_table", "train_models", "accuracy_table", "accuracy_values"]


def recipes_table(recipes: dict) -> pd.DataFrame:
    """One row per ``(dataset, method): Recipe``: what determines each model, and its cache key."""
    return pd.DataFrame([{"dataset": ds, "method": m, "train_eps": r.train_eps, "epochs": r.epochs,
                          "n_train": r.n_train or "all", "width": r.model["width"],
                          "inner_steps": r.options.get("steps", "-"), "key": r.key}
                         for (ds, m), r in recipes.items()])


def train_models(recipes: dict, model_dir, device) -> tuple[dict, pd.DataFrame, dict]:
    """Train (or load from ``model_dir``) every recipe, in order: ``(models, table, values)``.

    ``models``: the models by ``(dataset, method)``; ``table``: one row of training time and last-epoch loss and
    accuracy per model; ``values``: the values the prose quotes.
    """
    models, rows = {}, []
    for (ds, m), recipe in recipes.items():
        model, meta = get_model(recipe, model_dir, device=device, progress=False)
        models[ds, m] = model
        history = training_history(meta)
        rows.append({"dataset": ds, "method": m, "n_train": meta["metadata"]["data"]["size"], "epochs": len(history),
                     "train_seconds": history["seconds"].sum(), "final_train_loss": history["loss"].iloc[-1],
                     "final_train_accuracy": history["accuracy"].iloc[-1]})
    table = pd.DataFrame(rows)
    return models, table, {"ch4_n_models": len(models),
                           "ch4_train_minutes": float(table["train_seconds"].sum()) / 60}


def accuracy_table(models: dict, eps: dict, n_test: int | None, n_pgd: int | None, seed: int, device) -> pd.DataFrame:
    """Clean accuracy on a subset of the test images and PGD accuracy at the training radius, per model.

    The subset is a seeded one of ``n_test`` test images (``None``: all); PGD runs on the first ``n_pgd`` of them, at
    the data set's training radius ``eps[dataset]``.
    """
    datasets = list(dict.fromkeys(ds for ds, _ in models))
    tests = {ds: load_dataset(ds, "test", subset=n_test, seed=seed) for ds in datasets}
    rows = []
    for (ds, m), model in models.items():
        result = evaluate(model, tests[ds], ds, n_pgd=n_pgd, n_attribution=0, eps=eps[ds], seed=seed, device=device,
                          progress=False)
        rows.append({"dataset": ds, "method": m, "eps": eps[ds], "n_test": result["n_clean"], "n_pgd": result["n_pgd"],
                     "clean_accuracy": result["clean_accuracy"], "pgd_accuracy": result["pgd_accuracy"]})
    return pd.DataFrame(rows)


def accuracy_values(accuracy: pd.DataFrame, datasets: list[str]) -> dict:
    """What the chapter says about ``accuracy`` (``accuracy_table``; needs the natural and PGD-AT models).

    Where PGD-AT beats natural training under PGD, the most PGD-robust method per data set, the first data set's natural
    model and the lowest clean accuracy.
    """
    acc = accuracy.set_index(["dataset", "method"])
    robust_wins = [ds for ds in datasets
                   if acc.loc[(ds, "pgd_at"), "pgd_accuracy"] > acc.loc[(ds, "natural"), "pgd_accuracy"]]
    best = accuracy.loc[accuracy.groupby("dataset")["pgd_accuracy"].idxmax(), ["dataset", "method", "pgd_accuracy"]]
    first = datasets[0]
    return {"ch4_pgd_at_wins": len(robust_wins), "ch4_n_datasets": len(datasets),
            "ch4_pgd_at_win_list": ", ".join(robust_wins) or "none",
            "ch4_best_pgd": "; ".join(f"{r.dataset}: {r.method} ({r.pgd_accuracy:.2f})" for r in best.itertuples()),
            "ch4_first_dataset": first,
            "ch4_natural_clean": float(acc.loc[(first, "natural"), "clean_accuracy"]),
            "ch4_natural_pgd": float(acc.loc[(first, "natural"), "pgd_accuracy"]),
            "ch4_min_clean": float(accuracy["clean_accuracy"].min())}
