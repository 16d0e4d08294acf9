"""Completeness of the documents: model-card sections, datasheet answers, risk-log entries and NIST IDs."""

from __future__ import annotations

import copy

import pytest
import yaml

from pipelines.core.nist import Framework
from pipelines.report import CARD_SECTIONS, IncompleteReport, check_card, check_datasheet, check_risks
from tests.conftest import ROOT

CURATED = ROOT / "site/curated/adult"


@pytest.fixture(scope="module")
def framework() -> Framework:
    return Framework(ROOT / "site/curated/nist_ai_rmf.yaml")


def card(bodies: dict[str, str]) -> str:
    """A card with all nine sections; ``bodies`` replaces the text of some."""
    parts = [
        f"## {i}. {title}\n\n{bodies.get(title, 'Some text.')}\n" for i, title in enumerate(CARD_SECTIONS, 1)
    ]
    return "# Model card: x\n\n" + "\n".join(parts)


def test_nist_framework_counts(framework: Framework) -> None:
    coverage = framework.coverage([])
    assert [c["subcategories"] for c in coverage] == [19, 18, 22, 13]  # 72 in all
    assert sum(c["categories"] for c in coverage) == 19
    assert framework.valid("MEASURE 2.11") and framework.valid("GOVERN 1.7") and framework.valid("MANAGE 4.1")
    for bad in (
        "MEASURE 2.14",
        "GOVERN 1.8",
        "MAP 6.1",
        "measure 2.11",
        "MEASURE 2",
        "MANAGE 4.0",
        "PLAN 1.1",
    ):
        assert not framework.valid(bad), bad
    assert "MEASURE 2 has subcategories MEASURE 2.1 to .13" in (framework.problem("MEASURE 2.14") or "")


def test_full_card_passes() -> None:
    check_card("x", card({}))


def test_empty_card_section_is_named() -> None:
    with pytest.raises(
        IncompleteReport, match=r"model card for 'x' incomplete:\n  section 'Factors' is empty"
    ):
        check_card("x", card({"Factors": "   \n"}))


def test_missing_card_section_is_named() -> None:
    text = card({}).replace("## 9. Caveats and recommendations", "## Notes")
    with pytest.raises(IncompleteReport, match="section 'Caveats and recommendations' is missing"):
        check_card("x", text)


def test_curated_datasheet_is_complete() -> None:
    sheet = yaml.safe_load((CURATED / "datasheet.yaml").read_text())
    computed = {
        q["computed"]: ["something"] for s in sheet["sections"] for q in s["questions"] if q.get("computed")
    }
    check_datasheet(sheet, computed)
    assert sum(len(s["questions"]) for s in sheet["sections"]) == 57


def test_unanswered_question_is_named() -> None:
    sheet = yaml.safe_load((CURATED / "datasheet.yaml").read_text())
    computed = {q["computed"]: ["x"] for s in sheet["sections"] for q in s["questions"] if q.get("computed")}
    broken = copy.deepcopy(sheet)
    broken["sections"][0]["questions"][2]["answer"] = ""
    with pytest.raises(
        IncompleteReport,
        match=r"motivation.funding \('Who funded the creation of the data set\?'\) has no answer",
    ):
        check_datasheet(broken, computed)
    dropped = copy.deepcopy(sheet)
    dropped["sections"][1]["questions"].pop()
    with pytest.raises(
        IncompleteReport, match=r"section 'composition' has 15 questions, Gebru et al\. ask 16"
    ):
        check_datasheet(dropped, computed)
    empty_computed = {k: [] for k in computed}
    with pytest.raises(IncompleteReport, match=r"composition.count .* has no answer"):
        check_datasheet(sheet, empty_computed)  # a computed-only answer with nothing computed


def test_curated_risks_are_valid(framework: Framework) -> None:
    register = yaml.safe_load((CURATED / "risks.yaml").read_text())
    pages = {r["evidence"] for r in register["risks"]}
    check_risks(register["risks"], framework, pages, register["owners"])


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"nist": "MEASURE 2.14"}, "R-001: invalid NIST AI RMF subcategory: MEASURE 2 has subcategories"),
        ({"nist": "Measure-2.11"}, "is not of the form 'FUNCTION C.S'"),
        ({"likelihood": "very high"}, "likelihood 'very high' is not one of"),
        ({"owner": "nobody"}, "owner 'nobody' is not one of"),
        ({"mitigation": ""}, "R-001: 'mitigation' is empty"),
        ({"evidence": "nowhere.md"}, "evidence 'nowhere.md' is not a page of the site"),
    ],
)
def test_bad_risk_is_named(framework: Framework, patch: dict, words: str) -> None:
    register = yaml.safe_load((CURATED / "risks.yaml").read_text())
    pages = {r["evidence"] for r in register["risks"]}
    risks = copy.deepcopy(register["risks"])
    risks[0].update(patch)
    with pytest.raises(IncompleteReport) as err:
        check_risks(risks, framework, pages, register["owners"])
    assert words in str(err.value)
