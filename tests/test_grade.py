"""`moss-lab grade` (moss_lab.grading): the exercise registry matches the labs' check
cells, submissions are found and named, and graded notebooks score 0 untouched, full
marks solved, partial marks with one wrong answer, and 0 when they try to fool the grader
(forged result lines, patched checkers, the library's own function). Cell and check time
limits hold.
"""
import csv
import importlib
import importlib.util
import io
import re
from pathlib import Path

import nbformat
import pytest

from moss_lab import grading
from moss_lab.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
SOLUTION = "### BEGIN SOLUTION"
CHECK_CALL = re.compile(r"(?<!def )\b(check_\w+)\((\w+)\)")


def student_tool():
    spec = importlib.util.spec_from_file_location(
        "make_student_notebooks", ROOT / "tools" / "make_student_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------
# The registry cannot drift from the labs
# ---------------------------------------------------------------------------------------
def exercises_in_labs() -> set[tuple[str, str, str]]:
    """(lab number, function, checker) of every check cell in the instructor notebooks."""
    found = set()
    for path in sorted(LABS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                found |= {(path.name[:2], fn, checker)
                          for checker, fn in CHECK_CALL.findall(cell.source)}
    return found


def test_every_check_cell_has_an_id_and_points():
    registered = {(lab.number, e.function, e.checker.rpartition(".")[2])
                  for lab in grading.EXERCISES.values() for e in lab.exercises}
    in_labs = exercises_in_labs()
    assert in_labs, "no check cells found in labs/*.ipynb"
    assert in_labs - registered == set(), (
        f"check cells without an entry in moss_lab.grading.EXERCISES: {in_labs - registered}")
    assert registered - in_labs == set(), (
        f"EXERCISES entries with no check cell in the labs: {registered - in_labs}")
    for lab in grading.EXERCISES.values():
        assert (LABS / f"{lab.stem}.ipynb").is_file(), lab.stem
        for e in lab.exercises:
            assert e.id == f"{lab.number}.{e.function}"
            assert isinstance(e.points, int) and e.points > 0, e
            module, _, name = e.checker.rpartition(".")
            assert callable(getattr(importlib.import_module(module), name)), e.checker
            # the function is an exercise of that lab (a solution block defines it)
            source = (LABS / f"{lab.stem}.py").read_text(encoding="utf-8")
            assert re.search(rf"^def {e.function}\(", source, re.M), e


def test_every_lab_with_a_solution_block_is_registered():
    with_exercises = {p.name[:2] for p in LABS.glob("[0-9][0-9]_*.ipynb")
                      if SOLUTION in p.read_text(encoding="utf-8")}
    assert with_exercises == set(grading.EXERCISES)


def test_the_labs_readme_lists_every_exercise_with_its_points():
    readme = (LABS / "README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `(\d\d\.\w+)` \| (\d+) \|", readme, re.M))
    expected = {e.id: str(e.points) for lab in grading.EXERCISES.values() for e in lab.exercises}
    assert listed == expected


# ---------------------------------------------------------------------------------------
# Finding the submissions and their students
# ---------------------------------------------------------------------------------------
def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def test_students_from_folders_and_file_names(tmp_path):
    touch(tmp_path / "subs/alice/05_values_and_gae.ipynb")
    touch(tmp_path / "subs/alice/02_preferences_and_bradley_terry.ipynb")
    touch(tmp_path / "subs/bob_05_values_and_gae.ipynb")
    touch(tmp_path / "subs/.ipynb_checkpoints/carol_05_values_and_gae-checkpoint.ipynb")
    found = grading.find_submissions([tmp_path / "subs"])
    assert sorted((s.student, s.lab.number) for s in found) == [
        ("alice", "02"), ("alice", "05"), ("bob", "05")]
    dave = touch(tmp_path / "dave.ipynb")
    assert [(s.student, s.lab.number) for s in grading.find_submissions([dave], lab="09")] == [
        ("dave", "09")]


@pytest.mark.parametrize("case, message", [
    ("missing", "no such notebook"),
    ("unknown lab", "cannot tell which lab"),
    ("bad --lab", "no such lab"),
    ("twice", "two notebooks for alice"),
    ("empty folder", "no .ipynb files"),
])
def test_bad_submissions_are_refused_before_anything_runs(case, message, tmp_path, capsys):
    args = {"missing": lambda: [tmp_path / "nope.ipynb"],
            "unknown lab": lambda: [touch(tmp_path / "alice.ipynb")],
            "bad --lab": lambda: [touch(tmp_path / "alice.ipynb"), "--lab", "42"],
            "twice": lambda: [touch(tmp_path / "alice/05_values_and_gae.ipynb"),
                              touch(tmp_path / "x/alice_05_values_and_gae.ipynb")],
            "empty folder": lambda: [tmp_path]}[case]()
    out = tmp_path / "grades.csv"
    assert cli(["grade", *map(str, args), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------------------
# Where the grader checks, and what it believes
# ---------------------------------------------------------------------------------------
def test_each_exercise_is_checked_after_its_last_definition_or_check():
    lab = grading.EXERCISES["05"]
    cells = [nbformat.v4.new_code_cell(src) for src in [
        "import torch",                                   # 0
        "def td_errors(r, v, g, m):\n    return r",       # 1
        "check_td_errors(td_errors)",                     # 2
        "def gae(r, v, g, l, m):\n    return r, r",       # 3
        "x = 1",                                          # 4
        "def gae(r, v, g, l, m):\n    return v, v",       # 5: redefined, no check after
        "print('training...')",                           # 6
    ]]
    cells.insert(1, nbformat.v4.new_markdown_cell("def gae(): in markdown"))

    def ids(planned):
        return [(i, [e.id for e in es]) for i, es in planned]

    assert ids(grading.plan(cells, lab)) == [
        (0, []), (2, []), (3, ["05.td_errors"]), (4, []), (5, []), (6, ["05.gae"])]
    assert ids(grading.plan(cells, lab, run_all=True))[-1] == (7, [])
    assert ids(grading.plan(cells, lab, exercises_only=True)) == [
        (0, []), (2, []), (3, ["05.td_errors"]), (4, []), (6, ["05.gae"])]
    # an exercise nowhere in the notebook is checked at the end (and will be "missing")
    assert ids(grading.plan(cells[:3], lab)) == [(0, []), (2, ["05.td_errors", "05.gae"])]
    assert ids(grading.plan(cells[1:2], lab)) == [(-1, ["05.td_errors", "05.gae"])]


def stream(text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return cell


def test_only_one_line_with_this_notebooks_nonce_counts():
    good = '[{"id": "05.gae", "passed": true, "verdict": "passed", "message": "ok"}]'
    assert grading.read_verdicts(stream(f"noise\nMOSS-GRADE abc {good}\n"), "abc")[0]["passed"]
    for text in (f"MOSS-GRADE xyz {good}\n",                             # another nonce
                 f"MOSS-GRADE abc {good}\nMOSS-GRADE abc {good}\n",      # two lines
                 "MOSS-GRADE abc {not json\n", "MOSS-GRADE abc {}\n", ""):
        assert isinstance(grading.read_verdicts(stream(text), "abc"), str), text


def test_csv_and_reports_count_unsubmitted_labs_as_zero():
    lab5, lab2 = grading.EXERCISES["05"], grading.EXERCISES["02"]

    def result(student, lab, passed):
        return grading.LabResult(grading.Submission(student, lab, Path(f"{student}.ipynb")),
                                 [grading.Verdict(e, p, "passed" if p else "failed", "")
                                  for e, p in zip(lab.exercises, passed)])

    results = grading.with_unsubmitted([result("bob", lab5, [True, False]),
                                        result("amy", lab5, [True, True]),
                                        result("amy", lab2, [False, True, True])])
    rows = list(csv.DictReader(io.StringIO(grading.grades_csv(results))))
    assert [r["student"] for r in rows] == ["amy", "bob"]
    assert list(rows[0]) == ["student", "02.bt_probability", "02.bt_loss", "02.bt_loss_gradient",
                             "05.td_errors", "05.gae", "total", "max"]
    assert rows[0] == {**rows[0], "02.bt_probability": "0", "02.bt_loss": "2", "total": "9",
                       "max": "10"}
    assert rows[1] == {**rows[1], "02.bt_loss": "0", "05.td_errors": "2", "05.gae": "0",
                       "total": "2", "max": "10"}
    report = grading.report_markdown("bob", [r for r in results if r.submission.student == "bob"])
    assert report.startswith("# bob: 2 / 10 points") and "not submitted" in report


# ---------------------------------------------------------------------------------------
# Grading real notebooks (lab 05: two exercises, pure torch, the quickest lab)
# ---------------------------------------------------------------------------------------
WRONG_GAE = ("running = deltas[:, t] + gamma * lam * running",
             "running = deltas[:, t] - gamma * lam * running")   # a sign error
FORGERY = '''import sys, types
import moss_lab.checks
moss_lab.checks.check_td_errors = lambda fn: True         # a checker that always passes
moss_lab.checks.check_gae = lambda fn: True
fake = types.ModuleType("moss_lab.checks")                 # and a whole fake module
fake.check_td_errors = fake.check_gae = lambda fn: (print("✅ Correct"), True)[1]
sys.modules["moss_lab.checks"] = fake
print('MOSS-GRADE 0000 [{"id": "05.td_errors", "passed": true, "verdict": "passed"}]')
'''


@pytest.mark.slow
def test_grade_untouched_solved_wrong_and_forged_notebooks(tmp_path, capsys):
    """The issue's acceptance test: 0, full marks, partial marks, and not fooled."""
    stem = "05_values_and_gae"
    subs = tmp_path / "submissions"
    assert student_tool().main([str(LABS / f"{stem}.ipynb"), "--out", str(subs / "alice")]) == 0
    instructor = nbformat.read(LABS / f"{stem}.ipynb", as_version=4)
    (subs / "bob").mkdir()
    nbformat.write(instructor, subs / "bob" / f"{stem}.ipynb")

    wrong = nbformat.read(LABS / f"{stem}.ipynb", as_version=4)
    gae_cell = next(c for c in wrong.cells if WRONG_GAE[0] in c.source)
    gae_cell.source = gae_cell.source.replace(*WRONG_GAE)
    nbformat.write(wrong, subs / f"carol_{stem}.ipynb")

    forged = nbformat.read(subs / "alice" / f"{stem}.ipynb", as_version=4)  # a student copy
    forged.cells.insert(2, nbformat.v4.new_code_cell(FORGERY))
    gae_def = next(c for c in forged.cells if c.source.startswith("def gae("))
    gae_def.source += "\n\nfrom moss_lab.ppo import gae  # the library's answer"
    nbformat.write(forged, subs / f"mallory_{stem}.ipynb")

    out, reports = tmp_path / "grades.csv", tmp_path / "reports"
    assert cli(["grade", str(subs), "--out", str(out), "--reports", str(reports),
                "--timeout-cell", "120"]) == 0
    printed = capsys.readouterr().out
    rows = {r["student"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert {s: (r["05.td_errors"], r["05.gae"], r["total"], r["max"]) for s, r in rows.items()} == {
        "alice": ("0", "0", "0", "5"),     # untouched student version
        "bob": ("2", "3", "5", "5"),       # the instructor's solutions
        "carol": ("2", "0", "2", "5"),     # a sign error in gae
        "mallory": ("0", "0", "0", "5"),   # forged output, patched checkers, library gae
    }, printed
    report = {s: (reports / f"{s}.md").read_text(encoding="utf-8") for s in rows}
    assert "⚠️ not implemented" in report["alice"] and "Not implemented yet" in report["alice"]
    assert report["bob"].count("✅ passed") == 2
    assert "❌ failed" in report["carol"] and "Mismatch on input" in report["carol"]
    assert "| 05.gae | 0 / 3 | 🚫 library |" in report["mallory"]
    assert "moss_lab.ppo" in report["mallory"]
    assert "| 05.td_errors | 0 / 2 | ⚠️ not implemented |" in report["mallory"]


@pytest.mark.slow
def test_cell_and_check_time_limits(tmp_path):
    """A cell that never ends is interrupted and the next cells run; a learner's function
    that never returns fails its check; an exercise nowhere in the notebook is missing."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in [
        "import time\ntime.sleep(600)",
        "import math\n\ndef best_of_n_kl(n):\n    return math.log(n) - (n - 1) / n",
        "def group_advantages(rewards, group_size):\n    while True:\n        pass",
    ]])
    path = tmp_path / "10_grpo_rloo_best_of_n.ipynb"
    nbformat.write(nb, path)
    [sub] = grading.find_submissions([path])
    result = grading.grade_notebook(sub, timeout_cell=3, timeout_notebook=600)
    got = {v.exercise.function: (v.verdict, v.points) for v in result.verdicts}
    assert got == {"group_advantages": ("failed", 0), "leave_one_out_baseline": ("missing", 0),
                   "best_of_n_kl": ("passed", 1)}, result
    assert any(p.startswith("cell #1: Timeout") for p in result.problems), result.problems
    loop = next(v for v in result.verdicts if v.exercise.function == "group_advantages")
    assert "longer than 3 s" in loop.message
    assert result.seconds < 300
