"""Chapter 7 (FAR): the measurements, IFIA and sign noise on the reference and study models (``Study``).

The attack's settings (``attack_settings``: RAR's protocol, steered by IG of ``ATTACK_IG_STEPS`` points, scored on
its top-k pixels), the study's models (``study_models``), the images every model of a data set classifies correctly
(``shared_images``) and ``Study``, which attacks a chapter's models now or reads the committed IFIA at RAR's budget
(``headline``). The comparisons, verdicts, tables and figures built from these rows are in ``far``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .. import metrics
from ..attacks import IFIA
from ..attributions import get_explainer
from ..bounds import attribution_bound
from ..data import load_dataset
from ..evaluation import ifia_per_image, noise_per_image
from ..protocols import rar_protocol
from ..zoo import REFERENCE, ROBUST_METHODS, STUDY_IG_STEPS, STUDY_RADII, reference_name
from .tables import DATASET_NAMES, METHOD_NAMES
from .training import zoo_results

__all__ = ["STUDY_DATASET", "ATTACK_ATTRIBUTION", "ATTACK_IG_STEPS", "ATTACK_K", "attack_settings", "study_models",
           "shared_images", "Study"]


STUDY_DATASET = "mnist"


# IFIA is steered by the map it is scored on, IG (of ATTACK_IG_STEPS points), and pushes mass out of the top-k pixels
# that are evaluated (ATTACK_K). On the natural MNIST model (32 images, 20 steps) steering by saliency, or RAR's k of
# 200, moved the top-100 pixels of the IG map no more than random sign noise of the same radius does (top-100
# intersection 0.608 / 0.643 against 0.630 under noise); IG of 4 points and k = 100: 0.398. The chapter measures this
# again (Study.steering).
ATTACK_ATTRIBUTION = "integrated_gradients"
ATTACK_IG_STEPS = 4
ATTACK_K = "eval"
BATCH = 128


FAILED_COLUMNS = ["name", "dataset", "method", "seed", "clean_accuracy", "floor"]


def attack_settings(dataset: str, steps: int | None = None, restarts: int | None = None,
                    k: int | str | None = None) -> dict:
    """RAR's evaluation settings of ``dataset`` with ``steps`` IFIA steps of the same total length.

    With fewer steps than RAR's, the step size grows so that ``steps * alpha`` stays RAR's (MNIST: 100 x 0.01 ->
    20 x 0.05).

    Args:
        dataset: a data set of ``protocols.RAR``.
        steps: IFIA steps; ``None``: RAR's.
        restarts: IFIA restarts; ``None``: RAR's (3).
        k: the pixels IFIA pushes mass out of; ``None``: RAR's (200 on MNIST, else 100); ``"eval"``: the evaluated
            top-k (100).

    Returns:
        The settings dict of ``evaluation.protocol`` (``eps, ifia_k, eval_k, ifia_steps, ifia_alpha, restarts``, ...).
    """
    cfg = rar_protocol(dataset, "evaluation")
    if steps is not None:
        cfg.update(ifia_alpha=cfg["ifia_alpha"] * cfg["ifia_steps"] / steps, ifia_steps=int(steps))
    if restarts is not None:
        cfg["restarts"] = int(restarts)
    if k is not None:
        cfg["ifia_k"] = cfg["eval_k"] if k == "eval" else int(k)
    return cfg


def _training(name: str) -> dict:
    """What distinguishes a study model: its method, training radius, IG steps in training and training images."""
    recipe = REFERENCE[name]
    options = recipe.options
    uses_ig = recipe.method == "ig_norm" or options.get("attribution") == "integrated_gradients"
    return {"method": recipe.method, "train_eps": recipe.eps if recipe.method != "natural" else 0.0,
            "train_ig_steps": options.get("ig_steps") if uses_ig else None, "n_train": recipe.n_train}


def study_models() -> pd.DataFrame:
    """The MNIST study models: the natural one, every robust method at each radius, IG-NORM and AAT at each IG steps.

    Returns:
        One row per model: ``name`` (``zoo.REFERENCE``), ``spec`` (the arguments of ``Settings.model``), ``method``,
        ``train_eps`` (0 for natural training), ``train_ig_steps`` (NaN where the method uses no IG), ``n_train``,
        and the studies a model belongs to: ``radius_study`` (the robust models of ``STUDY_RADII``) and
        ``steps_study`` (the models that use IG, at the largest radius: the IG-steps models and IG-NORM's radius model).
    """
    specs = [dict(method="natural", eps=STUDY_RADII[0])]  # any radius names the one natural study model
    specs += [dict(method=m, eps=e) for e in STUDY_RADII for m in ROBUST_METHODS]
    specs += [dict(method=m, ig_steps=k) for k in STUDY_IG_STEPS for m in ("ig_norm", "aat")]
    rows = []
    for spec in specs:
        name = reference_name(STUDY_DATASET, **spec)
        rows.append({"name": name, "spec": spec, **_training(name),
                     "radius_study": spec["method"] != "natural" and "eps" in spec})
    frame = pd.DataFrame(rows).astype({"train_ig_steps": float})
    frame["steps_study"] = frame["train_ig_steps"].notna() & (frame["train_eps"] == max(STUDY_RADII))
    return frame


def shared_images(x: torch.Tensor, y: torch.Tensor, models: Sequence[torch.nn.Module], n: int, device=None):
    """The first ``n`` images of ``(x, y)`` that every model classifies correctly (fewer if the split runs out).

    Returns:
        ``(x, y, index)``: the images, their labels and their positions in ``x``.
    """
    found = []
    with torch.no_grad():
        for start in range(0, len(y), 1000):  # in order, until n are found
            part = slice(start, start + 1000)
            correct = torch.ones(len(y[part]), dtype=torch.bool)
            for model in models:
                correct &= model(x[part].to(device)).argmax(1).cpu() == y[part]
            found.append(correct.nonzero().flatten() + start)
            if sum(map(len, found)) >= n:
                break
    index = torch.cat(found)[:n]
    return x[index], y[index], index.numpy()


class Study:
    """The chapter's measurements with its settings ``s``; test sets are loaded once.

    The settings used: ``n_ifia``, ``ifia_steps``, ``restarts``, ``eval_ig_steps``, ``n_bound``, ``bound_ig_steps``,
    ``seed``, ``device``.
    """

    def __init__(self, s):
        self.s = s
        self._tests = {}
        self.failed = pd.DataFrame(columns=FAILED_COLUMNS)  # the runs by_method left out

    def test_data(self, ds: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The test split of ``ds`` as ``(images, labels)``, loaded on first use."""
        if ds not in self._tests:
            self._tests[ds] = load_dataset(ds, "test", subset=None).tensors()
        return self._tests[ds]

    def shared_images(self, ds: str, models: Sequence[torch.nn.Module], n: int):
        """``shared_images`` of the test split of ``ds``."""
        return shared_images(*self.test_data(ds), models, n, self.s.device)

    def ifia(self, model, x, y, ds: str) -> pd.DataFrame:
        """IFIA in RAR's protocol (``attack_settings``) on IG maps of ``eval_ig_steps`` points.

        The attack is steered by IG of ``ATTACK_IG_STEPS`` points.
        """
        return self._ifia(model, x, y, ds)

    def _ifia(self, model, x, y, ds: str, steering: str = ATTACK_ATTRIBUTION, k: int | str | None = ATTACK_K,
              steps: int | None = None, restarts: int | None = None):
        """``ifia`` with another steering, k or budget; ``steps`` / ``restarts`` None: the chapter's."""
        s = self.s
        steps = s.ifia_steps if steps is None else steps
        restarts = s.restarts if restarts is None else restarts
        return ifia_per_image(model, x, y, None, ig_steps=s.eval_ig_steps, attack_attribution=steering,
                              attack_ig_steps=ATTACK_IG_STEPS, attack_batch_size=BATCH, seed=s.seed, device=s.device,
                              **attack_settings(ds, steps, restarts, k))

    def steering(self, ds: str, n: int) -> pd.DataFrame:
        """IFIA on the natural model of ``ds``, steered by saliency or IG, with RAR's k or the evaluated one; and noise.

        On the first ``n`` test images it classifies correctly, all scored on the same IG maps by the top-k
        intersection: the check behind ``ATTACK_ATTRIBUTION`` and ``ATTACK_K``.

        Returns:
            One row per image and perturbation: ``image``, ``steering`` (``"saliency"``, ``"IG, m points"`` or
            ``"none"`` for noise), ``k`` (the pixels the attack pushes mass out of; 0 for noise) and
            ``topk_intersection``.
        """
        model = self.s.model(ds, "natural")
        x, y, index = self.shared_images(ds, [model], n)
        frames = [self.noise(model, x, y, ds).assign(steering="none (random sign noise)", k=0)]
        for k in dict.fromkeys((attack_settings(ds)["ifia_k"], attack_settings(ds, k="eval")["ifia_k"])):
            for steering, label in (("saliency", "saliency"), (ATTACK_ATTRIBUTION, f"IG, {ATTACK_IG_STEPS} points")):
                frames.append(self._ifia(model, x, y, ds, steering, k).assign(steering=label, k=k))
        return pd.concat([f[["steering", "k", "topk_intersection"]].assign(image=index) for f in frames],
                         ignore_index=True)

    def noise(self, model, x, y, ds: str) -> pd.DataFrame:
        """The random baseline of ``ifia``: sign noise of IFIA's radius, scored on the same IG maps."""
        s = self.s
        return noise_per_image(model, x, y, None, ig_steps=s.eval_ig_steps, batch_size=BATCH, seed=s.seed,
                               device=s.device, **attack_settings(ds, s.ifia_steps, s.restarts))

    def relative_bound(self, model, x, y, ds: str) -> np.ndarray:
        """``r / ||A(x)||_2`` of the IG map (``bound_ig_steps`` points) on the l2 ball of the IFIA radius.

        ``r = eps sigma_max(J)``, the first-order Euclidean bound (chapter 2); the l2 ball of radius eps is the largest
        l2 ball inside IFIA's l-infinity ball.
        """
        eps = rar_protocol(ds, "evaluation")["eps"]
        device = self.s.device
        out = attribution_bound(model, x.to(device), eps, "l2", "integrated_gradients", target=y.to(device),
                                n_steps=self.s.bound_ig_steps, seed=self.s.seed)
        return (out.euclidean / out.attribution_norm).detach().cpu().double().numpy()

    def measure(self, ds: str, models: pd.DataFrame, bound: bool = False, noise: bool = False) -> pd.DataFrame:
        """IFIA (and the relative bound on the first ``n_bound`` images) of every model in ``models`` on shared images.

        Args:
            ds: the data set.
            models: one row per model with a ``spec`` column (the arguments of ``Settings.model``); the other columns
                are copied to the result.
            bound: also compute ``relative_bound`` (NaN beyond the first ``n_bound`` images).
            noise: also score random sign noise of the same radius (``noise_topk_intersection``,
                ``noise_kendall_tau``, ``noise_label_kept``).

        Returns:
            One row per (model, image): the model's columns, ``image`` (position in the test split),
            ``topk_intersection``, ``kendall_tau``, ``spearman``, ``label_kept``, ``relative_bound`` and, with
            ``noise``, the noise columns.
        """
        loaded = [self.s.model(ds, **spec) for spec in models["spec"]]
        x, y, index = self.shared_images(ds, loaded, self.s.n_ifia)
        frames = []
        for model, row in zip(loaded, models.drop(columns="spec").to_dict("records"), strict=True):
            frame = self.ifia(model, x, y, ds).assign(image=index, **row)
            frame["relative_bound"] = np.nan
            if bound:
                nb = min(self.s.n_bound, len(y))
                frame.loc[: nb - 1, "relative_bound"] = self.relative_bound(model, x[:nb], y[:nb], ds)
            if noise:
                base = self.noise(model, x, y, ds)
                for name in ("topk_intersection", "kendall_tau", "label_kept"):
                    frame[f"noise_{name}"] = base[name].to_numpy()
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def by_method(self, datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int] = (0,)) -> pd.DataFrame:
        """``measure`` of the reference models of every data set, method and training seed, with bound and noise.

        All models of a data set (every method and seed of ``zoo.SEEDS`` given) are scored on the same images.
        A run below its accuracy floor (``zoo.accuracy_floor``) is a failed run: it is left out and recorded in
        ``self.failed``.
        """
        frames, failed = [], self.failed.to_dict("records")
        for ds in datasets:
            runs = zoo_results(self.s, [reference_name(ds, m, seed=seed) for m in methods for seed in seeds])
            failed += runs.loc[~runs["trained"], FAILED_COLUMNS].to_dict("records")
            models = runs.loc[runs["trained"], ["dataset", "method", "seed"]]
            models["spec"] = [dict(method=m, seed=seed) for m, seed in zip(models["method"], models["seed"],
                                                                            strict=True)]
            frames.append(self.measure(ds, models.reset_index(drop=True), bound=True, noise=True))
        self.failed = pd.DataFrame(failed, columns=FAILED_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def headline(self, datasets: Sequence[str], methods: Sequence[str], seeds: Sequence[int] = (0,),
                 rows: pd.DataFrame | None = None) -> pd.DataFrame:
        """``by_method`` at RAR's budget: IFIA and noise from the committed result, the relative bound computed now.

        IFIA at RAR's steps and restarts on ``headline.N_IMAGES`` images per data set does not fit a CPU build; it is
        read from ``results/ch7_ifia_rar`` (``headline.load``, refused if missing, altered or of another
        configuration). The relative bound is computed now on the first ``n_bound`` of its images. Failed runs are
        left out and recorded in ``self.failed``, as ``by_method`` does.

        Args:
            datasets: the data sets.
            methods: the training methods.
            seeds: the training seeds (``zoo.SEEDS``).
            rows: the committed rows (default: ``headline.load()``).

        Returns:
            ``by_method``'s columns (``spearman`` excepted), one row per (trained run, image).

        Raises:
            ValueError: a trained run the committed result does not hold (rebuild it: the message says how).
        """
        from . import headline

        if self.s.retrain:
            raise ValueError("the committed IFIA at RAR's budget was computed on the committed zoo, and this build "
                             "retrains the zoo (--retrain-zoo): attack the retrained models now with the chapter's "
                             "parameter committed=False.")
        rows = headline.load() if rows is None else rows
        frames, failed = [], self.failed.to_dict("records")
        for ds in datasets:
            runs = zoo_results(self.s, [reference_name(ds, m, seed=seed) for m in methods for seed in seeds])
            failed += runs.loc[~runs["trained"], FAILED_COLUMNS].to_dict("records")
            trained = runs[runs["trained"]]
            missing = sorted(set(trained["name"]) - set(rows["unit"]))
            if missing:
                raise ValueError(f"the committed IFIA at RAR's budget holds no rows of {missing}; rebuild it with "
                                 f"`attrbound results build --only {headline.SPEC.name}`.")
            part = rows[rows["unit"].isin(trained["name"])]
            images = np.sort(part["image"].unique())[: self.s.n_bound]
            x, y = (t[torch.as_tensor(images)] for t in self.test_data(ds))
            for name in trained["name"]:
                frame = part[part["unit"] == name].drop(columns="unit").sort_values("image").reset_index(drop=True)
                bound = self.relative_bound(self.s.load(name)[0], x, y, ds)
                frame["relative_bound"] = frame["image"].map(dict(zip(images, bound, strict=True)))
                frames.append(frame)
        self.failed = pd.DataFrame(failed, columns=FAILED_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def studies(self) -> pd.DataFrame:
        """``measure`` of the MNIST study models (``study_models``), all on the same images."""
        return self.measure(STUDY_DATASET, study_models())

    def example(self, ds: str, method: str, image: int) -> dict:
        """One IFIA attack on test image ``image`` of ``ds`` for the reference model of ``method``, for a figure.

        Returns:
            A dict for ``validation_figures.attack_examples_figure``: the image, the attacked image, the IG saliency
            maps before and after, their absolute difference, and a title with the top-k intersection.
        """
        s = self.s
        model = s.model(ds, method)
        x, y = (t[image:image + 1].to(s.device) for t in self.test_data(ds))
        cfg = attack_settings(ds, s.ifia_steps, s.restarts, ATTACK_K)
        steering = get_explainer(ATTACK_ATTRIBUTION, model, n_steps=ATTACK_IG_STEPS)
        attack = IFIA(model, steering, eps=cfg["eps"], alpha=cfg["ifia_alpha"],
                      steps=cfg["ifia_steps"], k=cfg["ifia_k"], restarts=cfg["restarts"], seed=s.seed)
        x_adv = attack(x, y).x_adv
        ig = get_explainer("integrated_gradients", model, n_steps=s.eval_ig_steps)
        before, after = (metrics.saliency_map(ig.attribute(z, target=y)) for z in (x, x_adv))
        topk = metrics.topk_intersection(before, after, cfg["eval_k"]).item()
        title = f"{DATASET_NAMES.get(ds, ds)}, {METHOD_NAMES.get(method, method)}\ntop-k kept: {topk:.2f}"
        return {"image": x[0], "adversarial": x_adv[0], "map": before[0], "adversarial_map": after[0],
                "difference": (after[0] - before[0]).abs(), "title": title}
