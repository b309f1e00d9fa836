"""The ``attrbound`` command line.

    attrbound train --dataset mnist --method advaat --epochs 2 --subset 5000 --out runs/advaat
    attrbound evaluate runs/advaat --n-attribution 100
    attrbound zoo build [--only mnist-natural] [--device cuda]     # the reference models, resumable

``train`` writes ``OUT/model.safetensors`` + ``OUT/model.json`` (the checkpoint and its sidecar),
``OUT/history.csv``, and resumes from ``OUT/train_state.safetensors`` when rerun after an interruption.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="data cache folder (default: $ATTRBOUND_DATA or ~/.cache)")
    p.add_argument("--mirror", default=None, help="local folder laid out as torchvision expects "
                   "(default: $ATTRBOUND_DATA_MIRROR), e.g. ../shared/data")
    p.add_argument("--no-download", action="store_true", help="never use the network")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    from .attributions import ATTRIBUTIONS
    from .data import DATASETS
    from .sweep.config import Architecture
    from .training import DISSIMILARITIES, METHODS, TrainConfig

    def default(name):  # one home for each training default: TrainConfig
        return TrainConfig.model_fields[name].default

    def arch(name):  # and for the architecture of a recipe: the sweep file's model section
        return Architecture.model_fields[name].default

    parser = argparse.ArgumentParser(prog="attrbound", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"attrbound_lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model and save a checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--dataset", required=True, choices=DATASETS)
    t.add_argument("--method", default="natural", choices=METHODS)
    t.add_argument("--out", required=True, type=Path, help="output folder")
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--subset", type=int, default=None, help="train on a seeded random subset of this size")
    t.add_argument("--batch-size", type=int, default=default("batch_size"))
    t.add_argument("--lr", type=float, default=default("lr"))
    t.add_argument("--optimizer", default=default("optimizer"), choices=("adam", "sgd"))
    t.add_argument("--eps", type=float, default=None, help="inner-maximisation radius (default: RAR's per data set)")
    t.add_argument("--norm", default=default("norm"), choices=("linf", "l2"))
    t.add_argument("--steps", type=int, default=None, help="inner-maximisation steps (default: RAR's per data set)")
    t.add_argument("--alpha", type=float, default=None, help="inner step size (default: RAR's with RAR's eps, "
                   "else 2.5 eps / steps)")
    t.add_argument("--lam", type=float, default=default("lam"), help="weight of the regulariser")
    t.add_argument("--dissimilarity", default=default("dissimilarity"), choices=DISSIMILARITIES)
    t.add_argument("--attribution", default=default("attribution"), choices=tuple(ATTRIBUTIONS))
    t.add_argument("--ig-steps", type=int, default=default("ig_steps"))
    t.add_argument("--surrogate-beta", type=float, default=None, help="softplus surrogate for ReLU models")
    t.add_argument("--width", type=float, default=arch("width"), help="width multiplier of the CNN (0.25: CPU-sized)")
    t.add_argument("--activation", default=arch("activation"), choices=("softplus", "relu"))
    t.add_argument("--beta", type=float, default=arch("beta"), help="softplus beta of the model")
    t.add_argument("--pool", default=arch("pool"), choices=("avg", "max"), help="avg: smooth; max: the RAR shape")
    t.add_argument("--seed", type=int, default=0)
    _add_data_args(t)

    e = sub.add_parser("evaluate", help="accuracy, PGD accuracy and IFIA robustness of a checkpoint")
    e.add_argument("checkpoint", type=Path, help="a model.safetensors, its .json sidecar or their folder")
    e.add_argument("--dataset", default=None, choices=DATASETS, help="default: the checkpoint's")
    e.add_argument("--subset", type=int, default=None, help="evaluate on a seeded random subset of the test set")
    e.add_argument("--n-pgd", type=int, default=1000)
    e.add_argument("--n-attribution", type=int, default=100)
    e.add_argument("--attribution", default="integrated_gradients", choices=("integrated_gradients", "saliency"))
    e.add_argument("--ig-steps", type=int, default=100)
    e.add_argument("--attack-ig-steps", type=int, default=10)
    e.add_argument("--surrogate-beta", type=float, default=None)
    for name, kind in (("eps", float), ("pgd-steps", int), ("pgd-alpha", float), ("ifia-k", int), ("eval-k", int),
                       ("ifia-steps", int), ("ifia-alpha", float), ("restarts", int)):
        e.add_argument(f"--{name}", type=kind, default=None, help="override RAR's protocol")
    e.add_argument("--json", type=Path, default=None, help="also write the results here")
    e.add_argument("--seed", type=int, default=0)
    _add_data_args(e)
    z = sub.add_parser("zoo", help="the reference model zoo: build, verify or list it")
    zsub = z.add_subparsers(dest="zoo_command", required=True)
    zb = zsub.add_parser("build", help="train the missing reference models (resumes an interrupted build)")
    zb.add_argument("--only", nargs="+", default=None, metavar="NAME", help="these models (and what they start from)")
    zb.add_argument("--force", action="store_true", help="rebuild the --only models even if built")
    zv = zsub.add_parser("verify", help="hashes, loading, the first training batches, one full retraining")
    zv.add_argument("--only", nargs="+", default=None, metavar="NAME")
    zv.add_argument("--no-full", action="store_true", help="skip retraining the cheapest recipe in full")
    zl = zsub.add_parser("list", help="the reference models and their manifests' numbers")
    for q in (zb, zv, zl):
        q.add_argument("--root", default=None, help="the zoo's folder (default: $ATTRBOUND_ZOO or <project>/zoo)")
    for q in (zb, zv):
        _add_data_args(q)
    from .sweep import add_subcommands
    add_subcommands(sub)
    from .book.runner import add_subcommands as add_book_subcommands
    add_book_subcommands(sub)
    return parser


def _device(name: str | None):
    from .runtime import resolve_device
    return resolve_device(name)


def _load(args, name: str, split: str, subset: int | None, seed: int):
    from .data import load_dataset
    return load_dataset(name, split=split, root=args.data_root, download=not args.no_download, mirror=args.mirror,
                        subset=subset, seed=seed)


def _data_record(data) -> dict:
    return {"name": data.name, "split": data.split, "size": len(data), "fingerprint": data.fingerprint,
            "source_md5": data.source_md5, "subset_of_split": data.indices is not None}


def cmd_train(args) -> int:
    """``attrbound train``: train the data set's CNN into ``args.out`` (``zoo.train_recipe``).

    The sidecar records the training, the data, the seed, the final metrics (test accuracy included) and the
    device; the initial weights are drawn after ``torch.manual_seed(args.seed)``.

    Args:
        args: the parsed ``train`` arguments.

    Returns:
        The exit status, 0.
    """
    from .evaluation import evaluate
    from .training import TRAINING_PROTOCOLS
    from .zoo import Recipe, train_recipe

    device = _device(args.device)
    test_data = _load(args, args.dataset, "test", None, args.seed)
    rar = TRAINING_PROTOCOLS[args.dataset]
    steps = args.steps if args.steps is not None else rar["steps"]
    alpha = args.alpha if args.alpha is not None else rar["alpha"] if args.eps is None else None
    recipe = Recipe(dataset=args.dataset, method=args.method, eps=args.eps, epochs=args.epochs, n_train=args.subset,
                    batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                    model=dict(activation=args.activation, beta=args.beta, width=args.width, pool=args.pool),
                    options=dict(norm=args.norm, steps=steps, alpha=alpha, lam=args.lam,
                                 dissimilarity=args.dissimilarity, attribution=args.attribution,
                                 ig_steps=args.ig_steps, surrogate_beta=args.surrogate_beta, optimizer=args.optimizer))

    def record(model, train_data, history) -> dict:
        test = evaluate(model, test_data, args.dataset, n_pgd=0, n_attribution=0, device=device, progress=False)
        final = history.iloc[-1]
        metrics = {"train_loss": float(final["loss"]), "train_accuracy": float(final["accuracy"]),
                   "test_accuracy": test["clean_accuracy"], "train_seconds": float(history["seconds"].sum())}
        return {"data": _data_record(train_data), "seed": args.seed, "metrics": metrics, "device": str(device)}

    _, sidecar = train_recipe(recipe, args.out, init_seed=args.seed, device=device, progress=not args.no_progress,
                              data_root=args.data_root, mirror=args.mirror, download=not args.no_download,
                              metadata=record)
    print(f"saved {args.out / 'model.safetensors'} (test accuracy "
          f"{sidecar['metadata']['metrics']['test_accuracy']:.4f})")
    return 0


def cmd_evaluate(args) -> int:
    import pandas as pd

    from .checkpoints import load_checkpoint
    from .evaluation import evaluate

    device = _device(args.device)
    model, sidecar = load_checkpoint(args.checkpoint, device=device)
    dataset = args.dataset or sidecar.get("metadata", {}).get("data", {}).get("name")
    if dataset is None:
        raise SystemExit("attrbound evaluate: the checkpoint does not record its data set; pass --dataset.")
    test_data = _load(args, dataset, "test", args.subset, args.seed)
    overrides = {k: getattr(args, k) for k in ("eps", "pgd_steps", "pgd_alpha", "ifia_k", "eval_k", "ifia_steps",
                                               "ifia_alpha", "restarts") if getattr(args, k) is not None}
    result = evaluate(model, test_data, dataset, n_pgd=args.n_pgd, n_attribution=args.n_attribution,
                      attribution=args.attribution, ig_steps=args.ig_steps, attack_ig_steps=args.attack_ig_steps,
                      surrogate_beta=args.surrogate_beta, seed=args.seed, device=device,
                      progress=not args.no_progress, **overrides)
    training = sidecar.get("metadata", {}).get("training", {})
    row = {"checkpoint": str(args.checkpoint), "method": training.get("method"), "dataset": dataset, **result}
    print(pd.DataFrame([row]).T.rename(columns={0: "value"}).to_string())
    if args.json:
        from ._io import write_json
        write_json(args.json, row)
    return 0


def cmd_zoo(args) -> int:
    """``attrbound zoo build|verify|list``: ``zoo.build_zoo``, ``zoo.verify_zoo``, ``zoo.zoo_table``.

    Returns:
        The exit status: 0, or 1 when ``verify`` finds a model that does not check.
    """
    import pandas as pd

    from . import zoo

    if args.zoo_command == "list":
        table = zoo.zoo_table(args.root)
        print(table.to_string(index=False) if len(table) else "the zoo is empty")
        return 0
    common = dict(root=args.root, device=_device(args.device), progress=not args.no_progress,
                  data_root=args.data_root, mirror=args.mirror)
    if args.zoo_command == "build":
        table = zoo.build_zoo(args.only, force=args.force, **common)
        print(table.drop(columns="key").to_string(index=False))
        return 0
    report = zoo.verify_zoo(args.only, full=not args.no_full, **common)
    with pd.option_context("display.width", 200):
        print(report.to_string(index=False))
    return 0 if report["ok"].all() else 1


def main(argv: list[str] | None = None) -> int:
    """The ``attrbound`` command line.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: that of the command, or 2 after an error (printed to stderr).
    """
    args = _parser().parse_args(argv)
    try:
        from .book.runner import cmd_book
        from .sweep import cmd_report, cmd_sweep
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "report": cmd_report,
                    "book": cmd_book, "zoo": cmd_zoo}
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"attrbound {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
