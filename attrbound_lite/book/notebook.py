"""What every chapter's notebook does first (``setup``), and gluing values and figures for its prose."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping

import numpy as np
import torch

from ..runtime import resolve_device
from .profiles import Settings, chapter_settings

__all__ = ["setup", "glue_all", "glue_figure"]


def setup(profile: str, chapter: str, *, seed: int | None = None, **parameters) -> Settings:
    """Start a chapter: check and apply the profile, silence tqdm, set the style, seed and pick the device.

    ``profile`` is "ci" or "full" (else ``ValueError``) and is applied to the chapter's ``parameters`` by
    ``profiles.chapter_settings``; the tqdm warning silenced is ``IProgress`` (no ipywidgets in the kernel); the style
    is the figures'; ``seed`` (when given) seeds torch's global generator; the device comes from
    ``runtime.resolve_device`` (CUDA when available). Returns the settings::

        s = book.setup(profile, "05_bounds", seed=seed, datasets=datasets, n_samples=n_samples, ig_steps=ig_steps)
        s.n_samples, s.datasets, s.device, s.model_dir
    """
    settings = chapter_settings(profile, chapter, **parameters)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets
    from .style import set_style

    set_style()
    if seed is not None:
        torch.manual_seed(seed)
    return dataclasses.replace(settings, seed=seed, device=resolve_device())


def _plain(value):
    """Python scalars for numpy ones: a glued ``np.float64`` would show its repr in the text."""
    return value.item() if isinstance(value, np.generic) else value


def glue_all(values: Mapping) -> None:
    """``myst_nb.glue(name, value, display=False)`` for every item: the prose quotes them by name."""
    from myst_nb import glue

    for name, value in values.items():
        glue(name, _plain(value), display=False)


def glue_figure(name: str, fig) -> None:
    """Glue a figure under ``name`` (without displaying it) and close it."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)
