"""Attacks shaped like torchattacks: ``atk = PGD(model, eps=..., alpha=..., steps=...); x_adv = atk(x, y)``.

Inputs lie in [0, 1] (normalisation belongs inside the model); the model runs in eval mode and its
train/eval flags are restored afterwards.

- ``PGD``: Madry et al.'s attack on the cross-entropy loss, returns the adversarial inputs.
- ``AttributionPGD``: maximises ``||A(x') - A(x)||_2`` or ``1 - cos(A(x'), A(x))`` inside the ball, the
  natural adversary of the bounds.
- ``IFIA``: Ghorbani et al.'s attribution attack (top-k, mass-centre or targeted objective on the
  channel-summed, normalised saliency map ``S``), with the step ``x <- clip_[0,1](x0 + clip_eps(x - alpha
  sign(grad loss) - x0))`` and no random start on the first restart, as in the authors' code.

Both attribution attacks take their gradients through the softplus surrogate when ``surrogate_beta`` is
set (a ReLU network's attribution has no useful gradient), check the label of the real model at every
iterate, and return an ``AttackResult`` with the best label-preserving iterate per sample, its deviation
measured on the real model, and failure (``label_kept`` False, deviation NaN, ``x_adv = x``) where no
iterate kept the label. Restarts run batched (the batch is repeated ``restarts`` times); with
``per_restart=True`` the result keeps the best iterate of every (restart, sample) pair instead, R * B rows
stacked restart-major (row ``r * B + i`` is restart r of sample i).
"""

from __future__ import annotations

import functools
import math
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks, metrics
from ._checks import (
    check_choice,
    check_flag,
    check_inputs,
    check_labels,
    check_logits,
    check_model,
    check_model_inputs,
    check_positive_int,
    check_radii,
    check_seed,
    eval_mode,
    full_precision,
    input_gradient,
    trusted_inputs,
)
from .attributions import Attribution, functional_gradients, get_explainer
from .models import smooth_surrogate
from .threat_models import threat_model

__all__ = ["Attack", "PGD", "AttributionPGD", "IFIA", "AttackResult", "Deviation", "COMPILE_MODES"]


_NO_SLOPE = ("the attribution does not change with the input (a linear or piecewise-linear model?); attack a "
             "smooth model, or pass surrogate_beta for a ReLU network.")


class Attack:
    """Base class of the attacks, shaped like torchattacks: ``atk = Attack(model, ...); out = atk(x, y)``.

    ``atk(x, y)`` checks the inputs (images in [0, 1], integer labels), then runs ``forward`` with the model in
    eval mode and TF32 off, restoring both afterwards. As in torchattacks, the loss attack ``PGD`` returns
    the adversarial inputs (a tensor), while the attribution attacks (``AttributionPGD``, ``IFIA``) return an
    ``AttackResult``: they must also say which iterate kept the label and how far the attribution moved.

    Args:
        model: the classifier, logits (B, classes) for inputs (B, ...) in [0, 1].
        eps: radius of the ball, or a (B,) tensor of radii, one per input (the calls then take B inputs).
        alpha: step size, or a (B,) tensor of them (e.g. ``0.25 * eps``).
        steps: number of ascent steps.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a uniformly random point of the ball.
        seed: seed of the attack's random stream (advancing from call to call).
    """

    def __init__(self, model: nn.Module, eps: float | torch.Tensor, alpha: float | torch.Tensor, steps: int,
                 norm: str = "linf", random_start: bool = True, seed: int = 0):
        if type(self) is Attack:
            raise TypeError("Attack is the base class of the attacks and has no forward; use PGD, AttributionPGD or "
                            "IFIA, or subclass Attack and define forward(inputs, labels).")
        check_model(model)
        alpha = check_radii(alpha, "alpha (the step size)")
        steps = check_positive_int(steps, "steps")
        self.model, self.threat, self.alpha, self.steps = model, threat_model(norm, eps), alpha, steps
        random_start = check_flag(random_start, "random_start")
        self.eps, self.norm, self.random_start, self.seed = self.threat.eps, norm, random_start, check_seed(seed)
        if isinstance(self.alpha, torch.Tensor) and isinstance(self.eps, torch.Tensor) and \
                self.alpha.shape != self.eps.shape:
            raise ValueError(f"per-sample alpha has {self.alpha.numel()} entries and eps {self.eps.numel()}; give "
                             "one of each per input.")

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor):
        """Check the inputs and labels, then run ``forward`` with the model in eval mode and TF32 off.

        Args:
            inputs: (B, ...) images in [0, 1].
            labels: (B,) integer tensor of the true classes.

        Returns:
            What ``forward`` returns: the adversarial inputs (``PGD``) or an ``AttackResult``.

        Raises:
            TypeError: If the inputs are not a floating-point tensor.
            ValueError: If the inputs are not a batch of finite values in [0, 1], or the labels not a (B,) integer
                tensor.
        """
        check_model_inputs(self.model, inputs, box=True)
        check_labels(labels, _checks.model_classes(self.model, inputs), inputs.shape[0])  # classes of the model
        for name, value in (("eps", self.eps), ("alpha", self.alpha)):
            if isinstance(value, torch.Tensor) and value.shape != labels.shape:
                raise ValueError(f"the attack has {value.numel()} per-sample {name} values but the batch has "
                                 f"{labels.numel()} inputs; build it with one radius per input.")
        with eval_mode(self.model), full_precision():
            return self.forward(inputs.detach(), labels.to(inputs.device).long())

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor):
        """The attack on checked, detached inputs (B, ...) and long labels (B,), model in eval mode."""
        raise NotImplementedError(f"{type(self).__name__} defines no forward(inputs, labels); a subclass of Attack "
                                  "must define it.")

    def generator(self, device: torch.device) -> torch.Generator:
        """The attack's random stream: seeded once, then advancing from call to call.

        A fresh attack with the same seed replays the same sequence.
        """
        if getattr(self, "_generator", None) is None or self._generator.device != torch.device(device):
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def __repr__(self) -> str:
        eps, alpha = (v if not isinstance(v, torch.Tensor) else f"<{v.numel()} per sample>"
                      for v in (self.eps, self.alpha))
        return f"{type(self).__name__}(eps={eps}, alpha={alpha}, steps={self.steps}, norm={self.norm!r})"


class PGD(Attack):
    """Projected gradient ascent on the cross-entropy (Madry et al.), random start by default.

    ``x <- project(x + alpha * sign(grad CE))`` (l-infinity) or ``x + alpha * grad / ||grad||_2`` (l2).
    Arguments as ``Attack``. ``atk(x, y)`` returns the adversarial inputs (B, ...), in the ball and in [0, 1].
    """

    def forward(self, inputs, labels):
        """The adversarial inputs (B, ...) after ``steps`` steps."""
        def loss(x):
            return F.cross_entropy(check_logits(self.model(x), x.shape[0]), labels)

        return self.threat.ascend(loss, inputs, self.steps, self.alpha, self.generator(inputs.device),
                                  self.random_start)


@dataclass
class Deviation:
    """Achieved attribution deviation on the real model, per sample (NaN where the attack failed)."""
    euclidean: torch.Tensor   # ||A(x_adv) - A(x)||_2
    cosine: torch.Tensor      # cos(A(x_adv), A(x))


@dataclass
class AttackResult:
    """Per-sample results, shape (B,) (or (R * B,), restart-major, for an attack with ``per_restart``)."""
    x_adv: torch.Tensor          # best label-preserving iterate (x itself where the attack failed)
    deviation: Deviation
    label_kept: torch.Tensor     # (B,) bool: an iterate kept the label y
    score: torch.Tensor          # (B,) the maximised selection criterion at x_adv, on the real model (NaN where
                                 # failed): squared distance, 1 - cos, minus top-k intersection, centre shift
                                 # or target mass, by attack
    iterations: int              # steps run per restart
    restarts: int
    topk_intersection: torch.Tensor | None = None  # IFIA: top-k intersection of the saliency maps


class AttributionAttack(Attack):
    """Shared loop of the attribution attacks.

    Subclasses define ``objective`` (maximised, on the surrogate's attribution, differentiable) and ``score``
    (maximised, on the real model's attribution, selects the returned iterate).

    ``per_restart=False``: one result per sample, the best over restarts and steps (ties: the earliest
    step, then the first restart). ``True``: one result per (restart, sample), shape (R * B, ...),
    restart-major; the default result is the best of these rows per sample.

    The step loop reads no tensor value on the host (no ``.item()``, no branch on a tensor): the best
    iterate is kept on the device with ``torch.where``. ``compile=True`` (or a ``torch.compile`` mode such as
    ``"reduce-overhead"``, CUDA graphs) computes the step's gradient with a compiled ``torch.func`` graph,
    reused by every attack of the same kind on the same model; it pays a one-off compilation (tens of
    seconds). On the 2-core development CPU an isolated saliency step ran twice as fast compiled, a whole attack
    step 0.53 (IFIA) to 1.02 (PGD) times the eager time (benchmarks/README.md): it is for long sweeps. Its results
    equal the eager ones up to float rounding (about 1e-6 relative), not bit for bit. It needs a smooth model (no
    surrogate copy) and an attribution without per-sample options. The switches it and ``trusted_inputs`` use
    are module-level flags: run attacks from one thread at a time.
    """

    _start: torch.Tensor | None = None

    def __init__(self, model, explainer, eps, alpha, steps, norm="linf", restarts=1, surrogate_beta=None,
                 random_start=True, seed=0, per_restart=False, compile=False):
        if type(self) is AttributionAttack:
            raise TypeError("AttributionAttack is the shared loop of the attribution attacks; use AttributionPGD or "
                            "IFIA, or subclass it and define objective and score.")
        super().__init__(model, eps, alpha, steps, norm, random_start, seed)
        check_model(model, second_order=True)
        self.restarts = check_positive_int(restarts, "restarts")
        self.per_restart = check_flag(per_restart, "per_restart")
        if isinstance(explainer, Attribution) and explainer.model is not model:
            raise ValueError(f"the explainer {explainer!r} was built on another model object than the attack's "
                             f"model (a {type(model).__name__}); the attack would silently explain its own model: "
                             f"build it on the attacked model ({type(explainer).__name__}(model)) or pass its name "
                             "('saliency', 'input_x_gradient', 'integrated_gradients').")
        self.explainer = get_explainer(explainer, model)
        self.surrogate_beta = surrogate_beta
        # refuse a non-smooth model without beta now, not at the call
        surrogate = smooth_surrogate(model, surrogate_beta)
        self.compile = _compile_mode(compile)
        if self.compile and surrogate is not model:
            raise ValueError("compile needs a smooth model (softplus activations, average pooling): the attack "
                             "of a ReLU model steps through a softplus copy rebuilt at every call, which a compiled "
                             "graph cannot follow. Use compile=False for this model.")
        self.surrogate = model

    def reference(self, x0: torch.Tensor, y: torch.Tensor) -> dict:
        """What the objectives compare against: the real and surrogate attributions of the clean inputs."""
        real = self.explainer.attribute(x0, target=y).detach()
        sur = real if self.surrogate is self.model else \
            self.explainer.rebind(self.surrogate).attribute(x0, target=y).detach()
        return {"real": real, "surrogate": sur}

    def objective(self, attr: torch.Tensor, ref: dict) -> torch.Tensor:
        """The maximised objective (B,) of the surrogate's attribution ``attr`` (B, ...), differentiable."""
        raise NotImplementedError(f"{type(self).__name__} defines no objective(attr, ref).")

    def score(self, attr: torch.Tensor, ref: dict) -> torch.Tensor:
        """The selection criterion (B,) of the real model's attribution ``attr``; the best iterate maximises it."""
        raise NotImplementedError(f"{type(self).__name__} defines no score(attr, ref).")

    def objective_key(self) -> tuple:
        """What ``objective`` depends on besides its tensors (the cache key of a compiled step)."""
        return ()

    def starts(self, inputs: torch.Tensor) -> torch.Tensor:
        """Starting points of all restarts, stacked restart-major: (R * B, ...)."""
        gen = self.generator(inputs.device)
        return torch.cat([self.threat.random_init(inputs, gen) if self.random_start or r > 0 else inputs.clone()
                          for r in range(self.restarts)])

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor, start: torch.Tensor | None = None
                 ) -> AttackResult:
        """Attack a batch; see ``Attack.__call__``.

        Args:
            inputs: (B, ...) images in [0, 1].
            labels: (B,) the classes to keep (and to attribute). ``label_kept`` means classified as ``labels``: for
                an input the model misclassifies, an iterate that moves it to its label counts as kept; pass
                ``model(inputs).argmax(1)`` to keep the model's own prediction (the book attacks correctly
                classified images only).
            start: optional starting points (R * B, ...), restart-major, inside the ball around the repeated
                inputs; default: the attack's own (random) starts. A sweep that holds several radii in one
                batch passes the starts each radius would draw alone, so that both layouts give the same result.

        Returns:
            An ``AttackResult``.
        """
        # The model whose attribution gradients steer the attack, built at every call so that it follows
        # the model's current weights, buffers, device and dtype.
        self.surrogate = smooth_surrogate(self.model, self.surrogate_beta)
        if start is not None:
            expected = (inputs.shape[0] * self.restarts, *inputs.shape[1:])
            if not isinstance(start, torch.Tensor):
                raise TypeError(f"start must be a torch.Tensor of shape {expected} (restarts x batch, "
                                f"restart-major), got {type(start).__name__}; convert with torch.as_tensor(start).")
            if tuple(start.shape) != expected:
                raise ValueError(f"start must be a tensor of shape {expected} (restarts x batch, restart-major), got "
                                 f"{tuple(start.shape)}.")
            check_inputs(start, "start", box=True)
        self._start = start
        try:
            with eval_mode(self.surrogate):
                return super().__call__(inputs, labels)
        finally:
            self._start = None

    def _gradient(self, surrogate: Attribution, x: torch.Tensor, y: torch.Tensor, ref: dict):
        """Eager: the objective's input gradient, the surrogate's attribution and logits at ``x``."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            attr, logits = surrogate.attribute_with_logits(x, target=y, create_graph=True)
            grad = input_gradient(self.objective(attr, ref).sum(), x, "the attack's objective values", _NO_SLOPE)
        return grad, attr.detach(), logits.detach()

    def forward(self, inputs, labels):
        """Run every restart batched; the ``AttackResult`` of the best label-preserving iterates."""
        batch, reps = inputs.shape[0], self.restarts
        real = self.explainer.for_batch(inputs, repeats=reps)
        surrogate = real if self.surrogate is self.model else real.rebind(self.surrogate)
        ref = self.reference(inputs, labels)
        ref_rep = {k: v.repeat(reps, *([1] * (v.ndim - 1))) for k, v in ref.items()}
        x0_rep, y_rep = inputs.repeat(reps, *([1] * (inputs.ndim - 1))), labels.repeat(reps)
        threat = self.threat.repeat(reps)
        alpha = self.alpha.repeat(reps) if isinstance(self.alpha, torch.Tensor) else self.alpha
        gradient = functools.partial(_compiled_gradient(self, surrogate), self) if self.compile else self._gradient
        threat = threat.to(inputs)
        alpha = alpha.to(inputs) if isinstance(alpha, torch.Tensor) else alpha
        # The best iterate of every (restart, sample) row so far, and the step that reached it.
        best_score = torch.full((reps * batch,), float("-inf"), dtype=inputs.dtype, device=inputs.device)
        best_step = torch.zeros(reps * batch, dtype=torch.long, device=inputs.device)
        best_x, best_attr = x0_rep.clone(), torch.zeros_like(ref_rep["real"])
        x = self.starts(inputs) if self._start is None else self._start.to(inputs)
        # a score that is NaN (a blank map's centre of mass) ranks below every number but above a lost label
        lowest = torch.finfo(inputs.dtype).min
        sloped = torch.zeros((), dtype=torch.bool, device=inputs.device)  # did any step see a slope (no sync)
        with trusted_inputs():  # checked once above: no per-step host synchronisation
            for t in range(self.steps + 1):
                last = t == self.steps
                if last:
                    attr, logits = surrogate.attribute_with_logits(x.detach(), target=y_rep)
                else:
                    grad, attr, logits = gradient(surrogate, x, y_rep, ref_rep)
                    sloped = sloped | (grad != 0).any()
                if surrogate is not real:
                    attr, logits = real.attribute_with_logits(x.detach(), target=y_rep)
                if t > 0:  # iterates after a step are the candidates
                    score = torch.nan_to_num(self.score(attr.detach(), ref_rep), nan=lowest, posinf=math.inf,
                                             neginf=-math.inf)
                    score = score.masked_fill(logits.detach().argmax(1) != y_rep, -math.inf)
                    better = score > best_score
                    best_score = torch.where(better, score, best_score)
                    best_step = torch.where(better, t, best_step)
                    keep = better.view(-1, *([1] * (inputs.ndim - 1)))
                    best_x = torch.where(keep, x.detach(), best_x)
                    best_attr = torch.where(keep, attr.detach(), best_attr)
                if not last:
                    x = threat.project(threat.step(x.detach(), grad, alpha), x0_rep)
        if self.steps and not bool(sloped):  # every step saw an exactly flat objective: the result is the start
            warnings.warn(f"{type(self).__name__}: the objective's gradient was exactly zero at every step and sample, "
                          "so the attack never left its starting points and its result says nothing about robustness. "
                          "Either the model is piecewise linear (pass surrogate_beta, or attack a smooth model), or "
                          "the objective is flat there: IFIA's top-k with k at least the pixels whose attribution is "
                          "non-zero (IG with a zero baseline on MNIST's black background), where a smaller k or random "
                          "restarts move it.", UserWarning, stacklevel=3)
        reference = ref_rep["real"]
        if not self.per_restart:  # per sample: the highest score, then the earliest step, then the first restart
            scores = best_score.view(reps, batch)
            first = best_step.view(reps, batch).masked_fill(scores != scores.max(0).values, self.steps + 1)
            pick = first.argmin(0) * batch + torch.arange(batch, device=inputs.device)
            best_score, best_x, best_attr, reference = best_score[pick], best_x[pick], best_attr[pick], ref["real"]
        found = best_score > float("-inf")
        return AttackResult(
            x_adv=best_x,
            deviation=Deviation(metrics.euclidean(best_attr, reference, mask=found),
                                metrics.cosine(best_attr, reference, mask=found)),
            label_kept=found, score=best_score.masked_fill(~found | (best_score == lowest), math.nan),
            iterations=self.steps, restarts=reps,
            topk_intersection=self._topk_intersection(best_attr, reference, found))

    def _topk_intersection(self, attr, real, found):
        return None


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""The ``torch.compile`` modes an attack's ``compile`` accepts besides True / False."""


def _compile_mode(compile) -> str | None:
    """``compile`` as a ``torch.compile`` mode (``"default"`` for True), or None (eager)."""
    if compile is None:
        return None
    if not isinstance(compile, str):
        try:
            compile = check_flag(compile, "compile")
        except TypeError:  # (the error of a value outside the choices, as for an unknown mode)
            raise ValueError(f"compile must be True, False or a torch.compile mode {COMPILE_MODES}, got "
                            f"{compile!r}.") from None
        return "default" if compile else None
    if compile not in COMPILE_MODES:
        raise ValueError(f"compile must be True, False or a torch.compile mode {COMPILE_MODES}, got {compile!r}.")
    return compile


# Compiled steps, per model (weakly held) and per (attack kind, objective, attribution, mode).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_gradient(attack: AttributionAttack, surrogate: Attribution):
    """The attack's step gradient as a compiled ``torch.func`` graph, shared by attacks of the same kind.

    ``torch.func.grad`` of the objective, with the attribution's own input gradient also taken by
    ``torch.func.grad`` (``functional_gradients``), is one pure function of ``(x, y, ref)`` that
    ``torch.compile`` can trace whole, double backward included (``torch.autograd.grad`` inside a compiled
    region cannot be differentiated again).

    The step reads the attack and the attribution of the current call (not those of the call that compiled it), so
    the cache holds no reference to the model between calls; ``torch.compile``'s guards recompile where they
    differ in what the traced code read.

    Returns:
        ``gradient(attack, surrogate, x, y, ref) -> (grad, attr, logits)``.
    """
    key = (type(attack), attack.objective_key(), surrogate.compile_key(), attack.compile)
    cache = _COMPILED.setdefault(attack.model, {})
    if key not in cache:
        current: dict = {}

        def objective(x, y, ref):
            with functional_gradients():
                attr, logits = current["surrogate"].attribute_with_logits(x, target=y, create_graph=True)
            return current["attack"].objective(attr, ref).sum(), (attr, logits)

        step = torch.compile(torch.func.grad(objective, has_aux=True), mode=attack.compile)

        def gradient(attack, surrogate, x, y, ref):
            current.update(attack=attack, surrogate=surrogate)
            try:
                grad, (attr, logits) = step(x.detach(), y, ref)
            finally:
                current.clear()
            return grad, attr.detach(), logits.detach()

        cache[key] = gradient
    return cache[key]


class AttributionPGD(AttributionAttack):
    """PGD on the attribution, the natural adversary of the bounds.

    Maximises ``||A(x') - A(x)||_2`` (``objective="euclidean"``, as its square) or ``1 - cos(A(x'), A(x))``
    (``"cosine"``) over the ball from random starts (each restart its own) and keeps the best
    label-preserving iterate by the same quantity measured on the real model.

    Args:
        model: the classifier (inputs in [0, 1]).
        explainer: an ``Attribution`` built on ``model`` (one built on another model is refused) or its name
            (``"saliency"``, ...).
        eps, alpha, steps, norm: the ball, step size, steps and norm (``"linf"`` or ``"l2"``).
        objective: ``"euclidean"`` or ``"cosine"``.
        restarts: random restarts, run batched.
        surrogate_beta: take attribution gradients through the softplus surrogate (ReLU models).
        seed: seed of the random starts.
        per_restart: return one row per (restart, sample) instead of the best per sample (True or False).
        compile: compile the step (True or a ``torch.compile`` mode); see ``AttributionAttack``.

    Returns (of ``atk(x, y)``):
        An ``AttackResult``, per sample (or per restart and sample, restart-major).
    """

    def __init__(self, model: nn.Module, explainer: Attribution | str, eps: float | torch.Tensor,
                 alpha: float | torch.Tensor, steps: int, norm: str = "linf", objective: str = "euclidean",
                 restarts: int = 1, surrogate_beta: float | None = None, seed: int = 0, per_restart: bool = False,
                 compile: bool | str = False):
        # Every restart starts at a random point: both objectives have zero gradient at the clean input.
        super().__init__(model, explainer, eps, alpha, steps, norm, restarts, surrogate_beta, True, seed, per_restart,
                         compile)
        self.objective_name = check_choice(objective, ("euclidean", "cosine"), "objective")

    def objective_key(self):
        """The objective's name."""
        return (self.objective_name,)

    def _dissimilarity(self, attr, ref):
        a, b = attr.flatten(1), ref.flatten(1)
        if self.objective_name == "euclidean":
            return ((a - b) ** 2).sum(1)  # squared: same maximiser, smooth at a = b
        return 1 - F.cosine_similarity(a, b, dim=1)

    def objective(self, attr, ref):
        """Squared distance or cosine distance to the surrogate's clean attribution."""
        return self._dissimilarity(attr, ref["surrogate"])

    def score(self, attr, ref):
        """The same quantity against the real model's clean attribution."""
        return self._dissimilarity(attr, ref["real"])


class IFIA(AttributionAttack):
    """Ghorbani et al.'s iterative feature-importance attack on ``S = saliency_map(A)``.

    ``kind="topk"``: minimise the mass of ``S`` on the ``k`` top pixels of the clean map (selection: the
    smallest top-k intersection); ``"mass_center"``: maximise the shift of the centre of mass;
    ``"targeted"``: maximise the mass inside ``target_mask`` ((H, W) or (B, H, W) bool). The first restart
    starts at the clean input, later ones at random points of the ball.

    Args:
        model, explainer, eps, alpha, steps, norm, restarts, surrogate_beta, seed, per_restart, compile: as
            ``AttributionPGD``.
        k: the number of top pixels (``kind="topk"``).
        kind: ``"topk"``, ``"mass_center"`` or ``"targeted"``.
        target_mask: the region of ``kind="targeted"``.

    Returns (of ``atk(x, y)``):
        An ``AttackResult`` with ``topk_intersection`` filled.
    """

    def __init__(self, model: nn.Module, explainer: Attribution | str, eps: float | torch.Tensor,
                 alpha: float | torch.Tensor, steps: int, k: int, kind: str = "topk", norm: str = "linf",
                 restarts: int = 1, surrogate_beta: float | None = None, target_mask: torch.Tensor | None = None,
                 seed: int = 0, per_restart: bool = False, compile: bool | str = False):
        super().__init__(model, explainer, eps, alpha, steps, norm, restarts, surrogate_beta, False, seed, per_restart,
                         compile)
        self.kind = check_choice(kind, ("topk", "mass_center", "targeted"), "IFIA kind")
        k = check_positive_int(k, "k (pixels of the top-k objective)")
        if kind == "targeted" and target_mask is None:
            raise ValueError("kind='targeted' needs target_mask, a bool tensor of shape (H, W) or (B, H, W).")
        if kind != "targeted" and target_mask is not None:
            raise ValueError(f"target_mask is used only by kind='targeted'; drop it for kind={kind!r}.")
        if target_mask is not None and (not isinstance(target_mask, torch.Tensor) or target_mask.ndim not in (2, 3)
                                        or target_mask.dtype != torch.bool):
            raise TypeError(f"target_mask must be a bool tensor of shape (H, W) or (B, H, W), got "
                            f"{getattr(target_mask, 'dtype', type(target_mask).__name__)} "
                            f"{tuple(getattr(target_mask, 'shape', ()))}.")
        if target_mask is not None and not bool(target_mask.flatten(-2).any(-1).all()):
            raise ValueError("target_mask selects no pixel (of some image): the attack would maximise the mass of an "
                             "empty region, which is 0 for every iterate; mark the pixels to move attribution into.")
        self.k, self.target_mask = k, target_mask

    def reference(self, x0, y):
        """The clean attributions, the clean top-k mask and the clean centres of mass."""
        ref = super().reference(x0, y)
        real_map = metrics.saliency_map(ref["real"])
        if self.k > real_map[0].numel():
            raise ValueError(f"k = {self.k} exceeds the {real_map[0].numel()} pixels of the saliency map.")
        flat = real_map.flatten(1)
        ref["topk_mask"] = torch.zeros_like(flat).scatter_(1, flat.topk(self.k, dim=1).indices, 1.0)
        ref["center_real"] = metrics.mass_center(real_map)
        ref["center_surrogate"] = metrics.mass_center(metrics.saliency_map(ref["surrogate"]))
        # The shift has no gradient where it is zero (at the clean start): offset it by 1e-3 pixels along
        # the direction from the image centre to the clean centre of mass, so ascent starts by pushing the
        # centre outwards and later maximises the plain shift (a reproduction choice).
        middle = torch.tensor([(real_map.shape[1] - 1) / 2, (real_map.shape[2] - 1) / 2], dtype=x0.dtype,
                              device=x0.device)
        away = torch.nan_to_num(ref["center_surrogate"] - middle) + torch.tensor([1e-6, 1e-6], device=x0.device)
        ref["center_offset"] = 1e-3 * away / away.norm(dim=1, keepdim=True)
        if self.kind == "targeted":
            mask = torch.as_tensor(self.target_mask, device=x0.device).bool()
            if mask.shape not in (real_map.shape[1:], real_map.shape):
                raise ValueError(f"target_mask has shape {tuple(mask.shape)}; it must be (H, W) = "
                                 f"{tuple(real_map.shape[1:])} or (B, H, W) = {tuple(real_map.shape)}, like the "
                                 "saliency maps.")
            mask = mask.expand_as(real_map)
            ref["target_mask"] = mask.flatten(1).to(x0.dtype)
        return ref

    def objective_key(self):
        """The objective's kind (its masks and centres are tensors of ``ref``)."""
        return (self.kind,)

    def objective(self, attr, ref):
        """Minus the mass on the clean top-k pixels, the centre shift or the mass in the target region."""
        smap = metrics.saliency_map(attr)
        if self.kind == "topk":
            return -(smap.flatten(1) * ref["topk_mask"]).sum(1)
        if self.kind == "mass_center":
            return (metrics.mass_center(smap) - ref["center_surrogate"] + ref["center_offset"]).norm(dim=1)
        return (smap.flatten(1) * ref["target_mask"]).sum(1)

    def score(self, attr, ref):
        """Minus the top-k intersection (the evaluation metric itself, as Ghorbani et al.), or the objective."""
        smap = metrics.saliency_map(attr)
        if self.kind == "topk":  # select by the evaluation metric itself, as Ghorbani et al.
            return -metrics.topk_intersection(smap.flatten(1), ref["topk_mask"], self.k)
        if self.kind == "mass_center":
            return (metrics.mass_center(smap) - ref["center_real"]).norm(dim=1)
        return (smap.flatten(1) * ref["target_mask"]).sum(1)

    def _topk_intersection(self, attr, real, found):
        return metrics.topk_intersection(metrics.saliency_map(attr), metrics.saliency_map(real), self.k, mask=found)
