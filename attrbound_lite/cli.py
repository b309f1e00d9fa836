"""The ``attrbound`` command line.

    attrbound train --dataset mnist --method advaat --epochs 2 --subset 5000 --out runs/advaat
    attrbound evaluate runs/advaat --n-attribution 100
    attrbound zoo build [--only mnist-natural] [--device cuda]     # the reference models, resumable
    attrbound results build [--only ch7_ifia_budget]               # the book's heavy evidence, resumable

``train`` writes ``OUT/model.safetensors`` + ``OUT/model.json`` (the checkpoint and its sidecar),
``OUT/history.csv``, and resumes from ``OUT/train_state.safetensors`` when rerun after an interruption.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ._io import output_folder

__all__ = ["main"]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default once, in its help.

    Added unless the help states it already (a default described in words, such as ``$ATTRBOUND_DATA``); never for
    required options, flags or a default of ``None``.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is None or action.default == []
                or action.default is argparse.SUPPRESS or isinstance(action.default, bool) or "default" in text):
            return text
        return f"{text} (default: %(default)s)"


def _number(kind: type, test, wanted: str):
    """An argparse ``type``: ``kind(text)`` if ``test`` holds, else an error naming the flag (argparse adds it)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_sample_count = _number(int, lambda v: v >= 0, "a non-negative integer (0 skips that part)")
_positive_float = _number(float, lambda v: 0 < v < math.inf, "a positive finite number")
_non_negative_float = _number(float, lambda v: 0 <= v < math.inf, "a non-negative finite number")


def _device_name(text: str) -> str:
    """An argparse ``type``: a device name ``runtime.resolve_device`` accepts (checked now, resolved later)."""
    from .runtime import resolve_device
    try:
        resolve_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


class _Given(argparse.Action):
    """``store``, recording the option's destination in ``namespace.given`` (options the user typed)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="data cache folder (default: $ATTRBOUND_DATA or ~/.cache)")
    p.add_argument("--mirror", default=None, help="local folder laid out as torchvision expects "
                   "(default: $ATTRBOUND_DATA_MIRROR), e.g. ../shared/data")
    p.add_argument("--no-download", action="store_true", help="never use the network")
    p.add_argument("--device", default=None, type=_device_name,
                   help="auto, cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by its command line (``"train"``, ``"zoo build"``, ...), nested ones included."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {inner}": p for inner, p in _subparsers(sub).items()})
    return found


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

    t = sub.add_parser("train", help="train a model and save a checkpoint")
    t.add_argument("--dataset", required=True, choices=DATASETS, help="the training set")
    t.add_argument("--method", default="natural", choices=METHODS, help="the training method")
    t.add_argument("--out", required=True, type=output_folder, help="output folder")
    t.add_argument("--epochs", type=_positive_int, default=2, help="passes over the training data")
    t.add_argument("--subset", type=_positive_int, default=None,
                   help="train on a seeded random subset of this size (default: the whole training split)")
    t.add_argument("--batch-size", type=_positive_int, default=default("batch_size"), help="samples per step")
    t.add_argument("--lr", type=_positive_float, default=default("lr"), help="learning rate")
    t.add_argument("--optimizer", default=default("optimizer"), choices=("adam", "sgd"),
                   help="the optimiser (sgd: momentum 0.9)")
    # The inner maximisation and the regulariser: refused where --method ignores them
    # (training.ignored_options).
    t.add_argument("--eps", type=_positive_float, default=None, action=_Given,
                   help="inner-maximisation radius (default: RAR's per data set)")
    t.add_argument("--norm", default=default("norm"), choices=("linf", "l2"), action=_Given,
                   help="the inner maximisation's ball")
    t.add_argument("--steps", type=_positive_int, default=None, action=_Given,
                   help="inner-maximisation steps (default: RAR's per data set)")
    t.add_argument("--alpha", type=_positive_float, default=None, action=_Given,
                   help="inner step size (default: RAR's with RAR's eps, else 2.5 eps / steps)")
    t.add_argument("--lam", type=_non_negative_float, default=default("lam"), action=_Given,
                   help="weight of the regulariser")
    t.add_argument("--dissimilarity", default=default("dissimilarity"), choices=DISSIMILARITIES, action=_Given,
                   help="d of AAT and AdvAAT")
    t.add_argument("--attribution", default=default("attribution"), choices=tuple(ATTRIBUTIONS), action=_Given,
                   help="the attribution of AAT and AdvAAT")
    t.add_argument("--ig-steps", type=_positive_int, default=default("ig_steps"), action=_Given,
                   help="IG points: IG-NORM's path integral, and IG attributions")
    t.add_argument("--surrogate-beta", type=_positive_float, default=None, action=_Given,
                   help="softplus surrogate of a ReLU model's attribution (AAT, AdvAAT)")
    t.add_argument("--width", type=_positive_float, default=arch("width"),
                   help="width multiplier of the CNN (0.25: CPU-sized)")
    t.add_argument("--activation", default=arch("activation"), choices=("softplus", "relu"),
                   help="softplus: smooth; relu: the RAR model")
    t.add_argument("--beta", type=_positive_float, default=arch("beta"), help="softplus beta of the model")
    t.add_argument("--pool", default=arch("pool"), choices=("avg", "max"), help="avg: smooth; max: the RAR shape")
    t.add_argument("--seed", type=_non_negative_int, default=0,
                   help="seed of the initial weights, the subset and the training noise")
    _add_data_args(t)

    e = sub.add_parser("evaluate", help="accuracy, PGD accuracy and IFIA robustness of a checkpoint")
    e.add_argument("checkpoint", type=Path, help="a model.safetensors, its .json sidecar or their folder")
    e.add_argument("--dataset", default=None, choices=DATASETS,
                   help="the test set (default: the checkpoint's training set)")
    e.add_argument("--subset", type=_positive_int, default=None,
                   help="evaluate on a seeded random subset of the test set (default: the whole test split)")
    e.add_argument("--n-pgd", type=_sample_count, default=1000, help="samples attacked with PGD (0: no PGD)")
    e.add_argument("--n-attribution", type=_sample_count, default=100,
                   help="correctly classified samples attacked with IFIA (0: no IFIA)")
    e.add_argument("--attribution", default="integrated_gradients", choices=("integrated_gradients", "saliency"),
                   help="the evaluated attribution")
    e.add_argument("--ig-steps", type=_positive_int, default=100, action=_Given,
                   help="IG points of the evaluated maps (with --attribution integrated_gradients)")
    e.add_argument("--attack-ig-steps", type=_positive_int, default=10, action=_Given,
                   help="IG points of the maps steering IFIA (with --attribution integrated_gradients)")
    e.add_argument("--surrogate-beta", type=_positive_float, default=None,
                   help="softplus surrogate for IFIA's directions (needed by ReLU models)")
    for name, kind in (("eps", _positive_float), ("pgd-steps", _positive_int), ("pgd-alpha", _positive_float),
                       ("ifia-k", _positive_int), ("eval-k", _positive_int), ("ifia-steps", _positive_int),
                       ("ifia-alpha", _positive_float), ("restarts", _positive_int)):
        e.add_argument(f"--{name}", type=kind, default=None, help="override RAR's protocol (default: RAR's)")
    e.add_argument("--json", type=Path, default=None, help="also write the results here")
    e.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the subset and the attacks")
    _add_data_args(e)
    z = sub.add_parser("zoo", help="the reference model zoo: build, verify or list it")
    zsub = z.add_subparsers(dest="zoo_command", required=True)
    zb = zsub.add_parser("build", help="train the missing reference models (resumes an interrupted build)")
    zb.add_argument("--only", nargs="+", action="extend", default=None, metavar="NAME",
                    help="these models (and what they start from) (default: all)")
    zb.add_argument("--force", action="store_true", help="rebuild the --only models even if built")
    zv = zsub.add_parser("verify", help="hashes, loading, the first training batches, one full retraining")
    zv.add_argument("--only", nargs="+", action="extend", default=None, metavar="NAME",
                    help="these models (default: all)")
    zv.add_argument("--no-full", action="store_true", help="skip retraining the cheapest recipe in full")
    zl = zsub.add_parser("list", help="the reference models and their manifests' numbers")
    for q in (zb, zv, zl):
        q.add_argument("--root", default=None, help="the zoo's folder (default: $ATTRBOUND_ZOO or <project>/zoo)")
    for q in (zb, zv):
        _add_data_args(q)
    r = sub.add_parser("results", help="the book's heavy evidence (results/): build, verify or list it")
    rsub = r.add_subparsers(dest="results_command", required=True)
    rb = rsub.add_parser("build", help="compute the results (resumes an interrupted build)")
    rb.add_argument("--force", action="store_true", help="recompute every unit, even those written")
    rv = rsub.add_parser("verify", help="recompute a random sample of committed rows and compare")
    rv.add_argument("--sample", type=_positive_int, default=8, help="rows to recompute per result")
    rv.add_argument("--seed", type=_non_negative_int, default=None,
                    help="seed of the sample (default: drawn from the commit, as CI does)")
    rl = rsub.add_parser("list", help="the results and their manifests")
    for q in (rb, rv, rl):
        q.add_argument("--only", nargs="+", action="extend", default=None, metavar="NAME",
                       help="these results (default: all)")
        q.add_argument("--root", default=None, help="the results' folder (default: $ATTRBOUND_RESULTS or "
                       "<project>/results)")
    for q in (rb, rv):  # data come from $ATTRBOUND_DATA / $ATTRBOUND_DATA_MIRROR, as the book's do
        q.add_argument("--device", default=None, type=_device_name,
                       help="auto, cpu, cuda, cuda:1 ... (default: cuda if available)")
    rb.add_argument("--no-progress", action="store_true", help="no progress bars")
    from .sweep import add_subcommands
    add_subcommands(sub)
    from .book.runner import add_subcommands as add_book_subcommands
    add_book_subcommands(sub)
    for p in _subparsers(parser).values():  # the sweep's and the book's too: one way to show defaults
        p.formatter_class = _HelpFormatter
    return parser


def _check_training_options(args) -> None:
    """Refuse the options given on the command line that ``args.method`` would ignore, naming each one.

    The rule is ``training.ignored_options`` (that of ``training.train`` too). The recipe keeps every field, so that
    the hashes of earlier runs stay as they were: only the options typed are checked.

    Raises:
        ValueError: an option the method does not read (``--eps`` with natural training, ``--lam`` with PGD-AT,
            ``--ig-steps`` with AAT on saliency maps, ...), with the methods that read it.
    """
    from .training import ignored_options
    problems = ignored_options(args.method, getattr(args, "given", set()), args.attribution, cli=True)
    if problems:
        raise ValueError(" ".join(problems))


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

    Raises:
        ValueError: an option that the training method ignores (``_check_training_options``), before any data is
            loaded.
    """
    from .evaluation import evaluate
    from .training import TRAINING_PROTOCOLS
    from .zoo import Recipe, train_recipe

    _check_training_options(args)
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


def _section(metadata: dict, key: str) -> dict:
    """``metadata[key]`` where it is a JSON object, else empty (a checkpoint's metadata is the caller's record)."""
    value = metadata.get(key)
    return value if isinstance(value, dict) else {}


def cmd_evaluate(args) -> int:
    """``attrbound evaluate``: a checkpoint in RAR's protocol on its data set's test split (``evaluation.evaluate``).

    Args:
        args: the parsed ``evaluate`` arguments.

    Returns:
        The exit status, 0.

    Raises:
        ValueError: the checkpoint records no data set and none is given; ``--dataset`` is another data set than the
            one the checkpoint records (other than its full set or subset: CIFAR-10 and its subset); its model does not
            take the images of ``--dataset``; a model that is not smooth (ReLU, max-pooling) attacked by IFIA without
            ``--surrogate-beta``, or ``--surrogate-beta`` with a smooth model, which would ignore it; ``--ig-steps``
            or ``--attack-ig-steps`` with ``--attribution saliency``, which ignores them.
    """
    import pandas as pd

    from ._checks import model_dtype_device
    from .checkpoints import checkpoint_paths, load_checkpoint
    from .data import DATASET_INFO
    from .evaluation import _check_model_data, evaluate
    from .models import nonsmooth_modules

    ignored = [f"--{name.replace('_', '-')}" for name in ("ig_steps", "attack_ig_steps")
               if name in getattr(args, "given", ()) and args.attribution != "integrated_gradients"]
    if ignored:
        raise ValueError(f"{'/'.join(ignored)} {'is' if len(ignored) == 1 else 'are'} ignored with --attribution "
                         f"{args.attribution} (IG points: the evaluated and the steering maps are {args.attribution} "
                         f"maps); drop {'it' if len(ignored) == 1 else 'them'}, or pass --attribution "
                         "integrated_gradients.")
    device = _device(args.device)
    model, sidecar = load_checkpoint(args.checkpoint, device=device)
    if args.json is not None and args.json.resolve() in {p.resolve() for p in checkpoint_paths(args.checkpoint)}:
        raise ValueError(f"--json {args.json} is a file of the checkpoint itself (the results would replace it); "
                         "write them elsewhere, e.g. --json results.json.")
    trained_on = _section(sidecar["metadata"], "data").get("name")
    dataset = args.dataset or trained_on
    if dataset is None:
        raise ValueError("the checkpoint does not record its data set; pass --dataset.")
    info = {name: DATASET_INFO.get(name, {}) for name in (trained_on, dataset)}
    if trained_on not in (None, dataset) and info[trained_on].get("family") != info[dataset].get("family"):
        def images(name):  # "mnist images (B, 1, 28, 28)"
            shape = info[name].get("shape")
            return f"{name} images" + (f" (B, {', '.join(map(str, shape))})" if shape else "")
        if info[trained_on].get("shape") != info[dataset].get("shape"):
            raise ValueError(f"the checkpoint's data set ({trained_on}) does not match --dataset {dataset}: the model "
                             f"was trained on {images(trained_on)}, not {images(dataset)}; drop --dataset or pass "
                             f"--dataset {trained_on}.")
        print(f"note: a model trained on {trained_on} is evaluated on {dataset} images of the same shape, in "
              f"{dataset}'s protocol (a transfer evaluation).", file=sys.stderr)
    nonsmooth = nonsmooth_modules(model)
    if args.surrogate_beta is not None and not nonsmooth:
        raise ValueError(f"--surrogate-beta {args.surrogate_beta:g}: the model is already smooth (no ReLU-type "
                         "activation or max-pooling), so IFIA steers with it directly and the surrogate would be "
                         "ignored; drop --surrogate-beta.")
    if args.surrogate_beta is None and nonsmooth and args.n_attribution > 0:
        raise ValueError(f"the model is not smooth (modules {nonsmooth}: ReLU-type activations or max-pooling): its "
                         "attribution has no useful input curvature, so IFIA needs a smooth surrogate to steer by; "
                         "pass --surrogate-beta (e.g. 10) or skip IFIA with --n-attribution 0.")
    test_data = _load(args, dataset, "test", args.subset, args.seed)
    weights_dtype = model_dtype_device(model)[0]
    if weights_dtype is not None and weights_dtype != test_data.images.dtype:  # a float64 checkpoint: its dtype
        test_data = (test_data.images.to(weights_dtype), test_data.labels)
    fix = None if trained_on in (None, dataset) else (
        f"The checkpoint's data set ({trained_on}) does not match --dataset {dataset}: drop --dataset or pass "
        f"--dataset {trained_on}.")
    _check_model_data(model, test_data, dataset, device, fix)
    overrides = {k: getattr(args, k) for k in ("eps", "pgd_steps", "pgd_alpha", "ifia_k", "eval_k", "ifia_steps",
                                               "ifia_alpha", "restarts") if getattr(args, k) is not None}
    ig_options = (dict(ig_steps=args.ig_steps, attack_ig_steps=args.attack_ig_steps)
                  if args.attribution == "integrated_gradients" else {})  # saliency: refused above when given
    result = evaluate(model, test_data, dataset, n_pgd=args.n_pgd, n_attribution=args.n_attribution,
                      attribution=args.attribution, **ig_options,
                      surrogate_beta=args.surrogate_beta, seed=args.seed, device=device,
                      progress=not args.no_progress, **overrides)
    training = _section(sidecar["metadata"], "training")
    row = {"checkpoint": str(args.checkpoint), "method": training.get("method"), "trained_on": trained_on,
           "dataset": dataset, **result}
    print(pd.DataFrame([row]).T.rename(columns={0: "value"}).to_string())
    if args.json:
        from ._io import write_json
        write_json(args.json, row)
    return 0


def cmd_zoo(args) -> int:
    """``attrbound zoo build|verify|list``: ``zoo.build_zoo``, ``zoo.verify_zoo``, ``zoo.zoo_table``.

    ``list`` and ``verify`` refuse a root that does not exist; ``build`` creates a new one in an existing folder.

    Args:
        args: the parsed ``zoo`` arguments.

    Returns:
        The exit status: 0, or 1 when ``verify`` finds a model that does not check.

    Raises:
        FileNotFoundError: a zoo root that does not exist (``list``, ``verify``), or whose parent does not (``build``).
    """
    import pandas as pd

    from . import zoo

    if args.zoo_command == "list":
        table = zoo.zoo_table(args.root)
        build = "attrbound zoo build" + (f" --root {args.root}" if args.root else "")
        print(table.to_string(index=False) if len(table) else
              f"the zoo at {zoo.zoo_root(args.root)} holds no reference model yet; build them with `{build}`.")
        return 0
    common = dict(root=args.root, device=_device(args.device), progress=not args.no_progress,
                  data_root=args.data_root, mirror=args.mirror)
    if args.zoo_command == "build":
        root = zoo.zoo_root(args.root)
        if not root.is_dir():  # a new zoo, in a folder that exists: a misspelt path is not trained into for hours
            if not root.parent.is_dir():
                raise FileNotFoundError(f"--root {root}: its parent folder {root.parent} does not exist; create it "
                                        "first, or check the path.")
            print(f"attrbound zoo build: a new zoo at {root}", file=sys.stderr)
        table = zoo.build_zoo(args.only, force=args.force, **common)
        print(table.drop(columns="key").to_string(index=False))
        return 0
    report = zoo.verify_zoo(args.only, full=not args.no_full, **common)
    with pd.option_context("display.width", 200):
        print(report.to_string(index=False))
    failed = report[~report["ok"]]
    if len(failed):
        print(f"attrbound zoo verify: {len(failed)} of {len(report)} checks failed ("
              f"{', '.join(sorted(set(failed['name'])))}); the table above says why.", file=sys.stderr)
    return 0 if failed.empty else 1


def _result_specs(only: list[str] | None) -> list:
    from .book import budget, certified, deviation_budget, headline, linf_sweep

    specs = {spec.name: spec for spec in (deviation_budget.SPEC, linf_sweep.SPEC, budget.SPEC, headline.SPEC,
                                          certified.SPEC)}
    unknown = sorted(set(only or ()) - set(specs))
    if unknown:
        raise ValueError(f"--only {' '.join(unknown)}: no such result; the results are {', '.join(specs)}.")
    return [spec for name, spec in specs.items() if only is None or name in only]


def cmd_results(args) -> int:
    """``attrbound results build|verify|list``: ``results.build_results``, ``verify_results``, ``read_manifest``.

    Args:
        args: the parsed ``results`` arguments.

    Returns:
        The exit status: 0, or 1 when ``verify`` finds a recomputed value beyond its tolerance, or 2 when ``list``
        finds a damaged manifest (named on stderr, as ``zoo list`` does; a result not built yet is only listed).
    """
    import pandas as pd

    from . import results

    specs = _result_specs(args.only)
    root = results.results_root(args.root)
    if args.results_command in ("list", "verify") and not root.is_dir():  # a misspelt --root is named, not listed
        raise FileNotFoundError(f"no results folder at {root}; check --root (default: the project's results/), or "
                                "build there with `attrbound results build --root ...`.")
    if args.results_command == "list":
        damaged = []
        for spec in specs:
            try:
                m = results.read_manifest(spec, args.root)
                state = (f"{m['n_rows']} rows, {m['seconds'].get('total', float('nan')) / 60:.0f} min on "
                         f"{m['hardware'].get('processor', 'an unnamed CPU')}")
            except FileNotFoundError as err:  # not built yet
                state = f"not usable: {err}"
            except ValueError as err:
                state = f"not usable: {err}"
                damaged.append(err)
            print(f"{spec.name}: {spec.title}\n    {state}")
        for err in damaged:
            print(f"attrbound results list: error: {err}", file=sys.stderr)
        return 2 if damaged else 0
    device = _device(args.device)
    if args.results_command == "build":
        for spec in specs:
            print(results.build_results(spec, root=args.root, device=device, progress=not args.no_progress,
                                        force=args.force))
        return 0
    seed = results.sample_seed() if args.seed is None else args.seed
    reports = [results.verify_results(spec, args.sample, seed, root=args.root, device=device).assign(
               result=spec.name) for spec in specs]
    report = pd.concat(reports, ignore_index=True)
    with pd.option_context("display.width", 200):
        print(report.to_string(index=False))
    failed = report[~report["ok"]]
    if len(failed):
        print(f"attrbound results verify: {len(failed)} of {len(report)} recomputed values differ beyond the "
              f"tolerance (seed {seed}); rebuild with `attrbound results build --only NAME --force` if the code "
              "changed on purpose.", file=sys.stderr)
    return 0 if failed.empty else 1


def main(argv: list[str] | None = None) -> int:
    """The ``attrbound`` command line.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit status: that of the command, or 2 after an error. A bad option is argparse's error (the usage and
        the option named); an error of the package (``ValueError`` and ``ConfigError``, ``TypeError``, a missing
        file, ``FloatingPointError``, ``RuntimeError`` such as ``BookError``) is printed as one line on stderr,
        without a traceback.
    """
    args = _parser().parse_args(argv)
    try:
        from .book.runner import cmd_book
        from .sweep import cmd_report, cmd_sweep
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "sweep": cmd_sweep, "report": cmd_report,
                    "book": cmd_book, "zoo": cmd_zoo, "results": cmd_results}
        return commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, FloatingPointError, RuntimeError) as err:
        command = " ".join(filter(None, (args.command, getattr(args, "zoo_command", None),
                                          getattr(args, "results_command", None))))
        print(f"attrbound {command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
