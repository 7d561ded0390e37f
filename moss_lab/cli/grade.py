"""`moss-lab grade`: grade student notebooks, one CSV row and one report per student.

    moss-lab grade submissions/                          # a folder per student, or files
    moss-lab grade alice.ipynb bob.ipynb --lab 05 --out grades.csv --reports reports/

Each notebook runs in a fresh Jupyter kernel (a time limit per cell and per notebook);
after the cell where an exercise is checked, the library's checker runs again on the
learner's function in that kernel and decides the points (moss_lab.grading says how, and
what it cannot protect against). Who and which lab, from the paths:

    submissions/alice/05_values_and_gae.ipynb   alice, lab 05 (a folder per student)
    submissions/alice_05_values_and_gae.ipynb   alice, lab 05 (the lab's name removed)
    alice.ipynb --lab 05                        alice, lab 05

Writes the CSV (student, one column per exercise id with the points earned, total, max)
and <reports>/<student>.md (per exercise the verdict and the checker's message). The last
line printed is one JSON object: {"csv", "reports", "students": {name: [total, max]}}.
Bad input (a missing path, a notebook of no known lab, two notebooks of one student for
one lab) exits with code 2 before any notebook runs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import tyro

from ..configs import parse_args


@dataclass
class Grade:
    """Grade student notebooks: a CSV with one row per student and a report per student."""

    submissions: tyro.conf.Positional[tuple[str, ...]]
    """Notebooks (.ipynb) and folders of notebooks (searched recursively)."""
    out: str = "grades.csv"
    """The grades CSV: student, one column per exercise id (points earned), total, max."""
    reports: str = "reports"
    """Folder for the per-student reports, <reports>/<student>.md."""
    lab: str | None = None
    """The lab of every notebook given ("05"), when their names do not hold the lab's
    notebook name (05_values_and_gae)."""
    timeout_cell: float = 180.0
    """Seconds a cell may run before it is interrupted (and graded as it stands); also the
    limit of each exercise's check."""
    timeout_notebook: float = 900.0
    """Seconds for one notebook's cells; later cells are skipped, the exercises are still
    checked."""
    run_all: bool = False
    """Also run the cells after the last exercise (slower; the grade does not change, the
    report lists their errors)."""

    exercises_only: bool = False
    """Run only the first code cell (the imports) and the exercise and check cells: fast
    for labs that train before their last exercise (03, 06, 08), but a helper the
    student defined in a cell of their own is then missing."""

    def __post_init__(self) -> None:
        for name in ("timeout_cell", "timeout_notebook"):
            value = getattr(self, name)
            if not 1 <= value <= 86_400:  # also refuses nan
                raise ValueError(f"{name} must be between 1 and 86400 seconds, got {value}")


def main(argv: list[str]) -> int:
    from .. import grading
    from ..files import write_text

    options = parse_args(Grade, argv, prog="moss-lab grade")
    submissions = grading.find_submissions(list(options.submissions), options.lab)
    print(f"grading {len(submissions)} notebooks of "
          f"{len({s.student for s in submissions})} students")
    results = []
    for sub in submissions:
        result = grading.grade_notebook(sub, options.timeout_cell, options.timeout_notebook,
                                        options.run_all, options.exercises_only)
        results.append(result)
        not_graded = sum(v.verdict == "error" for v in result.verdicts)
        print(f"  {sub.student:20s} lab {sub.lab.number}: {result.points:3d} / "
              f"{sub.lab.max_points:3d}   ({result.seconds:.0f} s, {sub.path})"
              + (f"   {not_graded} exercises NOT GRADED: see the report" if not_graded else ""))
    results = grading.with_unsubmitted(results)
    write_text(options.out, grading.grades_csv(results))
    totals = {}
    for student in sorted({r.submission.student for r in results}):
        mine = [r for r in results if r.submission.student == student]
        write_text(Path(options.reports) / f"{student}.md", grading.report_markdown(student, mine))
        totals[student] = [sum(r.points for r in mine),
                           sum(r.submission.lab.max_points for r in mine)]
    print(f"grades: {options.out}\nreports: {options.reports}/<student>.md")
    print(json.dumps({"csv": str(options.out), "reports": str(options.reports),
                      "students": totals}))
    return 0
