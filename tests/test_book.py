"""The book: notebooks stored clean, parameters validated, the CI profile executed and rendered, and every
built page opened in headless Chromium.

Needs the ``book`` extra (``bash scripts/ensure-venv.sh --book``; ``make test`` and ``.ci/run`` install it).
Without it these tests are skipped, unless ``ATTRBOUND_REQUIRE_BOOK=1`` (set by ``.ci/run``) makes that a
failure. The browser test needs Debian's ``chromium``; running as root it installs it with apt-get when
missing, otherwise it fails with the command to run.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

if os.environ.get("ATTRBOUND_REQUIRE_BOOK") == "1":
    import nbformat
    import papermill
else:
    nbformat = pytest.importorskip("nbformat", reason="the book extra is not installed")
    papermill = pytest.importorskip("papermill", reason="the book extra is not installed")
    pytest.importorskip("jupyter_book", reason="the book extra is not installed")

from conftest import data_mirror  # noqa: E402

from attrbound_lite.book.far import NOT_COMPARED  # noqa: E402
from attrbound_lite.book.runner import (  # noqa: E402
    BOOK_TIMES_ENV,
    EXECUTED_DIR,
    BookError,
    _environ,  # noqa: E402
    build_book,
    glued_values,
    notebook_parameters,
    toc_files,
)

# The first test that uses the `book` fixture pays for executing every notebook (about 13 minutes on 2 CPU
# cores, most of it training chapter 4's and 7's models): more than the suite's default per-test limit.
pytestmark = pytest.mark.timeout(3000)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000", "--window-size=1280,900"]


def _parameters_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]


# ---------------------------------------------------------------------------------------------- sources

def test_there_are_notebooks_and_the_toc_points_at_their_executed_copies():
    assert len(NOTEBOOKS) >= 2
    listed = toc_files(ROOT / "_toc.yml")
    for path in NOTEBOOKS:
        assert f"{EXECUTED_DIR}/{path.stem}" in listed, f"{path.name} is not in _toc.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_clean_with_one_parameters_cell(path):
    stored = json.loads(path.read_text())  # as stored: nbformat.read would add missing ids (and warn in the kernels)
    no_id = [i for i, c in enumerate(stored["cells"]) if "id" not in c]
    assert not no_id, f"{path.name}: cells {no_id} have no id (nbformat.validator.normalize adds them)"
    ids = [c["id"] for c in stored["cells"]]
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids {sorted({i for i in ids if ids.count(i) > 1})}"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "kernel must be python3"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing " \
                      "(jupyter nbconvert --clear-output --inplace)"
    cells = _parameters_cells(nb)
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', need exactly one"
    params = notebook_parameters(path)  # every assignment parses (papermill would only log a line it cannot read)
    assert params["profile"]["default"] in ('"ci"', "'ci'")
    # values derived from parameters come after the parameters cell: no code cell before it but the Colab install
    # cell (tagged "colab-install", identical in every notebook: tests/test_publishing.py)
    before = [c for c in nb.cells[:cells[0]] if c.cell_type != "markdown"]
    assert all("colab-install" in c.metadata.get("tags", []) for c in before) and len(before) <= 1, \
        f"{path.name}: only markdown and the colab-install cell may come before the parameters cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_plumbing_is_hidden_from_the_reader(path):
    """Cells that glue values, and the parameters cell, are hidden or removed: a page shows the lecture's code only
    where the code is the lesson (chapters 2 and 3 call the package in the open)."""
    nb = nbformat.read(path, as_version=4)
    hidden = {"hide-input", "hide-cell", "remove-cell", "remove-input"}
    for i, cell in enumerate(nb.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type == "code" and ("book.glue" in cell.source or "parameters" in tags):
            assert tags & hidden, f"{path.name}: cell {i} glues values or holds the parameters but is shown"


def course_structure_faults(nb) -> list[str]:
    """What a chapter lacks of a course book's frame: an overview right after the title cell with learning
    objectives (at least three), a prerequisites table and the time to learn; a summary with what comes next,
    directly before the exercises where there are any."""
    cells = [c for c in nb.cells if c.cell_type == "markdown"]
    headings = [c.source.split("\n", 1)[0] for c in cells]
    faults = []
    if len(cells) < 2 or headings[1] != "## Overview" or nb.cells.index(cells[1]) != 1:
        faults.append("no '## Overview' cell directly after the title cell")
    else:
        overview = cells[1].source
        if "**Learning objectives.**" not in overview or len(re.findall(r"^- ", overview, re.M)) < 3:
            faults.append("no learning objectives (at least three)")
        if "**Prerequisites.**" not in overview or "| concept | importance |" not in overview:
            faults.append("no prerequisites table")
        if "**Time to learn.**" not in overview:
            faults.append("no time to learn")
    summary = [i for i, h in enumerate(headings) if h == "## Summary"]
    if not summary or "**What comes next.**" not in cells[summary[0]].source:
        faults.append("no '## Summary' cell with what comes next")
    elif "## Exercises" in headings and headings.index("## Exercises") != summary[0] + 1:
        faults.append("the summary is not directly before the exercises")
    return faults


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_chapter_has_the_frame_of_a_course_book(path):
    """Learning objectives, prerequisites and time first; a summary and what comes next last (issue 22)."""
    assert course_structure_faults(nbformat.read(path, as_version=4)) == [], path.name


def test_the_course_check_finds_a_missing_frame():
    """The check above fails on a chapter without objectives, with a summary after its exercises."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"),
                                         nbformat.v4.new_markdown_cell("## Overview\n\nSome words."),
                                         nbformat.v4.new_markdown_cell("## Exercises\n\n1. ..."),
                                         nbformat.v4.new_markdown_cell("## Summary\n\n**What comes next.** ...")])
    assert course_structure_faults(nb) == ["no learning objectives (at least three)", "no prerequisites table",
                                           "no time to learn", "the summary is not directly before the exercises"]


# ---------------------------------------------------------------------------------------------- refusals

def test_unknown_parameter_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(BookError, match=r"unknown parameter\(s\) \['gird_points'\]"):
        build_book("ci", notebooks=["02_bounds"], parameters={"gird_points": 3}, out=tmp_path)
    assert not (tmp_path / "source").exists()
    with pytest.raises(BookError, match="unknown profile"):
        build_book("paper", out=tmp_path)
    with pytest.raises(BookError, match="unknown notebook"):
        build_book("ci", notebooks=["99_nothing"], out=tmp_path)


def _mini_book(root: Path, cells, more: dict | None = None) -> None:
    """A book with notebook ``01_x`` made of ``cells`` and, after it, the notebooks ``more`` (stem: cells)."""
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy(ROOT / "references.bib", root / "references.bib")  # _config.yml's bibtex_bibfiles
    notebooks = {"01_x": cells, **(more or {})}
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   + "".join(f"  - file: {EXECUTED_DIR}/{stem}\n" for stem in notebooks))
    (root / "book" / "intro.md").write_text("# Intro\n\nText.\n")
    for stem, nb_cells in notebooks.items():
        nb = nbformat.v4.new_notebook(cells=nb_cells, metadata={"kernelspec": {
            "name": "python3", "language": "python", "display_name": "Python 3"}})
        nbformat.write(nb, root / "notebooks" / f"{stem}.ipynb")


def test_notebook_without_parameters_cell_is_refused(tmp_path):
    _mini_book(tmp_path, [nbformat.v4.new_markdown_cell("# X"), nbformat.v4.new_code_cell("profile = 'ci'")])
    with pytest.raises(BookError, match="exactly one cell tagged 'parameters'"):
        build_book("ci", root=tmp_path, out=tmp_path / "out")


def test_parameter_papermill_cannot_parse_is_refused(tmp_path):
    params = nbformat.v4.new_code_cell("profile = 'ci'\nwidth = 3    # inputs with n <= 784")
    params.metadata["tags"] = ["parameters"]
    _mini_book(tmp_path, [nbformat.v4.new_markdown_cell("# X"), params])
    with pytest.raises(BookError, match=r"papermill cannot parse the parameters \['width'\]"):
        build_book("ci", root=tmp_path, out=tmp_path / "out")


def test_failing_cell_fails_loudly_and_is_not_rendered(tmp_path):
    params = nbformat.v4.new_code_cell("profile = 'ci'")
    params.metadata["tags"] = ["parameters"]
    _mini_book(tmp_path, [nbformat.v4.new_markdown_cell("# X"), params,
                          nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("1 / 0")])
    with pytest.raises(BookError, match=r"notebook 01_x: cell \d+ .*ZeroDivisionError"):
        build_book("ci", root=tmp_path, out=tmp_path / "out", timeout=120)
    assert (tmp_path / "out" / "failed" / "01_x.ipynb").exists()
    assert not (tmp_path / "out" / "source" / EXECUTED_DIR / "01_x.ipynb").exists()
    assert not (tmp_path / "out" / "_build").exists()


def test_kernels_filter_tqdms_ipywidgets_warning(tmp_path):
    """tqdm.auto warns at import in a kernel without ipywidgets, before a notebook could filter it: the runner
    filters it for the kernel, so no page shows it as an stderr output."""
    params = nbformat.v4.new_code_cell("profile = 'ci'")
    params.metadata["tags"] = ["parameters"]
    _mini_book(tmp_path, [nbformat.v4.new_markdown_cell("# X"), params, nbformat.v4.new_code_cell(
        "import warnings\nwarnings.warn('IProgress not found. Please update jupyter and ipywidgets.')")])
    build_book("ci", root=tmp_path, out=tmp_path / "out", timeout=120, render=False)
    cell = nbformat.read(tmp_path / "out" / "source" / EXECUTED_DIR / "01_x.ipynb", as_version=4).cells[-1]
    assert cell.outputs == [], cell.outputs


def test_notebooks_see_the_times_of_the_chapters_executed_before_them(tmp_path):
    def params():
        cell = nbformat.v4.new_code_cell("profile = 'ci'")
        cell.metadata["tags"] = ["parameters"]
        return cell

    reader = nbformat.v4.new_code_cell(
        "import json, os\n"
        f"path = os.environ[{BOOK_TIMES_ENV!r}]\n"
        "record = json.load(open(path))\n"
        "print(json.dumps({'path': path, 'started': record['build_started'], 'seen': record['notebooks']}))")
    _mini_book(tmp_path, [nbformat.v4.new_markdown_cell("# X"), params()],
               more={"02_y": [nbformat.v4.new_markdown_cell("# Y"), params(), reader]})
    out = tmp_path / "out"
    build_book("ci", root=tmp_path, out=out, timeout=120, render=False)
    assert BOOK_TIMES_ENV not in os.environ
    seen = json.loads(nbformat.read(out / "source" / EXECUTED_DIR / "02_y.ipynb", as_version=4).cells[-1]
                      .outputs[0]["text"])
    assert seen["path"] == str((out / "execution_times.json").resolve())
    assert set(seen["seen"]) == {"01_x"}  # written progressively: 01_x is there, 02_y not yet
    assert seen["seen"]["01_x"]["build_started"] == seen["started"] and seen["seen"]["01_x"]["seconds"] > 0
    final = json.loads((out / "execution_times.json").read_text())
    assert set(final["notebooks"]) == {"01_x", "02_y"} and final["build_started"] == seen["started"]
    # a second run of one notebook keeps the other's entry, stamped with the earlier build
    build_book("ci", notebooks=["02_y"], root=tmp_path, out=out, timeout=120, render=False)
    again = json.loads((out / "execution_times.json").read_text())
    assert again["build_started"] > final["build_started"]
    assert again["notebooks"]["01_x"]["build_started"] == final["build_started"]
    assert again["notebooks"]["02_y"]["build_started"] == again["build_started"]


# ---------------------------------------------------------------------------------------------- the build

@pytest.fixture(scope="module")
def book(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("book")
    with _environ(ATTRBOUND_DATA_MIRROR=str(data_mirror()), ATTRBOUND_DATA=str(data_root)):  # for the kernels
        result = build_book("ci", out=out, timeout=900)
    times = json.loads((out / "execution_times.json").read_text())
    print("\nbook execution times (s):", {k: v["seconds"] for k, v in times["notebooks"].items()},
          "build:", times["build_seconds"])
    return result


def test_book_builds_every_page(book):
    assert book.pages and all(p.is_file() for p in book.pages)
    assert (book.html / "index.html").is_file()
    times = json.loads((book.html.parents[1] / "execution_times.json").read_text())
    assert set(times["notebooks"]) == {p.stem for p in NOTEBOOKS}
    assert times["profile"] == "ci"
    for path in NOTEBOOKS:
        executed = nbformat.read(book.source / EXECUTED_DIR / f"{path.stem}.ipynb", as_version=4)
        injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
        assert "profile = \"ci\"" in injected[0].source
        page = (book.html / EXECUTED_DIR / f"{path.stem}.html").read_text()
        assert "Injected parameters" not in page and 'class="cell tag_injected-parameters' not in page
        # the download button offers the notebook
        assert f'_sources/{EXECUTED_DIR}/{path.stem}.ipynb' in page
        assert (book.html / "_sources" / EXECUTED_DIR / f"{path.stem}.ipynb").is_file()


def test_every_chapter_numbers_its_exercises_and_solutions():
    """Exercises are sphinx-exercise directives with a solution each (numbered, click to open); chapters 2 to 9 have
    at least one coding exercise, whose reference solution (a cell tagged solution) the visible check cell tests when
    the book executes."""
    from attrbound_lite.book.student import solution_texts

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        labels = re.findall(r"^`{3,}\{exercise\}\n:label: (\S+)", text, re.M)
        solved = re.findall(r"^`{3,}\{solution\} (\S+)", text, re.M)
        assert sorted(labels) == sorted(solved), f"{path.name}: exercises {labels}, solutions {solved}"
        assert "{admonition} Solution" not in text, f"{path.name}: a solution outside sphinx-exercise"
        if 2 <= int(path.stem[:2]) <= 9:  # at least one coding exercise: a solution cell, then a visible check
            assert len(labels) >= 2 and len(solution_texts(nb)) > len(labels), path.name
            tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
            pairs = zip(tags, tags[1:], strict=False)
            assert any("solution" in a and "check" in b and "hide-input" not in b for a, b in pairs), \
                f"{path.name}: no coding exercise (a code cell tagged solution followed by one tagged check)"


def test_strip_solutions_removes_directives_and_tagged_cells_only():
    from attrbound_lite.book.student import solution_texts, strip_solutions

    cells = [nbformat.v4.new_markdown_cell("## Exercises\n\n````{exercise}\n:label: ex-1\n\nWhy?\n````\n\n"
                                           "````{solution} ex-1\n:class: dropdown\n\nBecause.\n````\nAfter."),
             nbformat.v4.new_code_cell("answer = 42", metadata={"tags": ["solution"]}),
             nbformat.v4.new_code_cell("assert answer == 42", metadata={"tags": ["check"]})]
    nb = nbformat.v4.new_notebook(cells=cells)
    assert len(solution_texts(nb)) == 2
    assert strip_solutions(nb) == 2 and solution_texts(nb) == []
    assert [c.cell_type for c in nb.cells] == ["markdown", "code"]
    assert "Why?" in nb.cells[0].source and "After." in nb.cells[0].source and "Because" not in nb.cells[0].source
    assert "student edition" in nb.cells[0].source


def test_the_student_edition_holds_no_solution(book):
    """`attrbound book --student`: the executed pages and their .ipynb downloads without any solution text, the
    exercises kept (the check inside student_edition is repeated here from the sources' solutions)."""
    from attrbound_lite.book.student import (
        secret_lines,
        solution_leaks,
        solution_texts,
        strip_solutions,
        student_edition,
    )

    index = student_edition(book.html.parents[1])
    html_root = index.parent
    sources = [nbformat.read(path, as_version=4) for path in NOTEBOOKS]
    solutions = [text for nb in sources for text in solution_texts(nb)]
    for nb in sources:
        strip_solutions(nb)
    secrets = secret_lines(solutions, [cell.source for nb in sources for cell in nb.cells])
    assert len(secrets) > 50
    assert solution_leaks(html_root.parents[1], secrets) == []
    assert solution_leaks(book.html, secrets), "the check finds the solutions of the instructor's edition"
    downloads = list((html_root / "_sources" / EXECUTED_DIR).glob("*.ipynb"))
    assert len(downloads) == len(NOTEBOOKS)
    page = (html_root / EXECUTED_DIR / "02_bounds.html").read_text()
    assert 'class="exercise' in page and "student edition" in page


def test_chapter2_checks_and_bounds_dominate_the_grid_worst_case(book):
    g = glued_values(book.source / EXECUTED_DIR / "02_bounds.ipynb")
    assert g["ch2_checks_passed"] == g["ch2_checks_total"] >= 8
    assert abs(g["ch2_sigma"] - g["ch2_sigma_exact"]) <= 1e-8 * g["ch2_sigma_exact"]
    assert g["ch2_l2_linear_grid"] <= g["ch2_l2_bound"] * (1 + 1e-12)
    assert 0 <= g["ch2_l2_rel_gap"] < 1e-3
    assert g["ch2_linf_lower"] <= g["ch2_linf_exact"] * (1 + 1e-12)
    assert g["ch2_linf_exact"] <= min(g["ch2_linf_sqrt_n"], g["ch2_linf_rowsum"]) * (1 + 1e-12)
    assert g["ch2_cos_bound"] <= g["ch2_cos_grid"] + 1e-12
    # the true (label-constrained) worst case on a dense grid: dominated by the bound for the quadratic
    # model, by the mean-value bound for the softplus network
    assert g["ch2_quad_max_ratio"] <= 1 + 1e-9
    assert g["ch2_quad_cos_margin"] >= -1e-12
    assert g["ch2_mlp_mv_max_ratio"] <= 1 + 1e-9


def test_chapter3_matrix_free_sigma_matches_the_exact_svd(book):
    g = glued_values(book.source / EXECUTED_DIR / "03_jacobians.ipynb")
    assert g["ch3_n"] == 3072
    assert abs(g["ch3_sigma_matrix_free"] - g["ch3_sigma_exact"]) <= 1e-4 * g["ch3_sigma_exact"]
    assert g["ch3_sigma_rel_err"] < 1e-4 and g["ch3_sigma_max_rel_err"] < 1e-4
    assert g["ch3_relu_hvp_max"] == 0.0
    assert g["ch3_dist_beta_max"] < g["ch3_dist_beta_min"]
    assert g["ch3_sigma_growth"] > 10
    assert g["ch3_completeness_err"] < 1e-2


def test_chapter4_reads_the_zoo_and_compares_by_intervals(book):
    g = glued_values(book.source / EXECUTED_DIR / "04_training.ipynb")
    assert g["ch4_n_models"] == 15
    assert g["ch4_min_clean_natural"] >= 0.45 and g["ch4_min_clean_robust"] >= 0.35  # the zoo's quality floors
    assert g["ch4_pgd_sentence"].count("for PGD-AT against") == 3
    assert g["ch4_n_runs"] == 45  # three seeds of every recipe, failed runs named
    assert g["ch4_failed"] == "none" or g["ch4_failed"].count("seed") == g["ch4_failed"].count(";") + 1


def test_chapter5_bounds_every_reference_model(book):
    g = glued_values(book.source / EXECUTED_DIR / "05_bounds.ipynb")
    assert g["ch5_n_models"] == 15 and g["ch5_n_images"] >= 32
    assert g["ch5_scaling_error"] < 1e-5     # the scaled table against attribution_bound (same batch and seed)


def test_chapter6_attacks_enough_images_and_reports_rates_with_intervals(book):
    g = glued_values(book.source / EXECUTED_DIR / "06_validation.ipynb")
    counts = [int(n) for n in re.findall(r"(?:^|, )(\d+)", str(g["ch6_n_images"]))]  # "64" or "64 (MNIST), ..."
    assert counts and min(counts) >= 64, g["ch6_n_images"]
    for norm in ("l2", "linf"):
        assert re.search(r"\(\S+ to \S+\)", g[f"ch6_{norm}_smallest"])
    survive, counted = (int(g[f"ch6_float64_{k}"].replace(",", "")) for k in ("survive", "counted"))
    assert 0 <= survive <= counted and g["ch6_float64"].startswith(f"{g['ch6_float64_survive']} of the ")


def test_findings_state_a_verdict_only_where_holm_rejects(book):
    from attrbound_lite.book import findings

    values = findings.chapter_values(book.source / EXECUTED_DIR, findings.CHAPTERS)
    family = findings.family_table(values)
    assert len(family) >= 40 and family["key"].is_unique
    made = family["holm_p"].notna()
    stated = family["verdict"] != findings.NOT_ESTABLISHED
    assert family.loc[~made, "verdict"].ne(findings.NOT_ESTABLISHED).all()  # not made: its reason, not Holm's word
    assert not (made & stated & (family["holm_p"] > findings.FAMILY_ALPHA)).any()
    assert not (made & ~stated & (family["holm_p"] <= findings.FAMILY_ALPHA)).any()
    g = glued_values(book.source / EXECUTED_DIR / "01_findings.ipynb")
    assert g["findings_family"].startswith(f"{int(made.sum())} comparisons on this page form one family")


def test_chapter7_verdicts_follow_their_intervals(book):
    g = glued_values(book.source / EXECUTED_DIR / "07_far.ipynb")
    g4 = glued_values(book.source / EXECUTED_DIR / "04_training.ipynb")

    def expected(text):
        _, low, high = map(float, re.fullmatch(r"(\S+) \((\S+) to (\S+)\)", text).groups())
        return "larger" if low > 0 else "smaller" if high < 0 else None

    TOO_FEW = "only 2 trained runs: too few to test"  # the Findings page's rule, in the chapter too
    assert g["ch7_seeds"] == 3 and g["ch7_failed"] == g4["ch4_failed"]  # the same failed runs left out
    for ds in ("mnist", "fashion_mnist", "cifar10_subset"):
        assert g[f"ch7_n_{ds}"] >= 64
        for m in ("pgd_at", "ig_norm", "aat", "advaat"):
            want = expected(g[f"ch7_gain_{ds}_{m}"])
            said = g[f"ch7_verdict_{ds}_{m}"]
            assert said in (NOT_COMPARED, TOO_FEW) or re.fullmatch(want or "not distinguishable with 3 trained runs",
                                                                   said)
        for part in g[f"ch7_versus_{ds}"].split("; "):  # FAR's methods against PGD-AT and IG-NORM, over the seeds
            interval, said = re.fullmatch(r".+ minus \S+ (\S+ \(\S+ to \S+\)), (.+)", part).groups()
            said, *comparable = said.split(", ")  # then FAR's "comparable", tested where the runs allow
            assert said in (NOT_COMPARED, TOO_FEW) or re.fullmatch(
                expected(interval) or "not distinguishable with 3 trained runs", said), part
            assert comparable in ([], ["comparable or better within 0.05"], ["not shown comparable within 0.05"],
                                  ["worse by more than 0.05"]), part
            low, high = map(float, re.search(r"\((\S+) to (\S+)\)", interval).groups())
            if comparable and comparable[0].startswith("worse"):  # read off the interval: all of it below -0.05
                assert high < -0.05, part
            if comparable and comparable[0].startswith("comparable"):  # all of it above -0.05
                assert low > -0.05, part
    # the attack budget: the committed grid over the 15 seed-0 reference models, read in the chapter's sentences
    assert re.search(r"is higher than the best of the grid on (\d+ of|none of|all) 15 models", g["ch7_budget_chapter"])
    assert re.search(r"less than 2% on (\d+ of|none of|all) 15 models", g["ch7_budget_rar"]) and g["ch7_budget_n"] >= 32
    assert re.fullmatch(r"\d+ of the grid's 7,200 pairs of an image and a budget, on \d+ models",
                        g["ch7_budget_failed"])
    assert g["ch7_budget_drivers"].startswith("at a fixed total length, going from 10 to 200 steps")
    # the chapter's attack moves the natural model's map more than random noise of the same radius
    assert "below noise" in g["ch7_steering"].split(";")[1], g["ch7_steering"]
    for name in ("eps", "steps"):
        if g[f"ch7_verdict_{name}"] == "not tested":  # too few study models trained: said, not decided
            assert g[f"ch7_sentence_{name}"].startswith("not tested by this build") and g["ch7_study_failed"] != "none"
            continue
        want = expected(g[f"ch7_spread_{name}_diff"])
        assert g[f"ch7_verdict_{name}"] == (want or f"not distinguishable with {g['ch7_n_study']} images")


def test_chapter8_compares_both_bounds_with_intervals_and_reads_its_advice_off_them(book):
    g = glued_values(book.source / EXECUTED_DIR / "08_region.ipynb")
    assert g["ch8_n_images"] >= 16 and g["ch8_n_models"] == 15
    for norm in ("l2", "linf"):
        exceeded, pairs = map(int, re.search(r"exceeded on (\d+) of (\d+)", g[f"ch8_{norm}_region"]).groups())
        assert pairs >= 15 * 16 and re.search(r"a rate of \S+ \(\S+ to \S+\)", g[f"ch8_{norm}_region"])
        advice = g[f"ch8_{norm}_advice"]
        assert ("was itself exceeded" in advice) == (exceeded > 0)
    assert float(g["ch8_cost"].split()[0]) >= 1  # the region bound includes the first-order one


def test_chapter9_measures_every_sampled_metric_against_the_attack(book):
    g = glued_values(book.source / EXECUTED_DIR / "10_sampled.ipynb")
    assert g["ch9_n_models"] == 15 and g["ch9_n_images"] >= 16
    for metric in ("Captum sensitivity_max", "Quantus MaxSensitivity", "Quantus AvgSensitivity"):
        assert re.search(re.escape(metric) + r": \S+ \(\S+ to \S+\)", g["ch9_linf_shortfall"])
    assert re.match(r"of 9 rankings", g["ch9_linf_ranking"])  # 3 data sets x 3 relative metrics


def test_every_table_is_written_for_readers(book):
    """No raw DataFrame (pandas' own HTML: an index column, six decimals): every table goes through
    ``tables.reader_table`` (three significant digits, readable names, no index)."""
    for path in NOTEBOOKS:
        executed = nbformat.read(book.source / EXECUTED_DIR / f"{path.stem}.ipynb", as_version=4)
        for i, cell in enumerate(executed.cells):
            for output in cell.get("outputs", []):
                assert 'class="dataframe"' not in output.get("data", {}).get("text/html", ""), \
                    f"{path.stem}: cell {i} shows a raw DataFrame; wrap it in reader_table(...)"


def test_glued_text_shows_no_numpy_reprs(book):
    """A glued numpy scalar renders as 'np.float64(...)' in the prose: every glue must pass Python values."""
    for path in NOTEBOOKS:
        executed = nbformat.read(book.source / EXECUTED_DIR / f"{path.stem}.ipynb", as_version=4)
        for cell in executed.cells:
            for output in cell.get("outputs", []):
                text = output.get("data", {}).get("application/papermill.record/text/plain", "")
                assert "np." not in text and "tensor(" not in text, f"{path.stem}: glued {text!r}"


# ---------------------------------------------------------------------------------------------- browser

def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, env=env)
        if proc.returncode != 0:  # the package lists may be missing on a fresh machine
            subprocess.run(["apt-get", "update"], capture_output=True, env=env)
            proc = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, env=env)
        found = shutil.which("chromium")
        if found:
            return found
        pytest.fail(f"could not install chromium with apt-get:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    pytest.fail("the browser test needs headless Chromium: install Debian's package with "
                "`sudo apt-get install -y chromium` (or run the tests as root, which installs it).")


def _run_chromium(chromium: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120)


def _expected_title(page: Path, html_root: Path) -> str:
    rel = page.relative_to(html_root).with_suffix("")
    stem = rel.name
    src = ROOT / "notebooks" / f"{stem}.ipynb"
    if src.exists():
        first = nbformat.read(src, as_version=4).cells[0].source
    else:
        first = (ROOT / rel.with_suffix(".md")).read_text()
    return re.search(r"^# (.+)$", first, re.M).group(1).strip()


def test_every_page_renders_in_headless_chromium(book, tmp_path_factory):
    chromium = _chromium()
    shots = tmp_path_factory.mktemp("book-screenshots")
    print(f"\nbook screenshots: {shots}")
    for page in book.pages:
        name = page.stem
        dom_run = _run_chromium(chromium, "--dump-dom", page.as_uri())
        assert dom_run.returncode == 0, dom_run.stderr[-2000:]
        dom = dom_run.stdout
        (shots / f"{name}.html").write_text(dom)
        title = _expected_title(page, book.html)
        got = re.search(r"<title>(.*?)</title>", dom, re.S)
        assert got and title in got.group(1), f"{name}: title {got and got.group(1)!r}, want {title!r}"
        assert re.search(r"<h1[^>]*>", dom), f"{name}: no heading"
        # every image is a file of the build that decodes as an image
        srcs = re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", dom)
        for src in srcs:
            if src.startswith(("data:", "http:", "https:")):
                continue
            file = (page.parent / src.split("#")[0].split("?")[0]).resolve()
            assert file.is_file(), f"{name}: image {src} is missing"
            head = file.read_bytes()[:8]
            assert head.startswith(b"\x89PNG") or head[:4] in (b"<svg", b"<?xm") or head[:2] == b"\xff\xd8", \
                f"{name}: {src} is not an image"
        assert not figure_alt_faults(dom), f"{name}: figures without a description: {figure_alt_faults(dom)}"
        source = page.relative_to(book.html).with_suffix("")
        notebook = ROOT / "notebooks" / f"{source.name}.ipynb"
        if notebook.exists():
            figures = nbformat.read(notebook, as_version=4)
            n_figures = sum(cell.source.count("{glue:figure}") for cell in figures.cells)
            assert len(srcs) >= n_figures, f"{name}: {len(srcs)} images for {n_figures} figures"
        # math was typeset (MathJax 3 replaces the TeX by mjx-container elements), offline
        if 'class="math notranslate' in page.read_text():
            assert "<mjx-container" in dom, f"{name}: math was not typeset by MathJax"
        # no traceback, no error or stderr output cell
        assert "Traceback (most recent call last)" not in dom, f"{name}: a traceback is shown"
        for cls in ("output traceback", "output error", "output stderr"):
            assert cls not in dom, f"{name}: the page shows an '{cls}' cell"
        png = shots / f"{name}.png"
        shot = _run_chromium(chromium, f"--screenshot={png}", page.as_uri())
        assert shot.returncode == 0 and png.is_file() and png.stat().st_size > 10_000, shot.stderr[-2000:]
        _check_what_a_reader_sees(name, page, dom, book.html)
        faults = reader_text_faults(dom)
        assert not faults, f"{name}: the text shows code words a reader should not see: {faults}"
        overflow = _overflowing_elements(chromium, page)
        assert not overflow, f"{name}: wider than the page's column at 1280 px: {overflow}"


# A script appended to a copy of a page (same folder, so that its assets load): once the page and MathJax have
# settled, it lists the visible elements of the article whose right edge passes the column's, unless an ancestor
# scrolls them (overflow-x auto or scroll), and writes the list into the DOM for --dump-dom.
_MEASURE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const column = document.querySelector("main .bd-article") || document.querySelector("article") || document.body;
  const right = Math.min(column.getBoundingClientRect().right, window.innerWidth) + 1;
  const scrolls = (el) => { for (let a = el.parentElement; a && a !== column; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX; if (o === "auto" || o === "scroll" || o === "hidden") return true; }
    return false; };
  const wide = [];
  for (const el of column.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    // a full-width cell (the theme's tag) may use the margin, but not leave the window
    const limit = el.closest(".tag_full-width") ? window.innerWidth + 1 : right;
    if (r.width > 0 && r.right > limit && !scrolls(el)) wide.push(el.tagName + "." + el.className + " " +
        Math.round(r.right - limit) + "px");
  }
  const out = document.createElement("pre"); out.id = "attrbound-overflow";
  out.textContent = JSON.stringify(wide.slice(0, 10)); document.body.appendChild(out);
}, 1500));
</script>"""


def _overflowing_elements(chromium: str, page: Path) -> list[str]:
    """The elements of ``page`` wider than its column in a 1280 px window (``_MEASURE``)."""
    probe = page.with_name(f".measure-{page.name}")
    probe.write_text(page.read_text().replace("</body>", _MEASURE + "</body>"))
    try:
        run = _run_chromium(chromium, "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    found = re.search(r'<pre id="attrbound-overflow">(.*?)</pre>', run.stdout, re.S)
    assert found, f"{page.name}: the layout probe did not run"
    return json.loads(html.unescape(found.group(1)))


# What prose, tables and captions must not show outside code, maths and code cells: the words of a program.
READER_TEXT_FAULTS = {"a literal backtick": r"`", "an '(s)' plural": r"\w\(s\)",
                      "a Python value": r"\b(?:True|False|nan|NaN)\b",
                      "e-notation": r"(?<![\w.])\d+(?:\.\d+)?e[-+]?\d{1,3}\b"}  # (not a hash such as 253218e69108)


def reader_text_faults(dom: str) -> list[str]:
    """Each fault of ``READER_TEXT_FAULTS`` in the page's article text, with 40 characters of context."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(dom, "html.parser")
    article = soup.find("main") or soup
    for tag in article.select("script, style, pre, code, kbd, mjx-container, .math, .highlight, .cell_input, "
                              ".headerlink"):
        tag.decompose()
    text = re.sub(r"\s+", " ", article.get_text(" "))
    return [f"{what}: ...{text[max(0, m.start() - 40):m.end() + 40]}..."
            for what, pattern in READER_TEXT_FAULTS.items() for m in re.finditer(pattern, text)]


def figure_alt_faults(dom: str) -> list[str]:
    """The images inside a page's figures whose alt text does not describe them (missing, a file name or a hash)."""
    faults = []
    for figure in re.findall(r"<figure.*?</figure>", dom, re.S):
        for tag in re.findall(r"<img[^>]*>", figure):
            alt = html.unescape((re.search(r'\salt="([^"]*)"', tag) or re.search("()", "")).group(1)).strip()
            if len(alt.split()) < 4 or re.fullmatch(r"[\w./-]+", alt):
                faults.append(alt or tag[:80])
    return faults


def test_the_figure_check_wants_a_description():
    """A glued figure's default alt text is its image's hash: the check refuses it and accepts a sentence."""
    assert figure_alt_faults('<figure><img alt="3b2e0c1f9a.png" src="x.png"></figure><img src="logo.png">') == [
        "3b2e0c1f9a.png"]
    assert figure_alt_faults('<figure><img src="x.png"></figure>') == ['<img src="x.png">']
    assert figure_alt_faults('<figure><img alt="Bars of clean and PGD accuracy per model." src="x.png"></figure>') == []


def test_the_reader_text_check_finds_code_words():
    """The check the browser test applies to every page: it finds what it looks for, and only outside code."""
    page = ("<main><p>1 restart(s), a margin of 1.4e-03, holds: True, `max_dense_n`</p>"
            "<p>None of them; <code>normalise=False</code>, <span class='math'>10^{-4}</span> 2.04 × 10⁻⁷</p></main>")
    found = reader_text_faults(page)
    assert [f.split(":")[0] for f in found] == ["a literal backtick", "a literal backtick", "an '(s)' plural",
                                                "a Python value", "e-notation"], found
    assert reader_text_faults("<main><p>PGD-AT at 8/255, 1,540 images, p &lt; 10⁻⁶, key mnist-pgd_at-253218e69108"
                              "</p></main>") == []


def _check_what_a_reader_sees(name: str, page: Path, dom: str, html_root: Path) -> None:
    """Licence and citation in the footer, resolved citations, numbered chapters and figures, launch links to files
    that exist in the repository."""
    footer = " ".join(re.findall(r"<footer.*?</footer>", dom, re.S))
    assert "MIT" in footer and "CC BY 4.0" in footer, f"{name}: no licence in the footer"
    assert "cite" in footer.lower(), f"{name}: the footer does not say how to cite"
    assert "??" not in re.sub(r"<script.*?</script>", "", dom, flags=re.S), f"{name}: an unresolved reference (??)"
    assert "unknown citation" not in dom.lower(), f"{name}: an unknown citation"
    rel = page.relative_to(html_root)
    if rel.parts[0] == EXECUTED_DIR:  # a chapter: numbered, its figures numbered within it, launchable
        number = int(page.stem[:2])
        assert re.search(rf'<span class="section-number">{number}\.\s*</span>', dom), f"{name}: no chapter number"
        captions = re.findall(r'<span class="caption-number">Fig\. ([\d.]+)', dom)
        glued = sum(c.source.count("{glue:figure}") for c in nbformat.read(ROOT / EXECUTED_DIR / f"{page.stem}.ipynb",
                                                                            as_version=4).cells)
        assert len(captions) >= glued, f"{name}: {len(captions)} numbered figures for {glued} glued ones"
        assert all(c.startswith(f"{number}.") for c in captions), f"{name}: figures numbered {captions}"
        links = re.findall(r'href="(https://(?:mybinder\.org|colab\.research\.google\.com|github\.com)[^"]*)"', dom)
        named = [re.search(r"(?:filepath|labpath|urlpath)=(?:lab/tree/)?([^&]+)|/blob/[^/]+/(.+)$", html.unescape(u))
                 for u in links]
        files = [next(g for g in m.groups() if g) for m in named if m]
        assert files, f"{name}: no launch or repository link names a file"
        for file in files:
            assert (ROOT / urllib.parse.unquote(file)).is_file(), f"{name}: a launch link names {file}, not in the repo"
