"""The statistics behind the book's verdicts (REFERENCE section 14): intervals, and sentences computed from them.

The unit of resampling is the test image. A mean over images gets a percentile bootstrap interval; a difference
of two methods measured on the same images gets the bootstrap of the paired difference (the images are
resampled once for both); a rate gets a Wilson interval. A verdict is read off the interval, never off a fixed
noise band: "larger" when the whole interval is above zero, "smaller" when below, otherwise "not
distinguishable with N images".

    gap = paired_difference(topk_advaat, topk_natural)        # per-image arrays, same images
    f"AdvAAT keeps {gap} more of the top-k pixels"              # "0.12 (0.08 to 0.16)"
    verdict(gap)                                               # "larger"
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _scipy_stats

__all__ = ["Interval", "bootstrap", "bootstrap_mean", "paired_difference", "across_seeds", "margin_test", "wilson",
           "rate_difference", "paired_rate_difference", "verdict", "holm", "sig"]

N_RESAMPLES = 2000
MIN_RESAMPLES = 100  # fewer resamples give no percentile interval worth the name (and one gives no spread at all)
CONFIDENCE = 0.95


def _check_count(value, what: str, minimum: int) -> int:
    """An integer >= ``minimum``: Python, numpy, or a 0-d integer tensor or array (``(pred == y).sum()``)."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "dtype") and hasattr(value, "item") and \
            not isinstance(value, np.generic) and str(value.dtype).replace("torch.", "").startswith(("int", "uint")):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum} (Python, numpy or a 0-d integer tensor), got "
                         f"{value!r}.")
    return int(value)


def _check_confidence(confidence) -> float:
    if isinstance(confidence, (bool, np.bool_)) or not isinstance(confidence, numbers.Real) \
            or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1) (0.95 for a 95 % interval), got {confidence!r}.")
    return float(confidence)


def sig(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, as a reader writes it; ``nan`` and None as "n/a".

    ``0.887``, ``12.3``, ``0.0123``, ``0.000123``; from ``10**digits`` on a rounded integer (``1,540``); below
    ``1e-4`` a power of ten (``2.04 × 10⁻⁷``, with no-break spaces so that a table cell never wraps inside it), never
    the e-notation of code.
    """
    digits = _check_count(digits, "digits", 1)
    if value is None or type(value).__name__ == "NAType":  # pandas' missing value, as a table cell gives it
        return "n/a"
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)):
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a 0-d array or tensor
            value = value.item()
        else:
            raise TypeError(f"sig formats one number, got {type(value).__name__}"
                            f"{f' of shape {value.shape}' if hasattr(value, 'shape') else ''}; format each value "
                            "on its own (or call .item() on a one-element tensor).")
    try:
        value = float(value)  # a Fraction or a large int: numpy takes neither
    except OverflowError:
        raise ValueError(f"sig formats numbers up to {np.finfo(float).max:.3g}, got an integer of {len(str(value))} "
                         "digits; format it yourself (f'{value:,}').") from None
    if not np.isfinite(value):
        return "n/a"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    rounded = float(f"{mantissa}e{exponent}")
    if rounded == 0 or 1e-4 <= abs(rounded) < 10 ** digits:
        return f"{rounded:#.{digits}g}".rstrip(".")
    if abs(rounded) >= 10 ** digits:
        return f"{round(rounded):,}"
    return f"{mantissa}\N{NO-BREAK SPACE}×\N{NO-BREAK SPACE}10{str(int(exponent)).translate(_SUPERSCRIPTS)}"


_SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval ``[low, high]`` from ``n`` units (images, or trials for a rate).

    ``str(interval)`` is ``"0.120 (0.0800 to 0.160)"``: three significant digits ("0.120 (no interval: 1 unit)" where
    the interval is undefined, "n/a" without an estimate). ``p_value``: the two-sided p-value
    of "the quantity is 0" from the same resamples or the same t distribution (``bootstrap``, ``across_seeds``); NaN
    where none was computed (``wilson``) or where no test could run. A family of comparisons is decided on these by
    ``holm``. ``no_test``: the units all agreed (``bootstrap``, ``across_seeds``, ``paired_rate_difference``): the
    interval has zero width and the p-value is NaN (McNemar's in ``paired_rate_difference``), so no direction is stated
    (``sign`` 0, ``verdict`` undecided). The interval holds its estimate:
    ``low <= estimate <= high`` (NaN bounds excepted).
    """

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE
    p_value: float = float("nan")
    no_test: bool = False

    def __post_init__(self):
        _check_confidence(self.confidence)
        for name in ("estimate", "low", "high", "p_value"):
            _check_real(getattr(self, name), f"an Interval's {name}")
        if not (math.isnan(self.p_value) or 0 <= self.p_value <= 1):
            raise ValueError(f"an Interval's p_value is a probability in [0, 1] (NaN: none computed), got "
                             f"{self.p_value!r}.")
        if isinstance(self.n, (bool, np.bool_)) or not isinstance(self.n, numbers.Integral) or self.n < 0:
            raise ValueError(f"an Interval's n counts units, an integer >= 0, got {self.n!r}.")
        if not isinstance(self.no_test, (bool, np.bool_)):
            raise TypeError(f"an Interval's no_test is True or False, got {self.no_test!r}.")
        if self.low > self.high:  # (NaN bounds compare False: an undefined interval is allowed)
            raise ValueError(f"an Interval needs low <= high, got low={self.low!r}, high={self.high!r}.")
        if self.estimate < self.low or self.estimate > self.high:  # (NaN compares False: allowed, as above)
            raise ValueError(f"an Interval holds its estimate, low <= estimate <= high, got estimate="
                             f"{self.estimate!r} outside [{self.low!r}, {self.high!r}]; pass the estimate the "
                             "interval was computed for (a percentile interval that misses it: widen it to hold it, "
                             "as stats.bootstrap does).")

    def __str__(self) -> str:
        if not np.isfinite(self.estimate):
            return "n/a"
        if not (np.isfinite(self.low) and np.isfinite(self.high)):
            return f"{sig(self.estimate)} (no interval: {self.n} unit{'s' if self.n != 1 else ''})"
        return f"{sig(self.estimate)} ({sig(self.low)} to {sig(self.high)})"

    @property
    def sign(self) -> int:
        """+1 when the whole interval is above zero, -1 when below, 0 when it contains zero (or is undefined).

        0 too where no test could run (``no_test``: units that all agree say nothing about how far the estimate would
        move with others).
        """
        if self.no_test or not (np.isfinite(self.low) and np.isfinite(self.high)):
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]``."""
        _check_real(value, "contains' value")
        return bool(self.low <= value <= self.high)


def _check_real(value, what: str) -> None:
    """Refuse what is not one real number (a string, None, a bool, an array) by name."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None or np.ndim(value) != 0:
        raise TypeError(f"{what} must be one real number, got {type(value).__name__} {value!r}.")
    try:
        float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be one real number, got {type(value).__name__} {value!r}.") from None


def _as_values(values, what: str = "samples") -> np.ndarray:
    """Per-unit values as a 1-d float array; strings, dicts and nested ragged lists are refused."""
    if isinstance(values, (str, bytes, dict)) or isinstance(values, numbers.Number):
        raise TypeError(f"{what} must be sequences of per-unit numbers (a list, array or 1-d tensor), got "
                        f"{type(values).__name__}.")
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU, with a graph or in bfloat16 (numpy has none)
        values = values.detach().cpu()
        values = (values.double() if values.is_floating_point() else values).numpy()
    elif isinstance(values, (list, tuple)):  # 0-d tensors collected in a loop, possibly with a graph
        values = [v.detach().cpu().item() if hasattr(v, "detach") and getattr(v, "ndim", 1) == 0 else v
                  for v in values]
    try:
        complex_values = np.iscomplexobj(values)
        array = None if complex_values else np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must hold numbers only (one per unit), got "
                        f"{type(values).__name__} with non-numeric or ragged entries.") from None
    if complex_values:
        raise TypeError(f"{what} must be real numbers (one per unit), got complex values; pass their real part or "
                        "their modulus explicitly.")
    if array.ndim > 1 and sum(d > 1 for d in array.shape) > 1:
        raise ValueError(f"{what} must be 1-d (one value per unit), got shape {array.shape}.")
    return array.ravel()


def _clean(*arrays) -> tuple[np.ndarray, ...]:
    arrays = tuple(_as_values(a) for a in arrays)
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"paired samples must have one length each, got {[len(a) for a in arrays]}.")
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return tuple(a[keep] for a in arrays)


def bootstrap(statistic: Callable[..., float], *samples: Sequence[float], n_resamples: int = N_RESAMPLES,
              seed: int = 0, confidence: float = CONFIDENCE) -> Interval:
    """Percentile bootstrap of ``statistic(*samples)``, resampling the units (rows) of the samples jointly.

    Units where any sample is NaN or infinite (e.g. an image whose label the attack changed, a ratio to a zero bound)
    are dropped first; ``Interval.n`` counts the units kept.

    Args:
        statistic: a function of 1-D arrays, one per sample, returning a number (e.g. a mean, a correlation).
        *samples: equally long per-unit values (paired by position).
        n_resamples: bootstrap resamples (2,000 by default).
        seed: the resampling seed.
        confidence: the interval's level.

    Returns:
        The ``Interval``: the statistic of the data, the percentile interval (widened to hold the statistic where the
        resamples of a biased statistic miss it), the number of units used, and the
        two-sided p-value of "the statistic is 0" from the bootstrap standard error, ``2 (1 - Phi(|t| / se*))`` with
        ``se*`` the standard deviation of the resampled statistics (Efron & Tibshirani 1993, ch. 16): unlike a count
        of resamples beyond 0, whose smallest value is ``2 / (B + 1)``, it resolves the small p-values a family of
        comparisons needs (``holm``). With fewer than two units the interval is ``(nan, nan)``. Where the resampled
        statistics all agree it is the estimate alone, and on a value other than 0 no test could run (``no_test``: a
        p-value of NaN, no verdict).
    """
    if not callable(statistic):
        raise TypeError(f"statistic must be a callable of the samples (e.g. np.mean), got {type(statistic).__name__}; "
                        "pass it first: bootstrap(np.mean, values).")
    if not samples:
        raise ValueError("bootstrap needs at least one sample after the statistic: bootstrap(np.mean, values).")
    n_resamples = _check_count(n_resamples, "n_resamples (a percentile interval from fewer than 100 resamples is "
                               "noise; the default is 2,000)", MIN_RESAMPLES)
    confidence = _check_confidence(confidence)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be an integer >= 0 (Python or numpy), got {seed!r}.")
    data = _clean(*samples)
    n = len(data[0])
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, confidence)
    estimate = statistic(*data)
    if isinstance(estimate, (str, bytes, bool, np.bool_)) or np.ndim(estimate) != 0:
        raise TypeError(f"statistic must return one number (e.g. np.mean), got {type(estimate).__name__}"
                        f"{f' of shape {np.shape(estimate)}' if np.ndim(estimate) else ''}: {str(estimate)[:40]!r}.")
    try:
        estimate = float(estimate)
    except (TypeError, ValueError):
        raise TypeError(f"statistic must return one number (e.g. np.mean), got {type(estimate).__name__}.") from None
    if n < 2:
        return Interval(estimate, float("nan"), float("nan"), n, confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    values = np.array([statistic(*(d[i] for d in data)) for i in idx], dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Interval(estimate, float("nan"), float("nan"), n, confidence)
    tail = (1 - confidence) / 2 * 100
    low, high = _holding(estimate, *np.percentile(values, [tail, 100 - tail]))
    se = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    if not _spread(se, values):
        return _agreeing(estimate, n, confidence)
    p_value = float(2 * _scipy_stats.norm.sf(abs(estimate) / se))
    return Interval(estimate, low, high, n, confidence, p_value)


def _holding(estimate: float, low: float, high: float) -> tuple[float, float]:
    """A percentile interval widened to hold its estimate.

    The resampled values of a biased statistic (a square, a rank correlation at its limit) can all but a few lie on
    one side of the estimate, and rounding can put a resampled value equal to the estimate a hair beside it.
    """
    if math.isnan(estimate):
        return float(low), float(high)
    return float(min(low, estimate)), float(max(high, estimate))


def _spread(se: float, values: np.ndarray) -> bool:
    """Whether the units spread at all: a standard error above the rounding of their values.

    Identical units can give an ``se`` of 1e-17, which would read as a p-value of 0.
    """
    return se > 64 * np.finfo(float).eps * float(np.max(np.abs(values)))


def _agreeing(estimate: float, n: int, confidence: float) -> Interval:
    """The interval of units that all agree (up to rounding): the estimate alone, ``[estimate, estimate]``.

    A spread of zero says nothing about how far the estimate would move with other units (three identical runs): where
    the estimate is not 0 no test could run (``no_test``): the p-value is NaN, so that ``verdict`` states no direction
    and ``holm`` leaves the comparison out. Units that all agree on 0 give p-value 1 (no difference).
    """
    if estimate == 0:
        return Interval(estimate, estimate, estimate, n, confidence, 1.0)
    return Interval(estimate, estimate, estimate, n, confidence, float("nan"), no_test=True)


def bootstrap_mean(values: Sequence[float], **options) -> Interval:
    """The mean over images with its percentile bootstrap interval (``bootstrap`` of ``np.mean``)."""
    return bootstrap(np.mean, values, **options)


def paired_difference(a: Sequence[float], b: Sequence[float], **options) -> Interval:
    """``mean(a) - mean(b)`` over the same images (position i of both is image i), bootstrapped by image.

    Pairs where either value is NaN are dropped. For values measured on different images, bootstrap each
    mean on its own instead.
    """
    return bootstrap(lambda x, y: np.mean(x - y), a, b, **options)


def across_seeds(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of per-seed values (one per training run) with Student's t interval over the seeds.

    ``mean +- t_{(1 + confidence) / 2, S - 1} * sd / sqrt(S)`` for ``S`` seeds (``sd`` with ``S - 1`` degrees of
    freedom): the interval for comparing training methods over training runs, e.g. per-seed differences of two
    methods, each a mean over the same images. With three seeds ``t`` is 4.30, so only effects large against the
    seed-to-seed spread are separated. Non-finite values are dropped; ``Interval.n`` counts the seeds kept.

    Args:
        values: one number per seed.
        confidence: the interval's level.

    Returns:
        The ``Interval`` with the one-sample t-test's two-sided p-value of "the mean is 0"; ``(nan, nan)`` with fewer
        than two seeds; the mean alone where the seeds all agree, with ``no_test`` and a p-value of NaN where it is
        not 0 (``verdict`` undecided).
    """
    confidence = _check_confidence(confidence)
    (data,) = _clean(values)
    n = len(data)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, confidence)
    mean = float(np.mean(data))
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n, confidence)
    se = float(np.std(data, ddof=1) / np.sqrt(n))
    if not _spread(se, data):
        return _agreeing(mean, n, confidence)
    half = float(_scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * se
    p_value = float(2 * _scipy_stats.t.sf(abs(mean) / se, n - 1))
    return Interval(mean, mean - half, mean + half, n, confidence, p_value)


def margin_test(values: Sequence[float], margin: float, confidence: float = CONFIDENCE) -> Interval:
    """Student's t over seeds of a mean difference against ``-margin``: "comparable or better" or "worse by more".

    For per-seed differences ``d_s`` (method minus comparator, higher is better) the null hypothesis is
    ``mean(d) = -margin``, tested two-sided: ``across_seeds(d + margin)``, with the p-value
    ``2 P(T_{S-1} >= |mean(d) + margin| / se)``. Where it is rejected, the interval of ``d + margin`` lies wholly above
    zero ("comparable or better within ``margin``", the non-inferiority claim at one-sided level ``(1 + confidence) /
    2``) or wholly below it ("worse by more than ``margin``"): one test decides both, so one family member
    (``holm``) carries either verdict.

    Args:
        values: one difference per seed.
        margin: how much worse still counts as comparable, > 0, fixed before the data are seen.
        confidence: the interval's two-sided level.

    Returns:
        The ``Interval`` of ``d + margin`` with the two-sided p-value (NaN with fewer than two seeds, or seeds that
        all agree).
    """
    if isinstance(margin, (bool, np.bool_)) or not isinstance(margin, numbers.Real) or not 0 < margin < math.inf:
        raise ValueError(f"margin must be a finite number > 0, got {margin!r}.")
    (data,) = _clean(values)
    return across_seeds(data + float(margin), confidence)


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """A rate ``successes / trials`` with its Wilson score interval (``scipy.stats.binomtest``)."""
    successes, trials = _check_count(successes, "successes", 0), _check_count(trials, "trials", 0)
    confidence = _check_confidence(confidence)
    if successes > trials:
        raise ValueError(f"successes ({successes}) cannot exceed trials ({trials}).")
    if trials == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, confidence)
    ci = _scipy_stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(successes / trials, *_holding(successes / trials, ci.low, ci.high), trials, confidence)


def rate_difference(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                    confidence: float = CONFIDENCE) -> Interval:
    """``a - b`` for two rates on independent trials: Newcombe's hybrid score interval and Fisher's exact p-value.

    With Wilson intervals ``[l_a, u_a]``, ``[l_b, u_b]`` of the two rates and ``d = p_a - p_b``, the interval is
    ``[d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2), d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2)]`` (Newcombe 1998, method 10);
    the p-value is that of Fisher's exact test of equal rates (``scipy.stats.fisher_exact``), two-sided.

    Returns:
        The ``Interval`` (``n`` the smaller of the two trial counts); undefined where a rate has no trials.
    """
    a, b = wilson(successes_a, trials_a, confidence), wilson(successes_b, trials_b, confidence)
    if not (a.n and b.n):
        return Interval(float("nan"), float("nan"), float("nan"), 0, confidence)
    d = a.estimate - b.estimate
    low = d - math.hypot(a.estimate - a.low, b.high - b.estimate)
    high = d + math.hypot(a.high - a.estimate, b.estimate - b.low)
    table = [[successes_a, trials_a - successes_a], [successes_b, trials_b - successes_b]]
    p_value = float(_scipy_stats.fisher_exact(table).pvalue)
    return Interval(d, low, high, min(a.n, b.n), confidence, p_value)


def _outcomes(values, name: str) -> np.ndarray:
    """Per-trial outcomes as a bool array: bools, or the numbers 0 and 1 (NaN and other numbers refused)."""
    array = _as_values(values) if not (isinstance(values, np.ndarray) and values.dtype == bool) else values
    if array.dtype != bool:
        bad = array[(array != 0) & (array != 1)]
        if bad.size:
            raise ValueError(f"{name} must hold one outcome per trial, True/False or 1/0, got {bad[:4]} (a NaN "
                             "outcome is not a trial: drop it from both a and b first).")
    return array.astype(bool)


def _cluster_codes(groups, n: int) -> np.ndarray:
    """Integer codes of ``n`` cluster labels (any hashable value: a number, a string, a tuple), one per trial.

    A missing label (None, NaN) or an unhashable one (a list, an array row) is refused.
    """
    if isinstance(groups, (str, bytes, dict)) or not hasattr(groups, "__len__"):
        raise TypeError(f"groups must be a sequence of cluster labels, one per trial, got {type(groups).__name__}.")
    if len(groups) != n:
        raise ValueError(f"groups must name the cluster of each of the {n} trials, got {len(groups)} names.")
    labels = list(groups.detach().cpu().tolist() if hasattr(groups, "detach") else
                  groups.tolist() if isinstance(groups, np.ndarray) else groups)
    for label in labels:
        if label is None or (isinstance(label, numbers.Real) and not math.isfinite(label)):
            raise ValueError(f"groups must name a cluster for every trial, got {label!r}; drop that trial from a, b "
                             "and groups, or give it a label.")
        try:
            hash(label)
        except TypeError:
            raise TypeError(f"groups must hold one hashable label per trial (a number, a string or a tuple), got "
                            f"{type(label).__name__} {label!r}; pass a 1-d sequence of labels.") from None
    return pd.Series(labels, dtype=object).factorize()[0]


def paired_rate_difference(a: Sequence[bool], b: Sequence[bool], groups: Sequence | None = None,
                           confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """``rate(a) - rate(b)`` for two outcomes observed on the same trials: a cluster bootstrap interval, McNemar's p.

    The estimate is ``mean(a) - mean(b)``. The interval resamples the clusters ``groups`` (e.g. one image attacked
    at several radii: its trials are not independent; ``None``: every trial its own) and recomputes
    ``sum(a - b) / trials`` (percentile interval). The p-value is McNemar's exact test: under no difference, the
    ``n10`` trials with ``a`` only and the ``n01`` with ``b`` only split as a fair coin, ``p = P(|B - m/2| >=
    |n10 - m/2|)`` for ``B ~ Binomial(m = n10 + n01, 1/2)`` (1 where no trial is discordant).

    Args:
        a: the first outcome of each trial (bool).
        b: the second outcome of each trial (bool), paired with ``a``.
        groups: the cluster of each trial.
        confidence: the interval's level.
        n_resamples: the bootstrap's resamples of the clusters.
        seed: the bootstrap's seed.

    Returns:
        The ``Interval`` (``n`` the number of trials). Where every resample gives the same difference (all trials
        discordant the same way, or a single cluster) the interval is the estimate alone with ``no_test``: no verdict.
    """
    confidence = _check_confidence(confidence)
    n_resamples = _check_count(n_resamples, "n_resamples (a percentile interval from fewer than 100 resamples is "
                               "noise; the default is 2,000)", MIN_RESAMPLES)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise TypeError(f"seed must be an integer >= 0 (Python or numpy), got {seed!r}.")
    a, b = (_outcomes(v, name) for v, name in ((a, "a"), (b, "b")))
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-d outcomes of the same trials, got shapes {a.shape} and {b.shape}.")
    n = len(a)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, confidence)
    diff = a.astype(float) - b.astype(float)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    p_value = float(_scipy_stats.binomtest(n10, n10 + n01, 0.5).pvalue) if n10 + n01 else 1.0
    codes = np.arange(n) if groups is None else _cluster_codes(groups, n)
    sums, sizes = np.bincount(codes, weights=diff), np.bincount(codes).astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_resamples, len(sums)))
    resampled = sums[idx].sum(1) / sizes[idx].sum(1)
    tail = (1 - confidence) / 2 * 100
    estimate = float(diff.mean())
    if estimate != 0 and not _spread(float(np.std(resampled)), resampled):
        # every resample alike (all trials discordant the same way, or one cluster): the bootstrap cannot say how far
        # the estimate would move; McNemar's p is kept for holm, and no direction is stated
        return Interval(estimate, estimate, estimate, n, confidence, p_value, no_test=True)
    return Interval(estimate, *_holding(estimate, *np.percentile(resampled, [tail, 100 - tail])), n, confidence,
                    p_value)


def verdict(interval: Interval, above: str = "larger", below: str = "smaller", unit: str = "images") -> str:
    """The word the interval supports: ``above`` (whole interval > 0), ``below`` (< 0), else undecided.

    Undecided too where units that all agree supported no test (``Interval.no_test``: ``across_seeds([0.1, 0.1,
    0.1])``).

    Returns:
        ``above``, ``below`` or ``"not distinguishable with N <unit>"``.
    """
    if not isinstance(interval, Interval):
        raise TypeError(f"verdict reads an Interval (from bootstrap_mean, paired_difference or wilson), got "
                        f"{type(interval).__name__}.")
    for name, word in (("above", above), ("below", below), ("unit", unit)):
        if not isinstance(word, str):
            raise TypeError(f"{name} must be a string, got {type(word).__name__}.")
    return {1: above, -1: below}.get(interval.sign, f"not distinguishable with {interval.n} {unit}")


def holm(p_values: Sequence[float], alpha: float = 1 - CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down procedure over a family of comparisons: which to reject, and the adjusted p-values.

    With the ``m`` finite p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of the i-th is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``, and a comparison is rejected (its verdict stated) when its adjusted
    value is at most ``alpha``: the chance of stating any false verdict in the family is at most ``alpha``, whatever
    the dependence between the comparisons (Holm 1979). NaN entries (comparisons not made) are not in the family.

    Args:
        p_values: one p-value per comparison (NaN: not made).
        alpha: the family-wise error rate.

    Returns:
        ``(reject, adjusted)``: a bool array and a float array (NaN where the p-value was NaN), in the given order.
    """
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1) (0.05: a 5 % family-wise error rate), got {alpha!r}.")
    p = _as_values(p_values, "p_values")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[(p < 0) | (p > 1)][:4]}.")
    adjusted = np.full(p.shape, np.nan)
    made = np.flatnonzero(np.isfinite(p))
    order = made[np.argsort(p[made], kind="mergesort")]
    m = len(order)
    if m:
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return np.isfinite(adjusted) & (adjusted <= alpha), adjusted
