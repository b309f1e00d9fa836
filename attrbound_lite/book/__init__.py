"""The book's support code: everything the Jupyter Book needs and the library does not.

- ``runner``: execute the notebooks with papermill and render them with Jupyter Book (``attrbound book``);
- ``profiles``: the ``ci`` and ``full`` profiles in one place (training settings, every chapter's sizes);
- ``notebook``: ``setup``, what every chapter's notebook does first, and ``glue_all`` / ``glue_figure``;
- ``style``: the figures' style and palette (matplotlib, seaborn); each chapter's figure functions live in its
  helper module (or its ``*_figures`` sibling: ``validation_figures``, ``speed_figures``; chapter 2's in ``toy``);
- one module per chapter with long logic, the computations and the sentences its prose quotes:
  ``jacobians`` (3), ``training`` (4), ``bound_tables`` (5), ``validation`` (6), ``far`` (7), ``region`` (8),
  ``sampled`` (9), ``speed`` (10), ``reproducibility`` (11).

Importing this package is light (the runner's names need PyYAML only; ``attrbound_lite.cli`` imports them):
the other names and submodules are imported on first use, and only the figure functions (and ``setup``) need the
``book`` extra (``pip install 'attrbound-lite[book]'``).
"""

from __future__ import annotations

import importlib
import warnings

from .runner import (
    BOOK_OUT_ENV,
    BOOK_TIMES_ENV,
    EXECUTED_DIR,
    PROFILES,
    BookError,
    BookResult,
    build_book,
    glued_values,
    notebook_parameters,
    project_root,
    toc_files,
)

# tqdm.auto without ipywidgets warns "IProgress not found" on import, which a chapter's first cell would print
warnings.filterwarnings("ignore", message="IProgress not found")

_LAZY = {"setup": "notebook", "glue_all": "notebook", "glue_figure": "notebook",
         "chapter_settings": "profiles", "book_recipe": "profiles", "book_store": "profiles",
         "BOOK_PROFILES": "profiles", "Settings": "profiles"}
_SUBMODULES = ("runner", "profiles", "notebook", "style", "toy", "jacobians", "training", "bound_tables", "validation",
               "validation_figures", "far", "far_study", "region", "sampled", "speed", "speed_gpu", "speed_figures",
               "reproducibility")

__all__ = ["BOOK_OUT_ENV", "BOOK_TIMES_ENV", "EXECUTED_DIR", "PROFILES", "BookError", "BookResult", "build_book",
           "glued_values", "notebook_parameters", "project_root", "toc_files", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
