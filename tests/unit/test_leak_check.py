"""The leak check itself (tests/leak_check.py): it finds a shared file that depends on one system's data, and
never fires on a common word or a digit (issue 24: a credit data set's columns `status`, `duration`, `job` and its
labels `1`/`2` failed 85 shared files)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.leak_check import PRAGMA, Checker, Word, own_words, vocabulary

OWNER = "credit (its dataset config)"
WORDS = [
    Word("credit", "name", OWNER),
    Word("german", "name", OWNER),
    Word("german.data", "file", OWNER),
    *(
        Word(c, "column", OWNER)
        for c in ["status", "duration", "purpose", "job", "property", "savings_ratio"]
    ),
    Word("approved", "label", OWNER),
    Word("yes", "label", OWNER),
]
PLATFORM = """
def report(run):
    return {"status": "ok", "duration": run.seconds}
"""


def checker(tmp_path: Path) -> Checker:
    platform = tmp_path / "platform.py"
    platform.write_text(PLATFORM)
    return Checker(WORDS, own_words([platform]))


def leaks(tmp_path: Path, source: str, suffix: str = ".py") -> list[str]:
    path = tmp_path / f"shared{suffix}"
    path.write_text(textwrap.dedent(source))
    return [str(leak) for leak in checker(tmp_path).check(path, tmp_path)]


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ('x = frame["savings_ratio"]\n', "indexes with 'savings_ratio', a column"),
        ('x = frame.loc[:, ["purpose"]]\n', "indexes with 'purpose', a column"),
        ('x = row.get("job")\n', "indexes with 'job', a column"),
        ('keep = [c for c in cols if c == "purpose"]\n', "compares with 'purpose', a column"),
        ("x = frame.savings_ratio\n", "reads attribute 'savings_ratio'"),
        ('frame = frame.sort_values("savings_ratio")\n', "names 'savings_ratio', a column"),
        ('income = frame["job"]\njob = 1\n', "indexes with 'job', a column"),  # a variable excuses nothing
        ('x = frame[f"savings_ratio"]\n', "indexes with 'savings_ratio'"),
        ('n = con.sql("SELECT count(*) FROM log WHERE job = 1")\n', "queries 'job'"),
        ('rich = frame.query("savings_ratio > 0.5")\n', "queries 'savings_ratio'"),
        ('if decision == "approved":\n    pass\n', "compares with 'approved', a label"),
        ('colors = palette["approved"]\n', "indexes with 'approved', a label"),
        ('y = raw.map({"approved": 1, "other": 0})\n', "maps 'approved', a label"),
        ('mask = raw.isin(["approved"])\n', "indexes with 'approved', a label"),
        ('i = labels.index("approved")\n', "indexes with 'approved', a label"),
        ('match decision:\n    case "approved":\n        pass\n', "compares with 'approved', a label"),
        ('y = (raw == "yes").astype(int)\n', "compares with 'yes', a label"),
        ('path = "data/raw/german.data"\n', "spells 'german.data', a file"),
        ('path = b"data/raw/german.data"\n', "spells 'german.data', a file"),
        ('folder = "data/credit/raw"\n', "spells 'credit', a name"),
        ('stage = "report@credit"\n', "spells 'credit', a name"),
        ('system = "credit"\n', "spells 'credit', a name"),
        ("def credit_fixup(x):\n    return x\n", "names 'credit', a name"),
        ("creditScore = 1\n", "names 'credit', a name"),
        ("class CreditReport:\n    pass\n", "names 'credit', a name"),
        ("import credit_features\n", "names 'credit', a name"),
        ("from pipelines import credit\n", "names 'credit', a name"),
    ],
)
def test_a_real_leak_is_found_and_the_message_says_what_to_do(
    tmp_path: Path, source: str, words: str
) -> None:
    found = leaks(tmp_path, source)
    assert any(words in f for f in found), found
    assert all("shared.py:" in f and "take " in f and PRAGMA in f for f in found)


@pytest.mark.parametrize(
    "source",
    [
        'STATUS = {"status": "ok"}\nx = result["status"]\n',  # the platform's own key, which a column shares
        'took = run["duration"]\n',
        'if count == "1" or table["2"] or sign == "-1" or v == "+1" or r == "2.0":\n    pass\n',  # numbers
        'def f(job):\n    """Each job has a status, a duration and a purpose; credit scoring is one use."""\n    return job\n',
        "class A:\n    @property\n    def size(self) -> int:\n        return 1\n",
        'name = f"{prefix}_status"\n',
        "# a comment about credit, status and approved\nx = 1\n",
        'raise ValueError("no credit left in the retry budget")\n',  # a name in a sentence
        'self.on_shed("rate")\n',  # a plain word as a plain argument
        f'x = frame["savings_ratio"]  # {PRAGMA}: the platform\'s own field here\n',
    ],
    ids=[
        "own-key",
        "own-key-2",
        "numbers",
        "docstring",
        "builtin",
        "f-string",
        "comment",
        "sentence",
        "plain-arg",
        "pragma",
    ],
)
def test_common_words_digits_and_prose_pass(tmp_path: Path, source: str) -> None:
    assert leaks(tmp_path, source) == []


def test_templates_are_read_as_templates(tmp_path: Path) -> None:
    found = leaks(
        tmp_path,
        """
        # {{ system.title }}
        The job ran for a duration with status {{ run.status }}.
        {{ row.savings_ratio }}
        {% if decision == "approved" %}yes{% endif %}
        {{ rows | selectattr("label", "equalto", "approved") | list }}
        {% if count == "1" %}one{% endif %}
        German credit
        """,
        ".md.j2",
    )
    assert [f.split(": ", 1)[1].split(",")[0] for f in found] == [
        "reads attribute 'savings_ratio'",
        "compares with 'approved'",
        "compares with 'approved'",
        "spells 'credit'",
        "spells 'german'",
    ], found


def test_pages_count_names_only(tmp_path: Path) -> None:
    assert leaks(tmp_path, "A job's status, duration and purpose.\n", ".md") == []
    assert "spells 'credit'" in leaks(tmp_path, "On credit data.\n", ".md")[0]


def test_vocabulary_leaves_out_numbers_and_display_names() -> None:
    params = {
        "systems": ["credit"],
        "credit": {
            "dataset": {
                "name": "german",
                "files": {"all": {"path": "german.data"}},
                "columns": {"status": "category", "duration": "int", "risk": "category"},
                "target": {
                    "column": "risk",
                    "labels": {"1": 0, "-1": 1, "yes": 1},
                    "display": {"positive": "bad", "negative": "good"},
                },
            }
        },
    }
    found = {(w.text, w.kind) for w in vocabulary(params)}
    assert ("1", "label") not in found and ("-1", "label") not in found
    assert {("credit", "name"), ("german", "name"), ("german.data", "file"), ("risk", "column")} <= found
    assert ("yes", "label") in found  # a YAML word, but a label: shared code must not compare with it
    assert ("bad", "label") not in found  # how pages name a class is shown, not compared
