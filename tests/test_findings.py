"""The Findings page: every cell of its table comes from a value a chapter glued."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest

from attrbound_lite.book import findings
from attrbound_lite.stats import Interval


def _record(key: str, p: float = 0.5, estimate: float = 0.1, reason=None, unit: str = "units") -> dict:
    return findings.comparison(Interval(estimate, estimate - 0.05, estimate + 0.05, 3, p_value=p), f"<{key}>",
                               "above", "below", shown=f"[{key}]", reason=reason, unit=unit)


def _fake_values() -> dict[str, dict]:
    """A value for every name the claims' templates ask for, spelling out the name; comparisons with p = 0.5."""
    values: dict[str, dict] = {}
    for claim in findings.CLAIMS:
        chapter = values.setdefault(claim.chapter, {})
        for name in re.findall(r"{(\w+)}", claim.measured + claim.scale):
            chapter[name] = f"<{name}>"
        for _field, keys in re.findall(r"{(tests?):([\w,]+)}", claim.measured):
            chapter.update({key: _record(key) for key in keys.split(",")})
    for stem, template in findings.PROTOCOLS.items():
        values[stem].update({name: f"<{name}>" for name in re.findall(r"{(\w+)}", template)})
    return values


def test_every_cell_is_filled_from_the_glued_values():
    table = findings.findings_table(_fake_values())
    assert len(table) == len(findings.CLAIMS) and list(table.columns) == [
        "claim", "source", "measured in this build", "shown in", "scale of the evidence"]
    row = table.set_index("claim").loc["FAR's robustness depends less on the training radius than earlier methods'"]
    assert row["measured in this build"] == "not established after Holm, [ch7_test_eps]"
    assert "<ch7_n_study>" in row["scale of the evidence"]
    fragile = table["measured in this build"][table["source"] == "Ghorbani et al. 2019"].item()
    assert fragile == ("MNIST: not established after Holm, [ch7_test_fragile_mnist_natural]; Fashion-MNIST: not "
                       "established after Holm, [ch7_test_fragile_fashion_mnist_natural]; CIFAR-10 subset: not "
                       "established after Holm, [ch7_test_fragile_cifar10_subset_natural]")
    assert not any("{" in cell for cell in table.to_numpy().ravel())
    assert row["shown in"] == '<a href="07_far.html#fig-far-eps">chapter 7, training-radius study</a>'
    # the page: the source under the claim, each scale stated once under the table with the places that share it
    page = findings.page_table(table)
    assert list(page.columns) == ["claim (source · shown in)", "measured in this build"]
    assert page["claim (source · shown in)"].iloc[0].endswith(
        '<br><small>Wang & Kong 2023 · <a href="06_validation.html#fig-violations">chapter 6, violations by radius</a>'
        '</small>')
    scales = findings.scale_values(table)["findings_scale"]
    assert scales.startswith("chapter 6, violations by radius and chapter 6, achieved / bound against the radius: "
                             "<ch6_n_images> test images per data set, 15 models;")
    assert scales.count("<ch7_n_short> test images per model") == 1 and "<a" not in scales
    protocol = findings.protocol_values(_fake_values())["findings_protocol"]
    assert "<ch7_attack>" in protocol and "<ch6_budget>" in protocol and "<ch6_budget_short>" in protocol
    assert "{" not in protocol


def test_every_link_names_a_figure_or_section_of_its_chapter():
    """The anchors exist in the chapter sources: a figure's :name: or a heading's id."""
    for claim in findings.CLAIMS:
        page, anchor = claim.link.split(".html#")
        assert page == claim.chapter
        nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / f"{page}.ipynb", as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        headings = {re.sub(r"[^a-z0-9]+", "-", h.lower()).strip("-") for h in re.findall(r"^#+ (.+)$", text, re.M)}
        assert f":name: {anchor}" in text or anchor in headings, (claim.claim, anchor)


def test_verdict_words_are_holms_over_the_whole_family():
    values = _fake_values()
    family = findings.family_table(values)
    m = len(family)
    assert m > 30 and family["key"].is_unique  # every comparison the page states, once
    far, ch4 = values["07_far"], values["04_training"]
    far["ch7_test_mnist_aat"] = _record("ch7_test_mnist_aat", p=0.01 / m, estimate=0.2,
                                        unit="trained runs")  # survives Holm
    far["ch7_test_mnist_advaat"] = _record("ch7_test_mnist_advaat", p=0.03)  # below 0.05 alone, not in the family
    far["ch7_test_mnist_ig_norm"] = _record("ch7_test_mnist_ig_norm", reason="not compared (one run)")
    ch4["ch4_test_pgd_mnist"] = _record("ch4_test_pgd_mnist", p=0.02 / (m - 2), estimate=-0.3,
                                        unit="images")  # second in line
    family = findings.family_table(values).set_index("key")
    assert family.loc["ch7_test_mnist_aat", "verdict"] == "above"
    assert family.loc["ch4_test_pgd_mnist", "verdict"] == "below"
    assert family.loc["ch7_test_mnist_advaat", "verdict"] == findings.NOT_ESTABLISHED
    assert family.loc["ch7_test_mnist_ig_norm", "verdict"] == "not compared (one run)"
    assert family["holm_p"].isna().sum() == 1
    assert family.loc["ch4_test_pgd_mnist", "holm_p"] == pytest.approx(0.02)  # (m - 2) p: second of m - 1
    table = findings.findings_table(values).set_index("source")
    assert table.loc["RAR 2019", "measured in this build"].startswith("MNIST: not compared (one run); ")
    sentence = findings.family_values(findings.family_table(values))["findings_family"]
    assert sentence.startswith(f"{m - 1} comparisons on this page form one family")
    assert "%, 2 of their verdicts stand" in sentence
    assert "(3 would pass at 5 % each" in sentence
    # split by kind: the two verdicts rest on a comparison over trained runs (AAT) and one over images (chapter 4)
    assert f"own): 1 of the 1 comparison of training recipes over their trained runs and 1 of the 1 comparison of " \
           f"single trained models (seed 0) over test images and 0 of the {m - 3} comparisons over units; 1 " \
           "comparison is not made, for the reason given" in sentence


def test_a_list_of_comparisons_is_grouped_by_verdict():
    values = _fake_values()
    ch5 = values["05_bounds"]
    ch5["ch5_rel_mnist_aat_test"] = _record("ch5_rel_mnist_aat_test", p=1e-6, estimate=-0.4)
    robust = findings.findings_table(values).set_index("claim").iloc[4]
    assert robust.name.startswith("... and shrinks the first-order bound")
    table = robust["measured in this build"]
    # a comparison made but not supported shows its difference and interval: which way it leans, how far
    assert table.startswith("MNIST: at <ch5_rel_mnist_eps>, not established after Holm for "
                            "<ch5_rel_mnist_pgd_at_test> ([ch5_rel_mnist_pgd_at_test]), <ch5_rel_mnist_ig_norm_test> "
                            "([ch5_rel_mnist_ig_norm_test]), <ch5_rel_mnist_advaat_test> "
                            "([ch5_rel_mnist_advaat_test]); below for <ch5_rel_mnist_aat_test>; Fashion-MNIST")


def test_a_comparison_survives_the_glue_round_trip(tmp_path):
    record = findings.comparison(Interval(0.3, float("nan"), float("nan"), 1, p_value=float("nan")), "AAT")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": repr(record)},
                                           metadata={"scrapbook": {"name": "ch7_test_x", "mime_prefix": ""}})]
    nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "07_far.ipynb")
    assert findings.chapter_values(tmp_path, ["07_far"])["07_far"]["ch7_test_x"] == record
    assert record["low"] is None and record["p"] is None


def test_a_missing_value_or_chapter_is_named(tmp_path):
    values = _fake_values()
    del values["07_far"]["ch7_n_study"]
    with pytest.raises(ValueError, match="chapter 07_far glued no 'ch7_n_study'"):
        findings.findings_table(values)
    del values["07_far"]["ch7_test_eps"]
    with pytest.raises(ValueError, match="no chapter glued the comparison 'ch7_test_eps'"):
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


def test_too_few_units_or_no_spread_leave_a_comparison_out_of_the_family():
    two = findings.comparison(Interval(0.3, 0.1, 0.5, 2, p_value=0.01), "AAT", unit="trained runs")
    assert two["p"] is None and two["reason"] == "only 2 trained runs: too few to test"
    agree = findings.comparison(Interval(0.3, 0.3, 0.3, 3, p_value=float("nan")), "AAT", unit="trained runs")
    assert agree["p"] is None and agree["reason"] == "no test: the trained runs all agree"
    made = findings.comparison(Interval(0.3, 0.1, 0.5, 64, p_value=1e-9), "AAT", unit="images")
    assert made["p"] == 1e-9 and made["reason"] is None and made["unit"] == "images"


def test_the_family_table_names_its_units_and_prints_tiny_p_values_as_a_bound():
    values = _fake_values()
    values["07_far"]["ch7_test_mnist_aat"] = findings.comparison(Interval(0.2, 0.1, 0.3, 64, p_value=1e-12), "AAT",
                                                                 unit="images")
    family = findings.family_table(values).set_index("key")
    assert family.loc["ch7_test_mnist_aat", "n"] == "64 images"
    text = findings.family_text(family.reset_index()).set_index("comparison")
    assert text.loc["AAT", "p"] == "< 10⁻⁶" and text.loc["AAT", "holm_p"] == "< 10⁻⁶"
    assert text.loc["<ch7_test_mnist_advaat>", "p"] == "0.50" and "key" not in text.columns


def test_tour_eleven_each_comparison_is_one_member_of_the_family():
    """A comparison two claims name counts once in Holm's family; one two chapters glue, or a partial record, is
    refused rather than silently replaced."""
    values = _fake_values()
    twice = (*findings.CLAIMS, findings.Claim("again", "s", "07_far", "{test:ch7_test_eps}", "w", "s", "l"))
    family = findings.family_table(values, twice)
    assert family["key"].is_unique and len(family) == len(findings.family_table(values))
    clash = copy.deepcopy(values)
    clash["05_bounds"]["ch7_test_eps"] = clash["07_far"]["ch7_test_eps"]
    with pytest.raises(ValueError, match="glued by two chapters, 05_bounds and 07_far"):
        findings.family_table(clash)
    partial = copy.deepcopy(values)
    del partial["07_far"]["ch7_test_eps"]["label"]
    with pytest.raises(ValueError, match=r"without \['label'\]"):
        findings.family_table(partial)
