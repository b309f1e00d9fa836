"""The package's layering (ARCHITECTURE.md): each module imports only modules of its own layer or below.

Read from the source with ``ast`` (function-level imports included), so a new upward import fails here with
the two module names, before it tangles the house.
"""

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "attrbound_lite"

# layer of each top-level module or subpackage of attrbound_lite (ARCHITECTURE.md)
LAYERS = {
    # 1 primitives: torch, numpy, scipy, pydantic
    "stats": 1, "config": 1, "_checks": 1, "_io": 1, "runtime": 1, "models": 1, "metrics": 1, "threat_models": 1,
    "jacobians": 1,
    # 2 attribution
    "attributions": 2,
    # 3 analysis
    "bounds": 3, "region": 3, "certified": 3, "certified_intervals": 3, "attacks": 3,
    # 4 workflows: configuration, data, training, evaluation, experiments, models on disk, sweeps
    "data": 4, "protocols": 4, "training": 4, "evaluation": 4, "experiments": 4, "checkpoints": 4,
    "zoo": 4, "results": 4, "sweep": 4, "toy": 4, "interop": 4, "recipes": 4, "experiment_specs": 4,
    "training_methods": 4, "interop_common": 4, "interop_captum": 4, "interop_quantus": 4,
    # 5 faces
    "cli": 5, "book": 5,
}
# Deliberate exceptions, each a lazy import inside one function (see ARCHITECTURE.md).
EXCEPTIONS = {("models", "protocols"), ("models", "data")}  # models.model_for_dataset reads the per-data-set table


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imported_units(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    depth_of_package = len(path.relative_to(PACKAGE).parts)  # 1 for a module, 2 inside a subpackage
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb to the package root, then the first component is the unit
                up = node.level - (depth_of_package - 1)
                if up < 1:  # inside the same subpackage
                    continue
                parts = (node.module or "").split(".")
                names = [parts[0]] if parts[0] else [alias.name for alias in node.names]
                found.update(names)
            elif node.module and node.module.startswith("attrbound_lite."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("attrbound_lite."):
                    found.add(alias.name.split(".")[1])
    return found


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_module_has_a_layer():
    units = {_unit(p) for p in SOURCES}
    assert units <= set(LAYERS), (
        f"modules without a layer (add them to LAYERS and ARCHITECTURE.md): {units - set(LAYERS)}")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_the_layers(path):
    unit = _unit(path)
    upward = sorted(other for other in _imported_units(path) - {unit}
                    if other in LAYERS and LAYERS[other] > LAYERS[unit] and (unit, other) not in EXCEPTIONS)
    assert not upward, f"{unit} (layer {LAYERS[unit]}) imports {upward} from a higher layer"


MAX_CODE_LINES = 450  # per module: split a module along its seams before it grows past this
_LAYOUT = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER,
           tokenize.ENCODING}


def code_lines(source: str) -> int:
    """Lines holding code tokens: blank lines, comments and docstrings (module, class, function) do not count."""
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _LAYOUT:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def test_code_lines_counts_code_only():
    source = '"""Module docstring,\ntwo lines."""\n\n# a comment\nx = 1  # trailing\n\n\ndef f():\n    """Doc."""\n' \
             '    return (x +\n            2)\n'
    assert code_lines(source) == 4  # x = 1, def, and the two lines of the return


ALL_SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", ALL_SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_above_the_line_budget(path):
    n = code_lines(path.read_text())
    assert n <= MAX_CODE_LINES, (
        f"attrbound_lite/{path.relative_to(PACKAGE)} has {n} code lines (blank lines, comments and docstrings not "
        f"counted), above {MAX_CODE_LINES}: split it along a natural seam into sibling modules (ARCHITECTURE.md)")
