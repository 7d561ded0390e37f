"""Make the student version of each lab: solutions out, `raise NotImplementedError` in.

The notebooks in labs/ are the instructor's versions (nbgrader's convention): inside an
exercise function the solution sits between two marker lines,

    def bradley_terry_loss(r_chosen, r_rejected):
        ### BEGIN SOLUTION
        return -F.logsigmoid(r_chosen - r_rejected).mean()
        ### END SOLUTION

and the student version gets, at the same indentation,

        raise NotImplementedError("Exercise: write your solution here")

A block at the top level of a cell (markers in column 0, e.g. a recap quiz's answers
after the `quiz_answers = {1: None, ...}` line the learner fills in) is removed with no
stub: a top-level `raise` would stop the student notebook there.

Outputs, execution counts and run metadata are stripped too, with nbstripout's API (as
`nbstripout --keep-id` does). The check cell that follows each exercise then prints
"⚠️ Not implemented yet" until the learner fills the function in.

    python tools/make_student_notebooks.py                 # labs/*.ipynb -> labs/student/
    python tools/make_student_notebooks.py --out DIR a.ipynb

Only labs/*.ipynb are read: the answer key in labs/instructor/ is never copied. To grade
what the students hand back: `moss-lab grade` (labs/README.md, "Teaching a course").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbstripout import strip_output

LABS = Path(__file__).resolve().parents[1] / "labs"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write your solution here")'
# The metadata keys that the nbstripout command line strips by default (nbstripout 0.9).
STRIP_KEYS = [
    "metadata.signature", "metadata.widgets", "cell.metadata.collapsed",
    "cell.metadata.ExecuteTime", "cell.metadata.execution", "cell.metadata.heading_collapsed",
    "cell.metadata.hidden", "cell.metadata.scrolled",
]


def student_source(source: str) -> str:
    """Replace every BEGIN/END SOLUTION block (markers included) with the stub, or with
    nothing when the block is at the top level of the cell."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            indent = line[: len(line) - len(line.lstrip())]
            if indent:
                out.append(indent + STUB + "\n")
            inside = True
        elif marker == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "".join(out)


def make_student(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A stripped student copy of an instructor notebook (the input is left unchanged)."""
    student = nbformat.from_dict(nb)  # a deep copy
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.source = student_source(cell.source)
    return strip(student)


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip `nb` in place and return it, as `nbstripout --keep-id` does."""
    return strip_output(nb, keep_output=False, keep_count=False, keep_id=True,
                        extra_keys=STRIP_KEYS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=LABS / "student",
                        help="folder for the student notebooks (default: labs/student)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(LABS.glob("*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        target = args.out / path.name
        nbformat.write(make_student(nb), target)
        print(f"{path} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
