"""The work of a sweep, cut into shards: blocks of samples of one model, each with its own seed."""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime import derive_seed
from .config import check_loaded

__all__ = ["Shard", "plan_shards"]


@dataclass(frozen=True)
class Shard:
    """Samples ``start:stop`` (positions in the evaluated data) of model ``model``; ``attacks``: its rows.

    Args:
        model: the model's name.
        index: the shard's number within the model, from 0.
        start: first sample position.
        stop: one past the last sample position.
        seed: ``derive_seed(seed, model, index)``.
        attacks: rows of the shard: samples x attributions x (norm, eps) x (attack, restart).
    """

    model: str
    index: int
    start: int
    stop: int
    seed: int
    attacks: int

    @property
    def id(self) -> str:
        """``<model>/<index, 5 digits>``."""
        return f"{self.model}/{self.index:05d}"

    @property
    def file(self) -> str:
        """The shard's table, relative to the sweep folder."""
        return f"shards/{self.model}/shard-{self.index:05d}.parquet"


def plan_shards(cfg: dict) -> list[Shard]:
    """Every shard of the sweep, model by model.

    Args:
        cfg: a config of ``load_config`` (the YAML file's own mapping is refused).

    Returns:
        The shards; shard k of model m covers samples ``k * shard_size`` to ``(k + 1) * shard_size`` (the last
        one fewer) and is seeded with ``derive_seed(seed, m, k)``.

    Raises:
        TypeError: ``cfg`` is not a config of ``load_config``.
    """
    check_loaded(cfg, "plan_shards")
    n, size = cfg["data"]["n_samples"], cfg["shard_size"]
    per_sample = len(cfg["attributions"]) * sum(len(v) for v in cfg["eps"].values()) * sum(
        a["restarts"] or cfg["restarts"] for a in cfg["attacks"])
    return [Shard(m["name"], k, start, min(start + size, n), derive_seed(cfg["seed"], m["name"], k),
                  (min(start + size, n) - start) * per_sample)
            for m in cfg["models"] for k, start in enumerate(range(0, n, size))]
