"""The student edition of the book: the same executed pages with every exercise's solution taken out.

    attrbound book --student          # after (or instead of) a build: OUT/student/_build/html/index.html

Solutions are sphinx-exercise ``solution`` directives in the chapters' markdown cells (and code cells tagged
``solution``, for coding exercises). They are removed from the executed notebooks before the HTML is rendered, not
hidden by the theme: a page's ``.ipynb`` download is the executed notebook, and what a student must not see must
not be in it (MyST-NB keeps ``remove-input`` cells in the download). ``student_edition`` then reads back every
file it wrote and refuses to finish if any still holds a solution.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat

from .runner import EXECUTED_DIR, BookError, _render

__all__ = ["SOLUTION_TAG", "strip_solutions", "solution_texts", "secret_lines", "solution_leaks", "student_edition"]

SOLUTION_TAG = "solution"  # a code cell with this tag is the reference solution of a coding exercise
_SOLUTION = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution(?:-start)?\}.*?^(?P=fence)[ \t]*$\n?", re.M | re.S)
_NOTE = ("```{note}\nThis is the student edition: the solution of each exercise is in the instructor's edition.\n"
         "```\n")


def solution_texts(nb) -> list[str]:
    """The text of every solution in notebook ``nb`` (a ``NotebookNode``): directive bodies and tagged code cells."""
    texts = [m.group(0) for cell in nb.cells if cell.cell_type == "markdown" for m in _SOLUTION.finditer(cell.source)]
    texts += [cell.source for cell in nb.cells if SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])]
    return texts


def strip_solutions(nb) -> int:
    """Remove every solution from ``nb`` in place (see the module's docstring); returns how many were removed.

    A chapter with exercises gets a note, after its exercises heading, that the solutions are left out.
    """
    removed = 0
    kept = []
    for cell in nb.cells:
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            removed += 1
            continue
        if cell.cell_type == "markdown":
            cell.source, n = _SOLUTION.subn("", cell.source)
            removed += n
            if cell.source.startswith("## Exercises"):
                head, _, rest = cell.source.partition("\n")
                cell.source = f"{head}\n\n{_NOTE}{rest}"
        kept.append(cell)
    nb.cells = kept
    return removed


def secret_lines(solutions: list[str], public: list[str]) -> list[str]:
    """The distinctive lines of ``solutions`` that no ``public`` text holds (what a student may see).

    Lines longer than 30 characters, not the directive's own; ``public`` is the exercises, checks and chapters.
    """
    seen = "\n".join(public)
    lines = {line.strip() for text in solutions for line in text.splitlines()
             if len(line.strip()) > 30 and not line.lstrip().startswith(("```", ":::", ":class:", ":label:"))}
    return sorted(line for line in lines if line not in seen)


def solution_leaks(folder: str | Path, secrets: list[str]) -> list[str]:
    """The files under ``folder`` that hold a solution.

    A notebook with a solution directive or tagged cell, a page with a rendered solution (sphinx-exercise's
    ``solution`` class), or any file holding one of ``secrets`` (lines of the solutions' text).
    """
    leaks = []
    for file in sorted(Path(folder).rglob("*")):
        if not file.is_file() or file.suffix not in (".html", ".ipynb", ".txt", ".md", ".js"):
            continue
        text = file.read_text(errors="ignore")
        if file.suffix == ".ipynb":
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(cell.source for cell in nb.cells)
            if solution_texts(nb):
                leaks.append(f"{file}: a solution cell or directive")
        if file.suffix == ".html" and re.search(r'class="[^"]*\bsolution\b', text):
            leaks.append(f"{file}: a rendered solution")
        leaks += [f"{file}: {line[:60]}" for line in secrets if line in text]
    return leaks


def student_edition(out: str | Path) -> Path:
    """Write the student edition of the book built in ``out`` (its executed notebooks) to ``out/student``.

    Args:
        out: the output folder of a build (``attrbound book --out``), holding ``source/`` with executed notebooks.

    Returns:
        The student edition's ``index.html``.

    Raises:
        BookError: ``out`` holds no executed notebooks, or a written file still holds a solution.
    """
    out = Path(out).resolve()
    source, target = out / "source", out / "student"
    executed = sorted((source / EXECUTED_DIR).glob("*.ipynb"))
    if not executed:
        raise BookError(f"{source / EXECUTED_DIR} holds no executed notebooks: build the book into {out} first "
                        f"(attrbound book --out {out}), or pass --student to that build.")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target / "source", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    notebooks = {path: nbformat.read(path, as_version=4)
                 for path in sorted((target / "source" / EXECUTED_DIR).glob("*.ipynb"))}
    secrets = [text for nb in notebooks.values() for text in solution_texts(nb)]
    for path, nb in notebooks.items():
        strip_solutions(nb)
        nbformat.write(nb, path)
    secrets = secret_lines(secrets, [cell.source for nb in notebooks.values() for cell in nb.cells])
    print("[book] jupyter-book build (student edition)", flush=True)
    _render(target / "source", target)
    leaks = solution_leaks(target / "_build", secrets)
    if leaks:
        raise BookError(f"the student edition still holds solution text: {leaks[:5]}")
    index = target / "_build" / "html" / "index.html"
    print(f"[book] student edition: {index}", flush=True)
    return index
