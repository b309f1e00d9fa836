"""Consistency checks for the packaging/CI plumbing.

* pyproject.toml (dependencies + every extra) and environment.yml list the same
  packages with the same version specifiers;
* every dependency named in pyproject.toml is pinned in
  requirements/constraints.txt to a version inside the pyproject range;
* .ci/run runs the test command documented in README.md (`make test`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
ENV_YML = ROOT / "environment.yml"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
CI_RUN = ROOT / ".ci" / "run"
README = ROOT / "README.md"

# conda-forge name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda-only entries that are not Python package dependencies of the project.
CONDA_ONLY = {"python", "pip"}

TEST_COMMAND = "make test"


def _norm(name: str) -> str:
    name = canonicalize_name(name)  # lower-case, runs of -_. -> "-"
    return CONDA_TO_PYPI.get(name, name)


def _pyproject() -> dict:
    with PYPROJECT.open("rb") as fh:
        return tomllib.load(fh)


def pyproject_requirements() -> dict[str, SpecifierSet]:
    project = _pyproject()["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    out: dict[str, SpecifierSet] = {}
    for line in reqs:
        req = Requirement(line)
        name = _norm(req.name)
        assert name not in out, f"{name} listed twice in pyproject.toml"
        out[name] = req.specifier
    return out


def _parse_conda_spec(spec: str) -> tuple[str, SpecifierSet]:
    # Conda match specs as used here ("name>=1.0,<2", "python=3.11") are
    # PEP 440-compatible apart from the bare "=" pin.
    spec = spec.strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    assert m, f"cannot parse conda spec {spec!r}"
    name, rest = m.groups()
    rest = rest.replace(" ", "")
    if re.match(r"^=[^=]", rest):
        rest = "=" + rest  # conda "=3.11" ~ "==3.11.*"; only used for python
    return name, SpecifierSet(rest)


def environment_requirements() -> dict[str, SpecifierSet]:
    env = yaml.safe_load(ENV_YML.read_text())
    assert env.get("channels") == ["conda-forge"], env.get("channels")
    out: dict[str, SpecifierSet] = {}

    def add(name: str, spec: SpecifierSet) -> None:
        name = _norm(name)
        if name in CONDA_ONLY:
            return
        assert name not in out, f"{name} listed twice in environment.yml"
        out[name] = spec

    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"unexpected mapping in dependencies: {dep}"
            for line in dep["pip"]:
                if line.strip().startswith("-"):  # "-e .", options
                    continue
                req = Requirement(line)
                add(req.name, req.specifier)
        else:
            add(*_parse_conda_spec(str(dep)))
    return out


def constraint_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for raw in CONSTRAINTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", (
            f"constraints.txt line is not an exact pin: {raw!r}"
        )
        pins[_norm(req.name)] = Version(specs[0].version)
    return pins


def test_environment_yml_matches_pyproject():
    py = pyproject_requirements()
    env = environment_requirements()
    assert sorted(env) == sorted(py), (
        f"only in pyproject: {sorted(set(py) - set(env))}; "
        f"only in environment.yml: {sorted(set(env) - set(py))}"
    )
    mismatched = {n: (str(py[n]), str(env[n])) for n in py if py[n] != env[n]}
    assert not mismatched, f"specifier mismatch (pyproject, environment.yml): {mismatched}"


def test_environment_yml_installs_project_and_python():
    env = yaml.safe_load(ENV_YML.read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    assert "pip" in deps
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict)]
    assert pip_sections and "-e ." in pip_sections[0]


def test_constraints_pin_every_pyproject_dependency():
    pins = constraint_pins()
    assert "attrbound-lite" not in pins, "the project itself must not be in the lock"
    problems = []
    for name, spec in sorted(pyproject_requirements().items()):
        if name not in pins:
            problems.append(f"{name}: not pinned")
        elif not spec.contains(pins[name], prereleases=True):
            problems.append(f"{name}: pinned {pins[name]} outside {spec}")
    assert not problems, "requirements/constraints.txt: " + "; ".join(problems)


def test_pyproject_version_is_single_sourced():
    data = _pyproject()
    assert "version" in data["project"].get("dynamic", [])
    attr = data["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "attrbound_lite.__version__"


def _fenced_lines(markdown: str) -> list[str]:
    lines, fence = [], None
    for raw in markdown.splitlines():
        stripped = raw.strip()
        m = re.match(r"^(`{3,}|~{3,})", stripped)
        if m:
            if fence is None:
                fence = m.group(1)
            elif stripped.startswith(fence) and stripped.strip("`~") == "":
                fence = None
            continue
        if fence is not None:
            lines.append(stripped.removeprefix("$ ").strip())
    return lines


def _shell_commands(script: str) -> list[str]:
    cmds = []
    for raw in script.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#!") else ""
        if line:
            cmds.append(line)
    return cmds


def test_readme_documents_test_and_book_commands():
    fenced = _fenced_lines(README.read_text())
    assert TEST_COMMAND in fenced, f"README.md has no fenced `{TEST_COMMAND}` line"
    assert "make book" in fenced, "README.md has no fenced `make book` line"


def test_ci_runs_the_readme_test_command():
    fenced = _fenced_lines(README.read_text())
    assert TEST_COMMAND in fenced
    commands = _shell_commands(CI_RUN.read_text())
    assert CI_RUN.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in commands
    assert TEST_COMMAND in commands, f".ci/run does not run `{TEST_COMMAND}`"
    assert os.access(CI_RUN, os.X_OK), ".ci/run is not executable (chmod +x .ci/run)"


@pytest.mark.parametrize("target", ["test", "book", "venv", "lock", "bench", "clean"])
def test_makefile_has_target(target):
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lacks `{target}` target"


def test_readme_quickstart_runs():
    """The README's Python quick start is five lines and runs as written."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) == 5
    namespace: dict = {}
    exec(compile(block.replace("print(", "_ = ("), "README quick start", "exec"), namespace)
    result = namespace["result"]
    assert result.euclidean.shape == (8,) and (result.euclidean > 0).all()
