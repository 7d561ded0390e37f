"""Grade student notebooks: every checked exercise, re-checked by the library, in the
student's own kernel (`moss-lab grade`; the workflow is in labs/README.md).

    points(notebook) = sum over the lab's exercises e of points(e) * [checker_e(learner_e)]

EXERCISES below is the one registry of exercise ids ("05.gae": lab 05, function `gae`),
checkers and points; tests/test_grade.py fails when it and the labs' check cells differ.

How one notebook is graded (grade_notebook):
 1. It is read as JSON (nbformat). This process never imports or runs its code.
 2. Its code cells run in a fresh Jupyter kernel (nbclient) in an empty temporary folder,
    with a time limit per cell and one for the whole notebook; a failing or timed-out
    cell does not stop the next. Cells after the last exercise are skipped (run_all runs
    them too): the grade never depends on them, and in labs 06-10 they train for minutes.
    exercises_only runs only the first code cell and the exercise and check cells.
 3. Right after the cell where an exercise is checked (its check cell, or the last cell
    that defines the function if the check cell is gone) the grader runs a cell of its
    own in that kernel: it sets aside every loaded moss_lab module, imports the checkers
    afresh from the installed files (so a patched `checks.check_gae` or library reference
    is not the one used), runs each checker on the function of that name with a time
    limit, captures the verdict it prints, restores the modules, and prints one line
    `MOSS-GRADE <nonce> <json>`. The nonce is drawn per notebook after the student's
    work was written: no text the notebook prints can pass for a grade.
 4. An exercise scores its points when its checker returned True, else 0. A function
    that is moss_lab's own (`from moss_lab.ppo import gae`) scores 0.

The kernel is the sandbox: student code runs with the grader's user rights and can read
or write its files and patch torch or the interpreter inside the kernel. Grade untrusted
notebooks in a container or as an unprivileged user (labs/README.md says more).
"""
from __future__ import annotations

import csv
import io
import json
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

# ---------------------------------------------------------------------------------------
# The registry: lab -> exercises (function, checker, points)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exercise:
    id: str          # "<lab>.<function>", e.g. "05.gae": a column of the grades CSV
    function: str    # the name the learner's function has in the notebook
    checker: str     # the checker's full name, e.g. "moss_lab.checks.check_gae"
    points: int


@dataclass(frozen=True)
class Lab:
    stem: str        # the notebook's file name without .ipynb
    exercises: tuple[Exercise, ...]

    @property
    def number(self) -> str:
        return self.stem[:2]

    @property
    def max_points(self) -> int:
        return sum(e.points for e in self.exercises)


def _lab(stem: str, module: str, *exercises: tuple[str, str, int]) -> Lab:
    return Lab(stem, tuple(Exercise(f"{stem[:2]}.{fn}", fn, f"moss_lab.{module}.{checker}", pts)
                           for fn, checker, pts in exercises))


# Points: 1 for a one-line formula, 2 for a function with a mask or a derivation, 3 for
# the backbone of an algorithm (a backward recursion, a clipped loss with masks).
EXERCISES: dict[str, Lab] = {lab.number: lab for lab in [
    _lab("01_pipeline_and_toy_world", "checks", ("annotator_prob", "check_annotator_prob", 1)),
    _lab("02_preferences_and_bradley_terry", "checks",
         ("bt_probability", "check_bt_probability", 1),
         ("bt_loss", "check_bradley_terry_loss", 2),
         ("bt_loss_gradient", "check_bt_gradient", 2)),
    _lab("03_training_a_reward_model", "checks",
         ("pairwise_accuracy", "check_pairwise_accuracy", 1),
         ("smoothed_bt_loss", "check_label_smoothing_loss", 2),
         ("margin_bt_loss", "check_margin_loss", 1)),
    _lab("04_policy_gradient_to_ppo", "checks",
         ("discounted_returns", "check_discounted_returns", 2),
         ("clipped_surrogate_loss", "check_clipped_surrogate", 3)),
    _lab("05_values_and_gae", "checks",
         ("td_errors", "check_td_errors", 2),
         ("gae", "check_gae", 3)),
    _lab("06_rlhf_with_ppo", "checks",
         ("kl_estimates", "check_kl_estimates", 2),
         ("shape_rewards", "check_shape_rewards", 3),
         ("categorical_kl", "check_categorical_kl", 2)),
    _lab("07_ppo_max_ablations", "checks",
         ("moments_update", "check_moments_update", 3),
         ("normalise_scores", "check_normalise_scores", 1),
         ("clipped_value_loss", "check_value_loss", 2)),
    _lab("08_reward_hacking", "checks",
         ("response_kl", "check_response_kl", 1),
         ("gao_fit", "check_gao_fit", 2),
         ("adaptive_kl_update", "check_adaptive_kl_update", 2)),
    _lab("09_dpo", "checks_methods", ("dpo_loss", "check_dpo_loss", 3)),
    _lab("10_grpo_rloo_best_of_n", "checks_methods",
         ("group_advantages", "check_group_advantages", 2),
         ("leave_one_out_baseline", "check_leave_one_out_baseline", 2),
         ("best_of_n_kl", "check_best_of_n_kl", 1)),
    _lab("11_reward_modeling_under_noise", "checks_reward",
         ("preference_strength", "check_preference_strength", 1),
         ("info_nce", "check_info_nce", 2)),
    _lab("12_evaluating_aligned_models", "checks_eval",
         ("wilson_interval", "check_wilson_interval", 2)),
]}


# ---------------------------------------------------------------------------------------
# Submissions: which student, which lab
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    student: str
    lab: Lab
    path: Path


def lab_of(path: Path, lab: str | None = None) -> Lab:
    """The lab a notebook is for: `lab` ("05") when given, else the lab whose notebook
    name (05_values_and_gae) appears in the file name."""
    if lab is not None:
        if lab not in EXERCISES:
            raise ValueError(f"--lab {lab}: no such lab with exercises; "
                             f"choose from {', '.join(EXERCISES)}")
        return EXERCISES[lab]
    found = [lab for lab in EXERCISES.values() if lab.stem in path.name]
    if len(found) != 1:
        raise ValueError(f"{path}: cannot tell which lab this is (its name holds no lab "
                         f"notebook's name such as 05_values_and_gae); rename it or pass --lab NN")
    return found[0]


def student_of(path: Path, lab: Lab) -> str:
    """alice/05_values_and_gae.ipynb -> alice (a folder per student); alice_05_values_and_gae
    .ipynb or alice.ipynb (with --lab) -> alice (the file name without the lab's name)."""
    name = re.sub(r"\s*\(\d+\)$", "", path.stem)  # "05_x (1)": a browser's second download
    rest = name.replace(lab.stem, "").strip(" _-.")
    return rest or path.parent.resolve().name


def find_submissions(paths: list[str | Path], lab: str | None = None) -> list[Submission]:
    """The notebooks to grade: each path is a notebook or a folder searched for notebooks
    (checkpoints and hidden folders skipped). Refuses missing paths, notebooks of no known
    lab and two notebooks of the same student for the same lab, before anything runs."""
    if not paths:
        raise ValueError("no submissions given: name notebooks or folders of notebooks")
    notebooks = []
    for p in map(Path, paths):
        if p.is_dir():
            notebooks += sorted(q for q in p.rglob("*.ipynb")
                                if not any(part.startswith(".") for part in q.relative_to(p).parts))
        elif p.is_file() and p.suffix == ".ipynb":
            notebooks.append(p)
        else:
            raise ValueError(f"{p}: no such notebook (.ipynb) or folder")
    if not notebooks:
        raise ValueError(f"no .ipynb files in {', '.join(map(str, paths))}")
    submissions, seen = [], {}
    for path in notebooks:
        the_lab = lab_of(path, lab)
        sub = Submission(student_of(path, the_lab), the_lab, path)
        key = (sub.student, the_lab.number)
        if key in seen:
            raise ValueError(f"two notebooks for {sub.student}, lab {the_lab.number}: "
                             f"{seen[key]} and {path}; keep one")
        seen[key] = path
        submissions.append(sub)
    return submissions


# ---------------------------------------------------------------------------------------
# The grader cell (runs in the student's kernel) and reading its verdicts back
# ---------------------------------------------------------------------------------------
MARKER = "MOSS-GRADE"
GRADER_CELL = '''\
def _moss_grade(exercises, nonce, limit):
    import contextlib, functools, importlib, io, json, signal, sys, time

    def is_ours(name):
        return name == "moss_lab" or name.startswith("moss_lab.")

    class GradeTimeout(Exception):
        pass

    def on_alarm(signum, frame):
        raise GradeTimeout(f"ran longer than {limit:g} s in all")

    def timed(fn):  # the learner's function, with `limit` seconds for all its calls
        spent = [0.0]

        @functools.wraps(fn)
        def call(*args, **kwargs):
            if spent[0] >= limit:
                raise GradeTimeout(f"ran longer than {limit:g} s in all")
            start = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, limit - spent[0])
            try:
                return fn(*args, **kwargs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                spent[0] += time.monotonic() - start
        return call

    student_ns, results = globals(), []
    saved = {k: m for k, m in list(sys.modules.items()) if is_ours(k)}
    for k in saved:
        del sys.modules[k]
    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        for ex_id, name, checker in exercises:
            fn, out = student_ns.get(name), io.StringIO()
            result = {"id": ex_id, "passed": False}
            module = str(getattr(fn, "__module__", "") or "")
            if not callable(fn):
                result.update(verdict="missing", message=f"no function `{name}` in the notebook")
            elif is_ours(module):
                result.update(verdict="library", message=f"`{name}` is moss_lab's own "
                              f"function ({module}), not one written in the notebook")
            else:
                try:
                    mod, _, attr = checker.rpartition(".")
                    check = getattr(importlib.import_module(mod), attr)
                    with contextlib.redirect_stdout(out):
                        passed = check(timed(fn)) is True
                    text = out.getvalue()
                    verdict = ("passed" if passed else "not implemented"
                               if "Not implemented yet" in text else "failed")
                    result.update(passed=passed, verdict=verdict, message=text)
                except BaseException as err:
                    result.update(verdict="error", message=out.getvalue()
                                  + f"the check stopped: {type(err).__name__}: {err}")
            result["message"] = result["message"][-3000:]
            results.append(result)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for k in [k for k in sys.modules if is_ours(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
    sys.stdout.write("MOSS-GRADE " + nonce + " " + json.dumps(results) + "\\n")
    sys.stdout.flush()


_moss_grade(@EXERCISES@, @NONCE@, @LIMIT@)
del _moss_grade
'''


def grader_cell(exercises: list[Exercise], nonce: str, limit: float) -> nbformat.NotebookNode:
    """The cell that re-checks `exercises` in the student's kernel (the learner's function
    may run `limit` seconds in all per exercise) and prints the verdicts on one line
    marked with `nonce`."""
    source = (GRADER_CELL.replace("@EXERCISES@", repr([(e.id, e.function, e.checker)
                                                        for e in exercises]))
              .replace("@NONCE@", repr(nonce)).replace("@LIMIT@", repr(float(limit))))
    cell = nbformat.v4.new_code_cell(source)
    # nbclient's limit for the whole cell: `limit` per exercise, plus the library's imports
    # and the references (30 s to import moss_lab.ppo on 2 busy cores)
    cell.metadata["moss_grader_timeout"] = int(limit * len(exercises) + 300)
    return cell


def read_verdicts(cell: nbformat.NotebookNode, nonce: str) -> list[dict] | str:
    """The verdicts a grader cell printed, or why there are none."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    lines = [line for line in text.splitlines() if line.startswith(f"{MARKER} {nonce} ")]
    if len(lines) != 1:
        errors = [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", [])
                  if o.get("output_type") == "error"]
        return (f"the grader's check printed {len(lines)} result lines, not one"
                + (f" ({errors[0]})" if errors else ""))
    try:
        verdicts = json.loads(lines[0][len(MARKER) + len(nonce) + 2:])
    except json.JSONDecodeError as err:
        return f"the grader's result line is not valid JSON ({err})"
    return verdicts if isinstance(verdicts, list) else "the grader's result line is not a list"


# ---------------------------------------------------------------------------------------
# Grading one notebook
# ---------------------------------------------------------------------------------------
@dataclass
class Verdict:
    exercise: Exercise
    passed: bool
    verdict: str     # passed | failed | not implemented | missing | library | error
    message: str

    @property
    def points(self) -> int:
        return self.exercise.points if self.passed else 0


@dataclass
class LabResult:
    submission: Submission
    verdicts: list[Verdict]
    cells_run: int = 0
    cells_total: int = 0
    problems: list[str] = field(default_factory=list)   # errors, timeouts, skipped cells
    seconds: float = 0.0

    @property
    def points(self) -> int:
        return sum(v.points for v in self.verdicts)


def plan(cells: list, lab: Lab, run_all: bool = False,
         exercises_only: bool = False) -> list[tuple[int, list[Exercise]]]:
    """The code cells to run, in order, each with the exercises graded right after it
    (index -1: before any cell, in a notebook without code cells).

    An exercise is graded after the last cell that defines its function or calls its
    checker, or after the last code cell if none does. Cells after the last such cell are
    left out unless run_all; exercises_only keeps only the first code cell (the labs'
    imports) and those cells, which the labs' rule lets run on their own."""
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    after: dict[int, list[Exercise]] = {}
    exercise_cells: set[int] = set()
    for e in lab.exercises:
        checker = e.checker.rpartition(".")[2]
        pattern = re.compile(rf"(^\s*def\s+{e.function}\s*\()|(\b{checker}\s*\()", re.M)
        hits = [i for i in code if pattern.search(cells[i].source)]
        exercise_cells.update(hits)
        after.setdefault(hits[-1] if hits else (code[-1] if code else -1), []).append(e)
    last = max(after)
    keep = [i for i in code if (run_all or i <= last) and (
        not exercises_only or i == code[0] or i in exercise_cells or i in after)]
    return ([(-1, after[-1])] if -1 in after else []) + [(i, after.get(i, [])) for i in keep]


def grade_notebook(sub: Submission, timeout_cell: float = 180, timeout_notebook: float = 900,
                   run_all: bool = False, exercises_only: bool = False,
                   kernel_name: str = "python3") -> LabResult:
    """Run `sub`'s notebook in a fresh kernel with grader cells inserted; read the verdicts."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    start = time.monotonic()
    result = LabResult(sub, [])
    try:
        nb = nbformat.read(sub.path, as_version=4)
    except Exception as err:  # not JSON, not a notebook: graded 0, said in the report
        result.problems.append(f"could not read the notebook: {type(err).__name__}: {err}")
        result.verdicts = [Verdict(e, False, "error", "the notebook could not be read")
                           for e in sub.lab.exercises]
        return result
    nonce = secrets.token_hex(16)
    planned = plan(nb.cells, sub.lab, run_all, exercises_only)
    steps: list[tuple[int | None, nbformat.NotebookNode]] = []  # (student cell index | None)
    for i, exercises in planned:
        if i >= 0:
            steps.append((i, nbformat.v4.new_code_cell(nb.cells[i].source)))  # no metadata
        if exercises:
            steps.append((None, grader_cell(exercises, nonce, timeout_cell)))
    result.cells_total = sum(c.cell_type == "code" for c in nb.cells)
    left_out = result.cells_total - sum(i >= 0 for i, _ in planned)
    if left_out:
        result.problems.append(f"{left_out} code cells not run: " + (
            "only the first code cell and the exercise cells ran (exercises only)"
            if exercises_only else "they come after the last exercise and do not count"))

    run_nb = nbformat.v4.new_notebook(cells=[cell for _, cell in steps])
    found: dict[str, Verdict] = {}
    deadline, skipped = start + timeout_notebook, []
    with tempfile.TemporaryDirectory(prefix="moss-grade-") as tmp:
        workdir, sockets = Path(tmp) / "work", Path(tmp) / "ipc"
        workdir.mkdir()
        sockets.mkdir(mode=0o700)
        client = NotebookClient(
            run_nb, timeout=int(timeout_cell), kernel_name=kernel_name, allow_errors=True,
            interrupt_on_timeout=True, resources={"metadata": {"path": str(workdir)}},
            startup_timeout=300, iopub_timeout=60,  # generous: a busy machine is not an error
            error_on_timeout={"ename": "Timeout", "evalue": f"interrupted after {timeout_cell:g} s",
                              "traceback": []})
        client.create_kernel_manager()
        client.km.transport = "ipc"  # unix sockets only this user can open, not TCP ports
        client.km.ip = str(sockets / "kernel")
        errors: dict[int, str] = {}  # run index -> "Name: value" (timeouts included)
        client.on_cell_error = lambda cell, cell_index, execute_reply: errors.setdefault(
            cell_index, "{ename}: {evalue}".format_map(
                {"ename": "?", "evalue": "", **execute_reply["content"]}))
        client.timeout_func = lambda cell: cell.metadata.get("moss_grader_timeout",
                                                             int(timeout_cell))
        try:
            with client.setup_kernel():
                for index, (student_index, cell) in enumerate(steps):
                    if student_index is None:  # a grader cell: always runs
                        client.execute_cell(cell, index)
                        found.update(_verdicts(cell, nonce, sub.lab, result))
                    elif time.monotonic() > deadline:
                        skipped.append(student_index + 1)
                    else:
                        client.execute_cell(cell, index)
                        result.cells_run += 1
                        if index in errors:
                            result.problems.append(f"cell #{student_index + 1}: {errors[index]}"
                                                   [:300])
        except DeadKernelError:
            result.problems.append("the kernel died (a cell crashed it or ran out of memory); "
                                   "the exercises not graded by then score 0")
        except RuntimeError as err:  # jupyter_client: the kernel did not start or answer
            result.problems.append(f"the kernel failed: {err}; grade this notebook again")
    if skipped:
        result.problems.append(f"cells #{skipped[0]} to #{skipped[-1]} not run: the "
                               f"notebook's {timeout_notebook:g} s were used up")
    result.verdicts = [found.get(e.id) or Verdict(e, False, "error", "not graded: " + (
        result.problems[-1] if result.problems else "the grader's cell did not run"))
        for e in sub.lab.exercises]
    result.seconds = time.monotonic() - start
    return result


def _verdicts(cell, nonce: str, lab: Lab, result: LabResult) -> dict[str, Verdict]:
    """The verdicts of one grader cell as {exercise id: Verdict} (problems noted)."""
    by_id = {e.id: e for e in lab.exercises}
    got = read_verdicts(cell, nonce)
    if isinstance(got, str):
        result.problems.append(got)
        return {}
    return {r["id"]: Verdict(by_id[r["id"]], r.get("passed") is True, str(r.get("verdict")),
                             str(r.get("message"))) for r in got
            if isinstance(r, dict) and r.get("id") in by_id}


# ---------------------------------------------------------------------------------------
# The CSV and the reports
# ---------------------------------------------------------------------------------------
def with_unsubmitted(results: list[LabResult]) -> list[LabResult]:
    """`results` plus a 0-point result for every lab graded in this run that a student did
    not submit, so that every row of the CSV and every report has the same maximum."""
    labs = {r.submission.lab.number: r.submission.lab for r in results}
    done = {(r.submission.student, r.submission.lab.number) for r in results}
    missing = [LabResult(Submission(student, lab, Path("(not submitted)")),
                         [Verdict(e, False, "missing", "no notebook submitted for this lab")
                          for e in lab.exercises], problems=["not submitted"])
               for student in sorted({s for s, _ in done}) for n, lab in sorted(labs.items())
               if (student, n) not in done]
    return results + missing


def grades_csv(results: list[LabResult]) -> str:
    """One row per student, one column per exercise of every lab graded (points earned;
    a lab a student did not submit scores 0), then total and max."""
    labs = sorted({r.submission.lab.number: r.submission.lab for r in results}.values(),
                  key=lambda lab: lab.number)
    columns = [e.id for lab in labs for e in lab.exercises]
    max_points = sum(lab.max_points for lab in labs)
    students: dict[str, dict[str, int]] = {}
    for r in results:
        students.setdefault(r.submission.student, {}).update(
            {v.exercise.id: v.points for v in r.verdicts})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", *columns, "total", "max"])
    for student in sorted(students):
        points = [students[student].get(c, 0) for c in columns]
        writer.writerow([student, *points, sum(points), max_points])
    return out.getvalue()


SYMBOL = {"passed": "✅", "failed": "❌", "not implemented": "⚠️", "missing": "❔",
          "library": "🚫", "error": "💥"}


def report_markdown(student: str, results: list[LabResult]) -> str:
    """A student's report: per lab the points, per exercise the verdict and the checker's
    message, and what went wrong while the notebook ran."""
    total = sum(r.points for r in results)
    most = sum(r.submission.lab.max_points for r in results)
    lines = [f"# {student}: {total} / {most} points", ""]
    for r in sorted(results, key=lambda r: r.submission.lab.number):
        lab = r.submission.lab
        lines += [f"## Lab {lab.number}: {r.points} / {lab.max_points} points", "",
                  f"`{r.submission.path}`: ran {r.cells_run} of {r.cells_total} code cells "
                  f"in {r.seconds:.0f} s.", "",
                  "| exercise | points | verdict |", "|---|---|---|"]
        lines += [f"| {v.exercise.id} | {v.points} / {v.exercise.points} | "
                  f"{SYMBOL.get(v.verdict, '')} {v.verdict} |" for v in r.verdicts]
        for v in r.verdicts:
            lines += ["", f"### {v.exercise.id} ({v.verdict})", "", "```",
                      v.message.strip() or "(the checker printed nothing)", "```"]
        if r.problems:
            lines += ["", "### While running", ""] + [f"- {p}" for p in r.problems]
        lines.append("")
    return "\n".join(lines)
