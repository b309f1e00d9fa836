"""The Findings page: every cell of its table comes from a value a chapter glued."""

from __future__ import annotations

import re

import nbformat
import pytest

from attrbound_lite.book import findings


def _fake_values() -> dict[str, dict]:
    """A value for every name the claims' templates ask for, spelling out the name."""
    values: dict[str, dict] = {}
    for claim in findings.CLAIMS:
        for name in re.findall(r"{(\w+)}", claim.measured + claim.scale):
            values.setdefault(claim.chapter, {})[name] = f"<{name}>"
    return values


def test_every_cell_is_filled_from_the_glued_values():
    table = findings.findings_table(_fake_values())
    assert len(table) == len(findings.CLAIMS) and list(table.columns) == [
        "claim", "source", "measured in this build", "shown in", "scale of the evidence"]
    row = table.set_index("claim").loc["FAR's robustness depends less on the training radius than earlier methods'"]
    assert row["measured in this build"] == "<ch7_sentence_eps>" and "<ch7_n_study>" in row["scale of the evidence"]
    fragile = table["measured in this build"][table["source"] == "Ghorbani et al. 2019"].item()
    assert fragile == ("MNIST: <ch7_fragile_mnist_natural>; Fashion-MNIST: <ch7_fragile_fashion_mnist_natural>; "
                       "CIFAR-10 subset: <ch7_fragile_cifar10_subset_natural>")
    assert not any("{" in cell for cell in table.to_numpy().ravel())


def test_a_missing_value_or_chapter_is_named(tmp_path):
    values = _fake_values()
    del values["07_far"]["ch7_sentence_eps"]
    with pytest.raises(ValueError, match="chapter 07_far glued no 'ch7_sentence_eps'"):
        findings.findings_table(values)
    with pytest.raises(FileNotFoundError, match="attrbound book --only 05_bounds"):
        findings.chapter_values(tmp_path, ["05_bounds"])


def test_values_are_read_from_an_executed_notebooks_glue_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "'0.62 (0.58 to 0.66)'"},
                                           metadata={"scrapbook": {"name": "ch7_sentence_eps", "mime_prefix": ""}})]
    nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "07_far.ipynb")
    assert findings.chapter_values(tmp_path, ["07_far"]) == {"07_far": {"ch7_sentence_eps": "0.62 (0.58 to 0.66)"}}
