"""Publishing: licences, citation metadata, the bibliography, the launch buttons and the Colab install cell, the
book's configuration (only keys that jupyter-book reads) and the GitHub Pages workflow.

The repository URL is a setting in one place, ``repository.url`` in ``_config.yml``; everything else that repeats it
is checked against it here. Schema validation uses check-jsonschema's vendored schemas (the ``test`` extra), run
with every proxy pointed at a closed port, so that a network lookup would fail the test instead of passing
silently. The last test renders a one-chapter book with the real configuration (about a minute).
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import attrbound_lite
from attrbound_lite.book.runner import EXECUTED_DIR, BookError, _stage, toc_files

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# notebooks another change is editing; they get the same install cell there (the test then checks it too)
INSTALL_CELL_PENDING: set[str] = set()  # notebooks still without the install cell (none)
OFFLINE = {**os.environ, **{k: "http://127.0.0.1:9" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                                                 "https_proxy", "ALL_PROXY", "all_proxy")},
           "NO_PROXY": "", "no_proxy": ""}

# key -> arXiv id (None: no arXiv version)
BIBLIOGRAPHY = {
    "wang2023practical": "2303.00340",
    "ivankay2021far": "2010.07393",
    "ghorbani2019interpretation": "1710.10547",
    "chen2019robust": "1905.09957",
    "sundararajan2017axiomatic": "1703.01365",
    "madry2018towards": "1706.06083",
    "dombrowski2019explanations": "1906.07983",
    "simonyan2014deep": "1312.6034",
    "shrikumar2017learning": "1704.02685",
    "kokhlikyan2020captum": "2009.07896",
    "hedstrom2023quantus": "2202.06861",
    "yeh2019infidelity": "1901.09392",
    "alvarezmelis2018robustness": "1806.08049",
    "lanczos1950iteration": None,
    "pearlmutter1994fast": None,
}
PROJECT_KEY = "attrbound2026"


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "check-jsonschema"
    if not exe.exists():
        pytest.fail("check-jsonschema is missing: install the test extra (bash scripts/ensure-venv.sh)")
    return subprocess.run([str(exe), "--no-cache", "--builtin-schema", schema, str(path)], capture_output=True,
                          text=True, env=OFFLINE, timeout=120)


def _fenced_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, flags=re.M | re.S)


def _fenced_lines(markdown: str) -> list[str]:
    return [line.strip() for block in re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.M | re.S)
            for line in block.splitlines()]


def _bib(text: str):
    from pybtex.database import parse_string

    return parse_string(text, "bibtex").entries


# ---------------------------------------------------------------------------------------------- licences

def test_code_is_mit_and_content_is_cc_by_everywhere_it_is_stated():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Copyright (c) 2026 attrbound developers" in licence
    content = (ROOT / "LICENSE-CONTENT").read_text()
    assert "CC-BY-4.0" in content and "https://creativecommons.org/licenses/by/4.0/legalcode" in content
    assert "Attribution" in content
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and "LICENSE" in project["license-files"]
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"^## Licence\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    assert section, "README.md has no '## Licence' section"
    assert "MIT" in section.group(1) and "CC-BY-4.0" in section.group(1) and "LICENSE-CONTENT" in section.group(1)
    footer = CONFIG["html"]["extra_footer"]
    assert "MIT" in footer and "https://creativecommons.org/licenses/by/4.0/" in footer


def test_the_installed_distribution_declares_the_licence():
    import importlib.metadata
    import sysconfig

    # the installed metadata (site-packages), not a stale attrbound_lite.egg-info that the checkout may hold
    dists = [d for d in importlib.metadata.distributions(path=[sysconfig.get_paths()["purelib"]])
             if d.metadata["Name"] == "attrbound-lite"]
    if not dists:
        pytest.skip("attrbound-lite is not installed in this interpreter's site-packages")
    meta = dists[0].metadata
    assert meta["License-Expression"] == "MIT", "reinstall the project (pip install -e .) after editing pyproject"
    assert "LICENSE" in (meta.get_all("License-File") or [])


# ---------------------------------------------------------------------------------------------- citation

def test_citation_cff_validates_against_the_cff_schema_offline(tmp_path):
    proc = _check_jsonschema("vendor.citation-file-format", ROOT / "CITATION.cff")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the schema check really checks: a file without authors is refused
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    del cff["authors"]
    (tmp_path / "CITATION.cff").write_text(yaml.safe_dump(cff))
    proc = _check_jsonschema("vendor.citation-file-format", tmp_path / "CITATION.cff")
    assert proc.returncode != 0 and "'authors' is a required property" in proc.stdout, proc.stdout + proc.stderr


def test_citation_cff_agrees_with_the_package_and_the_config():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert str(cff["version"]) == attrbound_lite.__version__
    assert cff["license"] == "MIT"
    assert cff["repository-code"] == REPO_URL
    assert cff["title"] == CONFIG["title"]
    assert cff["authors"] == [{"name": "attrbound developers"}]
    ids = {ident["value"] for ref in cff["references"] for ident in ref.get("identifiers", [])}
    assert ids == {"arXiv:2303.00340", "arXiv:2010.07393"}
    assert {ref["year"] for ref in cff["references"]} == {2023, 2021}


def test_bibliography_holds_every_work_with_its_arxiv_id():
    entries = _bib((ROOT / "references.bib").read_text())
    assert set(BIBLIOGRAPHY) | {PROJECT_KEY} <= set(entries)
    for key, entry in entries.items():
        eprint = entry.fields.get("eprint")
        if key in BIBLIOGRAPHY:
            assert eprint == BIBLIOGRAPHY[key], f"{key}: eprint {eprint!r}, want {BIBLIOGRAPHY[key]!r}"
        if eprint:
            assert entry.fields.get("archivePrefix") == "arXiv", key
            assert entry.fields.get("url") == f"https://arxiv.org/abs/{eprint}", key
        else:
            assert entry.fields.get("url") or entry.fields.get("doi"), f"{key}: no url, doi or eprint"
    project = entries[PROJECT_KEY]
    assert project.fields["url"] == REPO_URL
    assert project.fields["version"] == attrbound_lite.__version__
    assert f"Version {attrbound_lite.__version__}." in project.fields["note"]


def _citation_keys(text: str) -> set[str]:
    keys = set()
    for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
        keys.update(k.strip() for k in group.split(","))
    return keys


def test_every_citation_in_the_book_is_in_the_bibliography():
    import nbformat

    entries = set(_bib((ROOT / "references.bib").read_text()))
    cited = {}
    for path in sorted((ROOT / "book").glob("*.md")):
        cited[path.name] = _citation_keys(path.read_text())
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cited[path.name] = _citation_keys("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    unknown = {name: sorted(keys - entries) for name, keys in cited.items() if keys - entries}
    assert not unknown, f"citations missing from references.bib: {unknown}"
    assert {"wang2023practical", "ivankay2021far"} <= cited["intro.md"]
    # the book relies on the papers in every chapter this change covers
    for stem in ("01_findings", "02_bounds", "03_jacobians", "04_training", "05_bounds", "06_validation", "07_far",
                 "11_speed", "12_reproducibility"):
        assert cited[f"{stem}.ipynb"], f"{stem} cites nothing"
    assert "{bibliography}" in (ROOT / "book" / "references.md").read_text()
    assert {"book/cite", "book/references"} <= set(toc_files(ROOT / "_toc.yml"))


@pytest.mark.parametrize("page", ["README.md", "book/cite.md"])
def test_the_bibtex_shown_to_readers_is_the_bibliographys(page):
    text = (ROOT / page).read_text()
    shown = {}
    for block in _fenced_blocks(text, "bibtex"):
        shown.update(_bib(block))
    assert {PROJECT_KEY, "wang2023practical", "ivankay2021far"} <= set(shown), sorted(shown)
    bib = _bib((ROOT / "references.bib").read_text())
    for key, entry in shown.items():
        assert key in bib and dict(entry.fields) == dict(bib[key].fields), f"{page}: {key} differs from references.bib"
        assert entry.persons == bib[key].persons, f"{page}: {key} authors differ from references.bib"
    if page == "README.md":
        assert re.search(r"^## How to cite$", text, flags=re.M)


# ---------------------------------------------------------------------------------------------- the URL, once

def test_the_repository_url_is_set_once_and_repeated_faithfully():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPO_URL), REPO_URL
    readme = (ROOT / "README.md").read_text()
    assert f"`{REPO_URL}`" in readme and "placeholder" in readme
    assert f"url          = {{{REPO_URL}}}" in (ROOT / "book" / "cite.md").read_text()
    # any other GitHub address of this repository, in the files that repeat it, is the configured one
    slug = "/".join(REPO_URL.rsplit("/", 2)[-2:])
    for name in ("CITATION.cff", "references.bib", "README.md", "book/cite.md", "book/intro.md", "_config.yml",
                 ".binder/requirements.txt", ".github/workflows/book.yml", *(f"notebooks/{p.name}" for p in NOTEBOOKS)):
        for url in re.findall(r"https?://github\.com/[\w.-]+/[\w.-]+", (ROOT / name).read_text()):
            assert url == REPO_URL or slug not in url, f"{name}: {url} is not {REPO_URL}"


# ---------------------------------------------------------------------------------------------- Colab and Binder

def _install_cells():
    import nbformat

    found = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        cells = [(i, c) for i, c in enumerate(nb.cells) if "colab-install" in c.metadata.get("tags", [])]
        found[path.stem] = (nb, cells)
    return found


def test_every_notebook_starts_with_the_same_colab_install_cell():
    sources = set()
    for stem, (nb, cells) in _install_cells().items():
        if not cells and stem in INSTALL_CELL_PENDING:
            continue
        assert len(cells) == 1, f"{stem}: {len(cells)} cells tagged colab-install, need one"
        index, cell = cells[0]
        assert cell.cell_type == "code" and not cell.outputs
        assert "remove-cell" in cell.metadata["tags"], f"{stem}: the install cell must be hidden (remove-cell)"
        assert all(c.cell_type == "markdown" for c in nb.cells[:index]), f"{stem}: a code cell runs before it"
        assert "parameters" in nb.cells[index + 1].metadata.get("tags", []), f"{stem}: the parameters cell follows"
        sources.add(cell.source)
    assert len(sources) == 1, "the colab-install cells differ between notebooks"
    source = sources.pop()
    ast.parse(source)
    assert f'REPOSITORY = "{REPO_URL}"' in source


def _run_install_cell(source: str, tmp_path: Path, colab: bool) -> dict:
    """Run the cell in a fresh interpreter, with subprocess.run recorded instead of run, as on Colab or not."""
    driver = f"""
import json, os, subprocess, sys, types
calls = []
subprocess.run = lambda cmd, **kw: calls.append(cmd)
os.chdir = lambda path: calls.append(["chdir", str(path)])
if {colab!r}:
    sys.modules["google"] = types.ModuleType("google")
    sys.modules["google.colab"] = types.ModuleType("google.colab")
path_before = list(sys.path)
exec(compile({source!r}, "install-cell", "exec"), {{}})
print(json.dumps({{"calls": calls, "path_added": [p for p in sys.path if p not in path_before]}}))
"""
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_colab_install_cell_installs_there_and_does_nothing_elsewhere(tmp_path):
    _, cells = _install_cells()["02_bounds"]
    source = cells[0][1].source
    assert _run_install_cell(source, tmp_path, colab=False) == {"calls": [], "path_added": []}
    colab = _run_install_cell(source, tmp_path, colab=True)
    clone, install, chdir = colab["calls"]
    assert clone[:2] == ["git", "clone"] and REPO_URL in clone
    checkout = clone[-1]
    assert install[1:5] == ["-m", "pip", "install", "--quiet"] and install[-2:] == ["-e", f"{checkout}[book,compare]"]
    assert chdir == ["chdir", f"{checkout}/notebooks"] and colab["path_added"] == [checkout]


def test_binder_installs_the_package_itself():
    lines = [line.split("#", 1)[0].strip() for line in (ROOT / ".binder" / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    editable = [line for line in lines if line.startswith("-e ")]
    assert editable == ["-e .[book,compare]"], lines  # repo2docker runs pip from the repository root
    assert "-c ../requirements/constraints.txt" in lines  # resolved relative to .binder/
    assert (ROOT / ".binder" / "../requirements/constraints.txt").resolve().is_file()
    assert (ROOT / ".binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_launch_buttons_open_the_repositorys_notebooks():
    assert CONFIG["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["html"]["use_repository_button"] is True
    assert CONFIG["repository"]["path_to_book"] == "" and CONFIG["repository"]["branch"]
    # the executed copies are rendered from the sources' own path, so a button's path exists in the repository
    assert EXECUTED_DIR == "notebooks"
    chapters = [f for f in toc_files(ROOT / "_toc.yml") if f.startswith(EXECUTED_DIR + "/")]
    assert chapters and all((ROOT / f"{f}.ipynb").is_file() for f in chapters)


def test_staging_copies_the_bibliography_and_keeps_executed_notebooks(tmp_path):
    source = tmp_path / "source"
    (source / EXECUTED_DIR).mkdir(parents=True)
    (source / EXECUTED_DIR / "02_bounds.ipynb").write_text("{}")  # an earlier run's executed copy
    (source / "stale.md").write_text("gone")
    _stage(ROOT, source)
    assert (source / "references.bib").read_bytes() == (ROOT / "references.bib").read_bytes()
    assert (source / EXECUTED_DIR / "02_bounds.ipynb").read_text() == "{}"
    assert not (source / "stale.md").exists() and (source / "book" / "cite.md").is_file()
    # a bibliography that _config.yml names but the book lacks is refused before anything is staged
    root = tmp_path / "root"
    root.mkdir()
    (root / "_config.yml").write_text("bibtex_bibfiles: [missing.bib]\n")
    with pytest.raises(BookError, match="missing.bib"):
        _stage(root, tmp_path / "other")
    assert not (tmp_path / "other").exists()


# ---------------------------------------------------------------------------------------------- _config.yml

def _jupyter_book_config():
    config = pytest.importorskip("jupyter_book.config", reason="the book extra is not installed")
    return config


def test_config_uses_only_keys_that_jupyter_book_reads():
    """jupyter-book's schema allows unknown keys and ignores them silently (as it did `html.use_download_button`).
    A key of a section jupyter-book translates key by key (``html``, ``execute``, ``parse``, ``repository``) must
    change the Sphinx configuration it derives; a key of a section it passes on whole (``launch_buttons``,
    ``sphinx``) must be in its default configuration, its "master list"."""
    jb = _jupyter_book_config()
    defaults = yaml.safe_load(jb.PATH_YAML_DEFAULT.read_text())
    unknown = sorted(set(CONFIG) - set(defaults) - set(jb.get_validator().schema["properties"]))
    assert not unknown, f"_config.yml: keys jupyter-book does not know: {unknown}"
    for section in ("launch_buttons", "sphinx"):
        extra = sorted(set(CONFIG.get(section, {})) - set(defaults[section]))
        assert not extra, f"_config.yml: {section}.{extra} are not jupyter-book keys (see its default_config.yml)"
    baseline = jb.yaml_to_sphinx(copy.deepcopy(CONFIG))
    for section in ("html", "execute", "parse", "repository"):
        for key in CONFIG.get(section, {}):
            without = copy.deepcopy(CONFIG)
            del without[section][key]
            try:
                derived = jb.yaml_to_sphinx(without)
            except ValueError:  # another key needs it (the repository buttons need repository.url): it is read
                continue
            assert derived != baseline, \
                f"_config.yml: {section}.{key} changes nothing in the Sphinx configuration jupyter-book derives"


def test_theme_options_reach_the_theme_with_jupyter_books_own():
    """``sphinx.config.html_theme_options`` replaces what jupyter-book derived (launch buttons, repository, footer)
    unless ``sphinx.recursive_update`` is true; every option set there must be one the theme declares."""
    jb = _jupyter_book_config()
    import configparser

    import pydata_sphinx_theme
    import sphinx_book_theme

    declared = set()
    for module in (sphinx_book_theme, pydata_sphinx_theme):
        for conf in Path(module.__file__).parent.glob("theme/*/theme.conf"):
            parser = configparser.ConfigParser()
            parser.read(conf)
            declared |= set(parser["options"]) if parser.has_section("options") else set()
    own = CONFIG["sphinx"]["config"]["html_theme_options"]
    assert set(own) <= declared, f"options no theme declares: {sorted(set(own) - declared)}"
    final, _ = jb.get_final_config(user_yaml=ROOT / "_config.yml", cli_config={"latex_individualpages": False},
                                   sourcedir=ROOT, raise_on_invalid=True)
    theme = final["html_theme_options"]
    assert {k: theme[k] for k in own} == own
    assert theme["repository_url"] == REPO_URL and theme["use_repository_button"] is True
    assert theme["launch_buttons"]["binderhub_url"] and theme["launch_buttons"]["colab_url"]
    assert theme["extra_footer"] == CONFIG["html"]["extra_footer"]
    assert "sphinxcontrib.bibtex" in final["extensions"] and final["bibtex_bibfiles"] == ["references.bib"]
    assert final["bibtex_reference_style"] == "author_year"


# ---------------------------------------------------------------------------------------------- the workflow

def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_validates_against_the_github_workflow_schema_offline():
    proc = _check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_builds_with_the_readme_command_and_deploys_tags():
    flow = _workflow()
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and triggers["push"]["tags"] == ["v*"]
    build = flow["jobs"]["build"]
    runs = [step["run"].strip() for step in build["steps"] if "run" in step]
    readme_commands = [line for line in _fenced_lines((ROOT / "README.md").read_text()) if line.startswith("make book")]
    assert readme_commands == ["make book"], readme_commands
    assert runs == readme_commands, f"the workflow runs {runs}, the README documents {readme_commands}"
    uses = {step["uses"].split("@")[0]: step for step in build["steps"] if "uses" in step}
    upload = uses["actions/upload-pages-artifact"]
    assert upload["with"]["path"] == "_build/_build/html" and "refs/tags/v" in upload["if"]
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and "refs/tags/v" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    # caches: pip's, and the build's models and sweeps keyed by what determines them
    assert uses["actions/setup-python"]["with"]["cache"] == "pip"
    caches = [step["with"] for step in build["steps"] if step.get("uses", "").startswith("actions/cache@")]
    folders = next(c for c in caches if "_build/models" in c["path"])
    assert set(folders["path"].split()) == {"_build/models", "_build/sweeps", "_build/region", "_build/sampled"}
    for pattern in ("zoo/**/manifest.json", "notebooks/**", "attrbound_lite/**", "requirements/constraints.txt"):
        assert f"'{pattern}'" in folders["key"], f"the cache key ignores {pattern}"
    assert "ATTRBOUND_DATA_MIRROR" in flow["env"]


# ---------------------------------------------------------------------------------------------- rendered

def test_a_chapter_page_has_launch_buttons_licence_footer_and_resolved_citations(tmp_path):
    """A one-chapter book with the real _config.yml, bibliography and cite/references pages (about a minute)."""
    nbformat = pytest.importorskip("nbformat", reason="the book extra is not installed")
    pytest.importorskip("jupyter_book", reason="the book extra is not installed")
    from attrbound_lite.book.runner import build_book

    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    for name in ("_config.yml", "references.bib", "book/cite.md", "book/references.md"):
        shutil.copy(ROOT / name, root / name)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   f"  - file: {EXECUTED_DIR}/01_x\n  - file: book/cite\n  - file: book/references\n")
    (root / "book" / "intro.md").write_text("# Intro\n\nThe bound of {cite:t}`wang2023practical`.\n")
    _, cells = _install_cells()["02_bounds"]
    install = copy.deepcopy(cells[0][1])
    params = nbformat.v4.new_code_cell("profile = 'ci'")
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# X\n\nFAR {cite:p}`ivankay2021far` trains against it."), install, params,
        nbformat.v4.new_code_cell("print(1 + 1)")],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    nbformat.write(nb, root / "notebooks" / "01_x.ipynb")
    result = build_book("ci", root=root, out=tmp_path / "out", timeout=120)
    page = (result.html / EXECUTED_DIR / "01_x.html").read_text()
    slug = REPO_URL.removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    assert f"https://mybinder.org/v2/gh/{slug}/{branch}?urlpath=lab/tree/{EXECUTED_DIR}/01_x.ipynb" in page
    assert f"https://colab.research.google.com/github/{slug}/blob/{branch}/{EXECUTED_DIR}/01_x.ipynb" in page
    assert f'href="{REPO_URL}"' in page                                   # the repository button
    assert f"_sources/{EXECUTED_DIR}/01_x.ipynb" in page                  # the download button
    assert "google.colab" not in page                                     # the install cell is hidden
    assert "creativecommons.org/licenses/by/4.0/" in page and "MIT License" in page
    assert "Ivankay" in page and "references.html#" in page               # the citation resolved
    references = (result.html / "book" / "references.html").read_text()
    for name in ("Wang", "Ivankay", "Ghorbani", "Pearlmutter", "Lanczos", "Hedström"):
        assert name in references, f"{name} is not in the bibliography page"
    cite = (result.html / "book" / "cite.html").read_text()
    assert "attrbound2026" in cite and "@inproceedings" in cite
