"""Build the Jupyter Book: execute the parameterised notebooks with papermill, then render with Jupyter Book 1.x.

    attrbound book --profile ci              # every notebook, CI-sized (CPU, minutes)
    attrbound book --profile full            # paper scale (meant for a GPU)
    attrbound book --only 03_jacobians -p ig_steps 16

Jupyter Book cannot inject parameters, so the pipeline has two stages, each failing loudly:

1. **Execute.** Every notebook ``notebooks/<stem>.ipynb`` (stored without outputs, kernel ``python3``, exactly
   one cell tagged ``parameters`` that defines ``profile``) is run by papermill in ``_toc.yml`` order with
   ``parameters={"profile": profile, ...}``, a per-cell timeout, ``cwd`` = ``notebooks/``, ``MPLBACKEND=agg``
   and tqdm's ``IProgress`` warning filtered (``PYTHONWARNINGS``). Parameter names are first checked against
   ``papermill.inspect_notebook``: papermill itself only warns about an unknown name, here it is an error.
   The executed copy goes where ``_toc.yml`` points (``notebooks/<stem>``, ``EXECUTED_DIR``) inside a staging copy
   of the book source (``OUT/source``: ``_config.yml``, ``_toc.yml``, ``book/`` and the bibliography files that
   ``_config.yml`` names in ``bibtex_bibfiles``), with the ``injected-parameters`` cell tagged ``remove-cell`` so the
   page does not show it. The executed copy has the same path in the staged source as its source in the repository,
   so the launch buttons (Binder, Colab) of a chapter's page open the repository's notebook. A failing cell stops
   the build with the notebook and cell named; the failed copy is kept in ``OUT/failed/`` and never rendered.
   Execution times go to ``OUT/execution_times.json``, rewritten after each notebook (entries of earlier runs
   into the same ``OUT`` are kept; those of this run carry its ``build_started`` stamp). While they run, the
   notebooks find that file through the environment variable ``ATTRBOUND_BOOK_TIMES`` (``BOOK_TIMES_ENV``), so a
   chapter can show the times of the chapters executed before it.
2. **Render.** ``jupyter-book build OUT/source --path-output OUT -W -n --all`` (``execute_notebooks: "off"``
   in ``_config.yml``; warnings and broken references are errors; no ``--keep-going``). The HTML lands in
   ``OUT/_build/html``.

``OUT`` defaults to ``_build/`` in the project root. The staging copy keeps the repository tree free of
executed notebooks and lets a test build into a temporary folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .._io import atomic_path, make_dirs, output_folder, write_json

__all__ = ["BookError", "BookResult", "build_book", "toc_files", "notebook_parameters", "glued_values", "PROFILES",
           "EXECUTED_DIR", "BOOK_TIMES_ENV", "BOOK_OUT_ENV", "RETRAIN_ENV", "SUMMARY_PAGES",
           "add_subcommands", "cmd_book"]

PROFILES = ("ci", "full")
SUMMARY_PAGES = ("01_findings",)     # pages that read the other chapters' results: executed last
EXECUTED_DIR = "notebooks"          # where _toc.yml points for executed notebooks (inside the staged source): the
                                    # sources' own path, which the launch buttons open in the repository
NOTEBOOK_DIR = "notebooks"
KERNEL = "python3"
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "_static")  # _static: the book's stylesheet (where present)
DEFAULT_TIMEOUT = 1800               # seconds per cell
BOOK_TIMES_ENV = "ATTRBOUND_BOOK_TIMES"  # the path of OUT/execution_times.json, set while notebooks execute
RETRAIN_ENV = "ATTRBOUND_BOOK_RETRAIN"  # "1" while notebooks execute: retrain the zoo into OUT/models/<profile>
BOOK_OUT_ENV = "ATTRBOUND_BOOK_OUT"      # OUT, set while notebooks execute: chapters 4-7 keep models and sweeps there


class BookError(RuntimeError):
    """A notebook or the book build failed; the message names the notebook (and cell) or the warnings."""


@dataclass
class BookResult:
    """What ``build_book`` returns: the HTML and staged source folders, execution times, build seconds, pages."""

    html: Path                                   # OUT/_build/html
    source: Path                                 # OUT/source, the staged book source
    times: dict = field(default_factory=dict)    # stem -> execution seconds (this run)
    build_seconds: float = 0.0
    pages: list[Path] = field(default_factory=list)


def project_root() -> Path:
    """The folder holding ``_toc.yml``: the current directory if it has one, else the package's parent."""
    cwd = Path.cwd()
    if (cwd / "_toc.yml").is_file():
        return cwd
    root = Path(__file__).resolve().parents[2]
    if (root / "_toc.yml").is_file():
        return root
    raise BookError("no _toc.yml in the current directory or next to the package: run from the project root "
                    "(the book's sources are not part of an installed wheel).")


def toc_files(toc_path: str | Path) -> list[str]:
    """The ``file`` entries of a jb-book ``_toc.yml`` in reading order, root first."""
    toc = yaml.safe_load(Path(toc_path).read_text())
    if not isinstance(toc, dict) or toc.get("format") != "jb-book" or "root" not in toc:
        raise BookError(f"{toc_path}: expected a jb-book table of contents with a root.")
    files = [str(toc["root"])]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(str(entry["file"]))
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return files


def _executed_stems(files: list[str]) -> list[str]:
    prefix = EXECUTED_DIR + "/"
    return [f[len(prefix):].removesuffix(".ipynb") for f in files if f.startswith(prefix)]


def notebook_parameters(path: str | Path) -> dict:
    """The parameters of a notebook (``papermill.inspect_notebook``), after checking its parameters cell.

    The check: the notebook has exactly one cell tagged ``parameters``, papermill parses every assignment in it, and
    it defines ``profile``.
    """
    import nbformat
    import papermill

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise BookError(f"{path.name}: needs exactly one cell tagged 'parameters', found {len(tagged)}.")
    params = papermill.inspect_notebook(str(path))
    assigned = re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]*)?=", "".join(nb.cells[tagged[0]].source), flags=re.M)
    unparsed = [name for name in assigned if name not in params]
    if unparsed:  # papermill only logs "Unable to parse line", and the chapter could not be parameterised
        raise BookError(f"{path.name}: papermill cannot parse the parameters {unparsed} (cell {tagged[0]}); keep each "
                        "to one line `name = value  # comment`, and its comment free of characters papermill reads "
                        "as syntax (such as '=', as in '<=').")
    if "profile" not in params:
        raise BookError(f"{path.name}: the parameters cell (cell {tagged[0]}) must define `profile` "
                        f"(one of {PROFILES}); it defines {sorted(params)}.")
    return params


@contextlib.contextmanager
def _environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _error_outputs(nb) -> list[str]:
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            elif out.get("output_type") == "stream" and "Traceback (most recent call last)" in out.get("text", ""):
                found.append(f"cell {i}: a traceback printed to {out.get('name')}")
    return found


def _execute(stem: str, src: Path, dest: Path, failed_dir: Path, parameters: dict, timeout: int, cwd: Path) -> float:
    """Run one notebook with papermill into ``dest``; raise ``BookError`` naming the cell on failure."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    failed = failed_dir / f"{stem}.ipynb"
    failed.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # tqdm.auto warns at import, in a kernel without ipywidgets, before a notebook's first line could filter it
    warnings = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"]))
    with _environ(MPLBACKEND="agg", PYDEVD_DISABLE_FILE_VALIDATION="1", PYTHONWARNINGS=warnings):
        try:
            papermill.execute_notebook(str(src), str(failed), parameters=parameters, kernel_name=KERNEL,
                                       execution_timeout=timeout, cwd=str(cwd), progress_bar=False,
                                       log_output=False, request_save_on_cell_execute=False)
        except PapermillExecutionError as err:
            raise BookError(f"notebook {stem}: cell {err.cell_index} (execution count {err.exec_count}) raised "
                            f"{err.ename}: {err.evalue}. The executed copy with the traceback is {failed}.") from None
        except Exception as err:  # timeouts, dead kernels, missing kernel spec
            raise BookError(f"notebook {stem}: execution failed: {type(err).__name__}: {err} "
                            f"(per-cell timeout {timeout} s). Partial copy: {failed}.") from None
    seconds = time.perf_counter() - start
    nb = nbformat.read(failed, as_version=4)
    errors = _error_outputs(nb)
    if errors:
        raise BookError(f"notebook {stem}: error output in " + "; ".join(errors) + f". See {failed}.")
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    with atomic_path(dest) as tmp:
        nbformat.write(nb, str(tmp))
    failed.unlink()
    with contextlib.suppress(OSError):
        failed_dir.rmdir()
    return seconds


def _bibfiles(root: Path) -> list[str]:
    """The bibliography files that ``_config.yml`` names (``bibtex_bibfiles``), relative to the book's root."""
    config = yaml.safe_load((root / "_config.yml").read_text()) or {}
    files = config.get("bibtex_bibfiles") or []
    return [files] if isinstance(files, str) else [str(f) for f in files]


def _clear_except(folder: Path, keep: Path) -> None:
    """Remove everything in ``folder`` but ``keep`` (a path inside it) and the folders that lead to it."""
    for item in folder.iterdir():
        if item == keep:
            continue
        if item.is_dir() and keep.is_relative_to(item):
            _clear_except(item, keep)
        elif item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()


def _stage(root: Path, source: Path) -> None:
    """Copy the book sources into ``source``, keeping executed notebooks from earlier runs (``EXECUTED_DIR``)."""
    bibfiles = _bibfiles(root)
    missing = [name for name in bibfiles if not (root / name).is_file()]
    if missing:
        raise BookError(f"_config.yml names the bibliography {missing} (bibtex_bibfiles), which {root} lacks.")
    source.mkdir(parents=True, exist_ok=True)
    _clear_except(source, source / EXECUTED_DIR)
    for name in (*BOOK_SOURCES, *bibfiles):
        src = root / name
        if not src.exists() and name == "_static":
            continue
        if src.is_dir():
            shutil.copytree(src, source / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("_executed", ".ipynb_checkpoints", "__pycache__"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, source / name)


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise BookError("jupyter-book is not installed: run `bash scripts/ensure-venv.sh --book` (the `book` extra).")


def _render(source: Path, out: Path) -> float:
    cmd = [*_jupyter_book(), "build", str(source), "--path-output", str(out), "-W", "-n", "--all"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    (out / "build.log").write_text(log)
    if proc.returncode != 0 or "Traceback (most recent call last)" in proc.stdout:
        problems = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line or "rror:" in line]
        detail = "\n  ".join(problems[-20:]) or log[-3000:]
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); warnings are errors:\n  {detail}\n"
                        f"Full log: {out / 'build.log'}")
    return seconds


def build_book(profile: str = "ci", notebooks=None, out=None, timeout: int = DEFAULT_TIMEOUT,
               parameters: dict | None = None, root=None, render: bool = True, retrain_zoo: bool = False
               ) -> BookResult:
    """Execute the book's notebooks with ``profile`` and ``parameters``, then build the HTML into ``out``.

    ``notebooks``: stems, default all, in ``_toc.yml`` order. ``parameters`` apply to every selected notebook, names
    checked. ``out`` defaults to ``<root>/_build``. Notebooks not selected reuse their executed copy from an earlier run
    into the same ``out``; without one they are left out of this build's table of contents. Pages that summarise the
    others (``SUMMARY_PAGES``) execute last, whatever their place in the book. ``retrain_zoo``: the chapters retrain
    the reference zoo from its recipes into ``out/models/<profile>`` instead of loading the committed weights. Raises
    ``BookError`` on any failure.
    """
    if profile not in PROFILES:
        raise BookError(f"unknown profile {profile!r}; choose one of {PROFILES}.")
    root = Path(root) if root is not None else project_root()
    out = Path(out) if out is not None else root / "_build"
    out = out.resolve()
    parameters = dict(parameters or {})
    if "profile" in parameters:
        raise BookError("pass the profile with profile=..., not as a parameter.")
    files = toc_files(root / "_toc.yml")
    stems = _executed_stems(files)
    sources = {p.stem: p for p in sorted((root / NOTEBOOK_DIR).glob("*.ipynb"))}
    missing = [s for s in stems if s not in sources]
    if missing:
        raise BookError(f"_toc.yml lists {[EXECUTED_DIR + '/' + s for s in missing]} but {NOTEBOOK_DIR}/ has no "
                        f"such notebook.")
    orphans = [s for s in sources if s not in stems]
    if orphans:
        raise BookError(f"notebooks {orphans} are not in _toc.yml: add them as `- file: {EXECUTED_DIR}/<stem>`.")
    selected = stems if notebooks is None else list(notebooks)
    unknown = [s for s in selected if s not in sources]
    if unknown:
        raise BookError(f"unknown notebook(s) {unknown}; the book's notebooks are {stems}.")
    selected = [s for s in stems if s in selected]  # toc order, summaries last
    selected.sort(key=lambda stem: stem in SUMMARY_PAGES)

    # validate everything before running anything
    for stem in selected:
        known = notebook_parameters(sources[stem])
        bad = sorted(set(parameters) - set(known))
        if bad:
            raise BookError(f"notebook {stem}: unknown parameter(s) {bad}; its parameters are {sorted(known)}.")

    try:
        make_dirs(out)  # a read-only or virtual file system (/proc) is named with the fix, not as a raw OSError
    except ValueError as err:
        raise BookError(f"--out (out=) {out}: {err}") from None
    source = out / "source"
    _stage(root, source)
    times_path = out / "execution_times.json"
    import json
    record = json.loads(times_path.read_text()) if times_path.exists() else {}
    record.setdefault("notebooks", {})
    started = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    record["build_started"] = started
    write_json(times_path, record)
    result = BookResult(html=out / "_build" / "html", source=source)
    with _environ(**{BOOK_TIMES_ENV: str(times_path), BOOK_OUT_ENV: str(out), RETRAIN_ENV: "1" if retrain_zoo else ""}):
        for stem in selected:
            print(f"[book] executing {stem} (profile {profile})", flush=True)
            seconds = _execute(stem, sources[stem], source / EXECUTED_DIR / f"{stem}.ipynb", out / "failed",
                               {"profile": profile, **parameters}, timeout, root / NOTEBOOK_DIR)
            result.times[stem] = seconds
            record["notebooks"][stem] = {"seconds": round(seconds, 3), "profile": profile,
                                         "parameters": parameters, "build_started": started,
                                         "executed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_json(times_path, record)
            print(f"[book] {stem}: {seconds:.1f} s", flush=True)

    # the staged _toc.yml: drop executed notebooks that do not exist (an --only build without earlier run)
    absent = [s for s in stems if not (source / EXECUTED_DIR / f"{s}.ipynb").exists()]
    if absent:
        print(f"[book] not executed in this output folder, left out of this build: {absent}", flush=True)
        toc = yaml.safe_load((source / "_toc.yml").read_text())

        def prune(entries):
            kept = []
            for entry in entries or []:
                if entry.get("file", "").removeprefix(EXECUTED_DIR + "/") in absent:
                    continue
                for key in ("chapters", "sections", "parts"):
                    if key in entry:
                        entry[key] = prune(entry[key])
                kept.append(entry)
            return kept

        for key in ("chapters", "parts"):
            if key in toc:
                toc[key] = prune(toc[key])
        (source / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    if not render:
        return result
    print("[book] jupyter-book build", flush=True)
    result.build_seconds = _render(source, out)
    record["build_seconds"] = round(result.build_seconds, 3)
    record["profile"] = profile
    write_json(times_path, record)
    built = [f for f in files if f.removeprefix(EXECUTED_DIR + "/") not in absent]
    result.pages = [result.html / f"{f.removesuffix('.ipynb').removesuffix('.md')}.html" for f in built]
    lost = [p for p in result.pages if not p.is_file()]
    if lost:
        raise BookError(f"jupyter-book did not write {[str(p) for p in lost]}.")
    print(f"[book] built {len(result.pages)} pages in {result.build_seconds:.1f} s: {result.html / 'index.html'}",
          flush=True)
    return result


def glued_values(path: str | Path) -> dict:
    """The values glued with ``myst_nb.glue`` in an executed notebook, by name.

    Python literals (numbers, strings, booleans) decoded from their text repr, other values (figures, tables) as the
    repr text.
    """
    import ast

    import nbformat

    values = {}
    for cell in nbformat.read(Path(path), as_version=4).cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook", {})
            if "name" not in meta:
                continue
            data = out.get("data", {})
            text = data.get(meta.get("mime_prefix", "") + "text/plain", data.get("text/plain", ""))
            try:
                values[meta["name"]] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                values[meta["name"]] = text
    return values


def add_subcommands(sub) -> None:
    """Register ``attrbound book`` on the CLI's subparsers."""
    from ..cli import _positive_int

    b = sub.add_parser("book", help="execute the notebooks (papermill) and build the Jupyter Book",
                       description=__doc__.split("\n\n")[0])
    b.add_argument("--profile", default="ci", choices=PROFILES, help="ci: CPU-sized; full: paper scale")
    b.add_argument("--only", action="append", metavar="STEM", default=None,
                   help="execute only this notebook (repeatable), e.g. 03_jacobians; others reuse earlier runs")
    b.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                   help="set a notebook parameter (VALUE parsed as YAML), checked against the notebooks")
    b.add_argument("--out", type=output_folder, default=None, help="output folder (default: _build)")
    b.add_argument("--timeout", type=_positive_int, default=DEFAULT_TIMEOUT, help="per-cell timeout in seconds")
    b.add_argument("--retrain-zoo", action="store_true", help="retrain the reference models from their recipes "
                   "into OUT/models/ (hours on a CPU) instead of loading the committed zoo")
    b.add_argument("--student", action="store_true", help="also write the student edition (no solutions) into "
                   "OUT/student/, from the notebooks executed in OUT (only those not executed there yet are run)")


def cmd_book(args) -> int:
    """``attrbound book``: build the book with the parsed command-line arguments.

    Args:
        args: the parsed arguments (``profile``, ``only``, ``out``, ``timeout``, ``parameter``, ``retrain_zoo``,
            ``student``: also write the student edition, ``student.student_edition``).

    Returns:
        The exit status, 0 (a failure raises ``BookError``).

    Raises:
        BookError: ``-p profile ...`` (the profile is ``--profile``), a value that is not YAML, or a failure of the
            build.
    """
    parameters = {}
    for name, value in args.parameter:
        if name == "profile":
            raise BookError(f"-p profile {value}: the profile is not a notebook parameter; use --profile {value}.")
        try:
            parameters[name] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            first = str(err).strip().splitlines()[0]
            raise BookError(f"-p {name} {value}: the value is not valid YAML ({first}); write a number, true or "
                            "false, a list such as [1, 2], or a quoted string.") from None
    notebooks = args.only
    if args.student and notebooks is None:  # reuse what an earlier build into the same folder executed
        root = project_root()
        done = (Path(args.out) if args.out is not None else root / "_build").resolve() / "source" / EXECUTED_DIR
        notebooks = [s for s in _executed_stems(toc_files(root / "_toc.yml")) if not (done / f"{s}.ipynb").exists()]
    build_book(profile=args.profile, notebooks=notebooks, out=args.out, timeout=args.timeout,
               parameters=parameters, retrain_zoo=args.retrain_zoo)
    if args.student:
        from .student import student_edition

        student_edition(args.out if args.out is not None else project_root() / "_build")
    return 0
