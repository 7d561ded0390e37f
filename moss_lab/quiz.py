"""The recap quiz at the end of each lab: five questions, checked here, so that the
answers live in the library (moss_lab/quizzes.py) and not in the student's notebook.

    score(answers) = #{ i : answer_i is right }, where a letter is right when it is the
                     key, and a number when |answer - key| <= tolerance

In the notebook:

    quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
    score_quiz("06", quiz_answers)

prints one line per question and returns the score. A right answer gets ✅; a wrong one
gets ❌ and a one-line explanation that teaches the point but does not spell out the
letter, so that the learner thinks again instead of copying. `None` prints
"⚠️ not answered yet". Nothing here raises on what a learner types: a malformed answer is
a ⚠️ line that says what to write instead, so the student notebook always runs to the end.

The quiz is self-assessment and is not graded (`moss-lab grade` grades the exercises);
the function is not named check_* because the labs' tests treat check_* calls as exercise
checks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    """A multiple-choice question: answer with the letter of one option."""
    text: str
    options: dict[str, str]  # letter -> option
    answer: str              # the right letter
    why: str                 # printed after a wrong answer


@dataclass(frozen=True)
class Number:
    """A question whose answer is a number, right within +/- tolerance."""
    text: str
    answer: float
    tolerance: float
    why: str


Question = Choice | Number


def questions(lab: str) -> list[Question]:
    """The quiz of `lab` ("06"), in order (question 1 first)."""
    from moss_lab.quizzes import QUIZZES

    if lab not in QUIZZES:
        raise ValueError(f"no quiz for lab {lab!r}; the labs with a quiz are {', '.join(QUIZZES)}")
    return QUIZZES[lab]


def markdown(lab: str) -> str:
    """The questions and options as the lab's markdown cell shows them."""
    intro = ("Answer in the cell below (a letter, or a number where a number is asked) and "
             "run it: each answer is checked, and a wrong one gets a hint.")
    lines = ["## Recap quiz", "", intro, ""]
    for i, q in enumerate(questions(lab), start=1):
        lines.append(f"{i}. {q.text}")
        if isinstance(q, Choice):
            lines += [f"   - ({letter}) {option}" for letter, option in q.options.items()]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def verdict(q: Question, answer) -> tuple[str, bool]:
    """(the line to print without the question number, whether the answer is right)."""
    if answer is None:
        return "⚠️ not answered yet", False
    if isinstance(q, Choice):
        letters = ", ".join(q.options)
        if not isinstance(answer, str) or answer.strip().lower() not in q.options:
            return f"⚠️ answer with one of the letters {letters} (got {answer!r})", False
        right = answer.strip().lower() == q.answer
    else:
        if isinstance(answer, bool) or not isinstance(answer, (int, float)) or math.isnan(answer):
            return f"⚠️ answer with a number, such as 0.5 (got {answer!r})", False
        right = abs(answer - q.answer) <= q.tolerance
    return ("✅ right", True) if right else (f"❌ not quite: {q.why}", False)


def score_quiz(lab: str, answers) -> int:
    """Print a verdict per question of lab `lab`'s quiz and return how many are right."""
    qs = questions(lab)
    example = "{1: \"b\", 2: 0.5, ...}"
    if not isinstance(answers, dict):
        print(f"⚠️ quiz_answers must be a dict such as {example}, not a "
              f"{type(answers).__name__}.\nScore: 0 / {len(qs)}")
        return 0
    for key in answers:
        if key not in range(1, len(qs) + 1) or isinstance(key, bool):
            print(f"⚠️ {key!r}: there is no such question; the keys are the question "
                  f"numbers 1 to {len(qs)}, as in {example}")
    score = 0
    for i, q in enumerate(qs, start=1):
        line, right = verdict(q, answers.get(i))
        print(f"{i}. {line}")
        score += right
    print(f"Score: {score} / {len(qs)}")
    return score
