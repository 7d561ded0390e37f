"""The labs' recap quizzes (moss_lab.quiz, moss_lab.quizzes): five questions per lab, the
instructor's answers in each lab score 5/5, a wrong answer costs one point and prints its
hint, unanswered and malformed answers print a clear line and never raise, every numeric
answer is recomputed here from its formula, and the student version of the quiz cell runs.
"""
import ast
import importlib.util
import math
import re
from pathlib import Path

import jupytext
import pytest
import torch

from moss_lab import quiz
from moss_lab.quizzes import QUIZZES

ROOT = Path(__file__).resolve().parents[1]
LABS = sorted((ROOT / "labs").glob("[0-9][0-9]_*.py"))
QUIZ_LABS = [p for p in LABS if "score_quiz(" in p.read_text(encoding="utf-8")]


def instructor_answers(path: Path) -> dict:
    """The quiz_answers dict inside the lab's solution block."""
    source = path.read_text(encoding="utf-8")
    block = re.search(r"^### BEGIN SOLUTION\nquiz_answers = (\{.*?\})\n### END SOLUTION$",
                      source, re.M)
    assert block, f"{path.name}: no quiz_answers solution block at the top level"
    return ast.literal_eval(block.group(1))


def test_every_lab_has_a_quiz_of_five_questions():
    assert [p.name[:2] for p in QUIZ_LABS] == [p.name[:2] for p in LABS if p.name[:2] in QUIZZES]
    assert {p.name[:2] for p in LABS[:11]} <= set(QUIZZES)  # labs 01-11 at least
    for lab, qs in QUIZZES.items():
        assert len(qs) == 5, lab
        for q in qs:
            assert q.why and q.text
            if isinstance(q, quiz.Choice):
                assert q.answer in q.options and len(q.options) == 4, (lab, q.text)
            else:
                assert q.tolerance >= 0


@pytest.mark.parametrize("path", QUIZ_LABS, ids=[p.stem for p in QUIZ_LABS])
def test_the_lab_shows_the_questions_and_its_answers_score_five(path, capsys):
    lab = path.name[:2]
    cells = jupytext.read(path, fmt="py:percent").cells
    markdown = [c.source for c in cells if c.cell_type == "markdown"]
    assert markdown[-1] == quiz.markdown(lab).strip(), "the quiz cell differs from moss_lab.quizzes"
    assert markdown[1].startswith("## Objectives\n") and "**Time:** about " in markdown[1]
    assert quiz.score_quiz(lab, instructor_answers(path)) == 5
    out = capsys.readouterr().out
    assert out.count("✅") == 5 and "❌" not in out and "⚠️" not in out


def test_a_wrong_answer_costs_one_point_and_prints_its_hint(capsys):
    answers = instructor_answers(QUIZ_LABS[5])  # lab 06
    q3 = QUIZZES["06"][2]
    assert quiz.score_quiz("06", {**answers, 3: q3.answer + 0.01}) == 4
    out = capsys.readouterr().out
    assert f"3. ❌ not quite: {q3.why}" in out and "Score: 4 / 5" in out
    wrong_letter = next(k for k in QUIZZES["06"][0].options if k != answers[1])
    assert quiz.score_quiz("06", {**answers, 1: wrong_letter.upper()}) == 4
    assert QUIZZES["06"][0].why in capsys.readouterr().out
    # letters are read case-insensitively, numbers within the tolerance
    assert quiz.score_quiz("06", {**answers, 1: f" {answers[1].upper()} ",
                                  3: q3.answer + 0.9 * q3.tolerance}) == 5


def test_unanswered_questions_score_zero_without_raising(capsys):
    assert quiz.score_quiz("01", {i: None for i in range(1, 6)}) == 0
    out = capsys.readouterr().out
    assert out.count("⚠️ not answered yet") == 5 and "Score: 0 / 5" in out
    assert quiz.score_quiz("01", {}) == 0


@pytest.mark.parametrize("answers, message", [
    ([("a", 1)], "quiz_answers must be a dict"),
    ({1: 3}, "answer with one of the letters a, b, c, d (got 3)"),
    ({1: "e"}, "answer with one of the letters"),
    ({2: "half"}, "answer with a number, such as 0.5 (got 'half')"),
    ({2: True}, "answer with a number"),
    ({6: "a"}, "6: there is no such question; the keys are the question numbers 1 to 5"),
    ({"1": "b"}, "'1': there is no such question"),
])
def test_malformed_answers_get_a_clear_message(answers, message, capsys):
    assert quiz.score_quiz("01", answers) == 0
    assert message in capsys.readouterr().out


def test_an_unknown_lab_is_refused():
    with pytest.raises(ValueError, match="no quiz for lab '42'"):
        quiz.score_quiz("42", {})


def test_every_numeric_answer_follows_from_its_formula():
    """Recomputed independently of moss_lab/quizzes.py (the lab's formula, plain Python)."""
    sig = lambda x: 1 / (1 + math.exp(-x))
    log_r = -1.5 - (-1.0)
    returns = 0.0
    for r in reversed([0.0, 0.0, 1.0]):
        returns = r + 0.9 * returns
    rho, adv, eps = 1.5, 2.0, 0.2
    scores = torch.tensor([17.0])
    expected = {
        ("01", 2): sig((1 + 0.1 * -10) / 1),
        ("02", 1): sig(2 - 0),
        ("02", 5): torch.linspace(0, 6, 60001)[torch.argmin(
            -0.9 * torch.nn.functional.logsigmoid(torch.linspace(0, 6, 60001))
            - 0.1 * torch.nn.functional.logsigmoid(-torch.linspace(0, 6, 60001)))].item(),
        ("03", 5): math.sqrt(0.65 * 0.35 / 400),
        ("04", 1): returns,
        ("04", 4): min(rho * adv, min(max(rho, 1 - eps), 1 + eps) * adv),
        ("05", 1): 0 + 1 * 0.8 - 0.5,
        ("06", 3): (math.exp(log_r) - 1) - log_r,
        ("07", 1): ((scores - 3) / 2).clamp(-5, 5).item(),
        ("07", 2): 1.0 + min(max(1.5 - 1.0, -0.2), 0.2),
        ("08", 3): max((d / 1000 for d in range(1, 10000)),
                       key=lambda d: d * (1 - 0.5 * math.log(d))),
        ("08", 4): 0.1 * (1 + min(max(8 / 4 - 1, -0.2), 0.2) * 64 / 1000),
        ("09", 3): -math.log(sig(0.0)),
        ("10", 2): (2 + 3 + 6) / 3,
        ("10", 3): math.log(8) - 7 / 8,
        ("11", 4): torch.nn.functional.cross_entropy(torch.zeros(64, 64),
                                                     torch.arange(64)).item(),
        ("12", 1): 1.96 * math.sqrt(0.6 * 0.4 / 100),
        ("12", 3): 1 / (1 + 10 ** (-191 / 400)),
    }
    numeric = {(lab, i): q for lab, qs in QUIZZES.items() for i, q in enumerate(qs, 1)
               if isinstance(q, quiz.Number)}
    assert set(numeric) == set(expected)
    for key, value in expected.items():
        assert abs(numeric[key].answer - value) <= numeric[key].tolerance / 2, (key, value)


def test_the_student_version_of_the_quiz_cell_runs_unanswered(capsys):
    spec = importlib.util.spec_from_file_location(
        "make_student_notebooks", ROOT / "tools" / "make_student_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    source = QUIZ_LABS[0].read_text(encoding="utf-8")
    cell = source[source.rindex("# %%\n") + 5:]
    student = tool.student_source(cell)
    assert "BEGIN" not in student and "NotImplementedError" not in student
    assert "quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}" in student
    exec(student, {})
    assert capsys.readouterr().out.count("not answered yet") == 5
    # a block inside a function is still stubbed
    assert tool.STUB in tool.student_source("def f():\n    ### BEGIN SOLUTION\n"
                                            "    return 1\n    ### END SOLUTION\n")


def test_the_answer_key_lists_every_answer():
    key = (ROOT / "labs" / "instructor" / "ANSWERS.md").read_text(encoding="utf-8")
    section = key[key.index("## Quizzes"):]
    for lab, qs in QUIZZES.items():
        part = section[section.index(f"### Lab {lab}\n"):].split("\n### ")[0]
        listed = re.findall(r"^\d\. \*\*(.+?)\*\*", part, re.M)
        assert listed == [q.answer if isinstance(q, quiz.Choice) else f"{q.answer:g}"
                          for q in qs], lab
