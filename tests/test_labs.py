"""The labs run top to bottom, their exercises are solved in the repo and stubbed in the
student version, each notebook is in sync with its jupytext twin (labs/NN_name.py, the
percent format, paired by labs/jupytext.toml), and git holds them without outputs
(checked with nbstripout).

Every labs/*.ipynb is executed with nbclient in a python3 kernel: jupyter_client starts
a kernelspec whose command is plain `python` with the interpreter running pytest, so the
kernel uses this venv, in a fresh CI clone too. The kernel inherits the environment of
tests/conftest.py (offline, the shared MOSS_LAB_HOME with the cached base model).
"""
import ast
import copy
import difflib
import importlib.util
import re
import shutil
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LABS = ROOT / "labs"
NOTEBOOKS = sorted(LABS.glob("*.ipynb"))
SCRIPTS = sorted(LABS.glob("*.py"))
CELL_TIMEOUT = 180  # seconds per cell; a whole lab should take <= 3 min on 2 cores
CHECK_CALL = re.compile(r"(?<!def )\bcheck_\w+\(")  # a call of a moss_lab.checks checker


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


student_tool = load_tool("make_student_notebooks")


def execute(nb: nbformat.NotebookNode, cwd: Path) -> float:
    """Run all cells in a fresh python3 kernel with cwd as working directory; seconds."""
    start = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return time.perf_counter() - start


def text_of(cell) -> str:
    """Everything a code cell printed or displayed as text (errors included)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        elif "text/plain" in out.get("data", {}):
            parts.append(out.data["text/plain"])
    return "".join(parts)


def errors_in(nb) -> list[str]:
    return [f"cell {i}: {out.ename}: {out.evalue}"
            for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.output_type == "error"]


def test_there_are_labs():
    """Every lab the README lists (01-08 at least) exists as a notebook and its .py twin."""
    index = (LABS / "README.md").read_text(encoding="utf-8")
    listed = sorted(set(re.findall(r"\]\((\d\d_\w+)\.ipynb\)", index)))
    numbers = {name[:2] for name in listed}
    assert {f"{n:02d}" for n in range(1, 9)} <= numbers, f"labs/README.md lists only {listed}"
    for name in listed:
        for suffix in (".ipynb", ".py"):
            assert (LABS / (name + suffix)).is_file(), f"labs/{name}{suffix} is missing"
    orphans = [p.name for p in SCRIPTS if not p.with_suffix(".ipynb").exists()]
    assert not orphans, f"labs/*.py without a notebook (run `jupytext --sync` on them): {orphans}"


def test_every_lab_is_listed_in_the_labs_readme():
    index = (LABS / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in NOTEBOOKS if f"({p.name})" not in index]
    assert not missing, f"add these labs to labs/README.md: {missing}"


# ---------------------------------------------------------------------------------------
# The instructor notebooks run, and their own solutions pass their checks
# ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lab_runs_top_to_bottom(path):
    nb = nbformat.read(path, as_version=4)
    seconds = execute(nb, LABS)
    print(f"{path.name}: {seconds:.0f} s")
    assert not errors_in(nb), errors_in(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and CHECK_CALL.search(cell.source):
            out = text_of(cell)
            assert "✅" in out and "❌" not in out and "⚠️" not in out, \
                f"{path.name} cell {i}: the instructor's solution fails its check:\n{out}"


# ---------------------------------------------------------------------------------------
# Each notebook and its .py twin hold the same cells (jupytext pairing)
# ---------------------------------------------------------------------------------------
def sync_problem(notebook: Path, script: Path) -> str | None:
    """Why `notebook` and `script` hold different cells (types and sources), or None."""
    if not script.exists():
        return f"{script.name} is missing"
    a = jupytext.read(notebook)
    b = jupytext.read(script, fmt="py:percent")
    cells_a = [(c.cell_type, c.source) for c in a.cells]
    cells_b = [(c.cell_type, c.source) for c in b.cells]
    for i, (x, y) in enumerate(zip(cells_a, cells_b)):
        if x != y:
            diff = difflib.unified_diff(x[1].splitlines(), y[1].splitlines(), notebook.name,
                                        script.name, lineterm="", n=1)
            return f"cell {i} differs ({x[0]} vs {y[0]}):\n" + "\n".join(list(diff)[:14])
    if len(cells_a) != len(cells_b):
        return f"{notebook.name} has {len(cells_a)} cells, {script.name} {len(cells_b)}"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_and_py_are_in_sync(path):
    problem = sync_problem(path, path.with_suffix(".py"))
    assert problem is None, (f"{path.name} and its .py are out of sync: {problem}\n"
                             "Run `jupytext --sync labs/*.ipynb` (the newer file wins).")


@pytest.mark.parametrize("side", ["py", "ipynb"])
def test_sync_check_catches_an_edit_on_one_side(side, tmp_path):
    notebook = NOTEBOOKS[0]
    shutil.copy(notebook, tmp_path / notebook.name)
    shutil.copy(notebook.with_suffix(".py"), tmp_path / notebook.with_suffix(".py").name)
    pair = tmp_path / notebook.name
    assert sync_problem(pair, pair.with_suffix(".py")) is None
    if side == "py":  # one more word in the last cell of the .py
        script = pair.with_suffix(".py")
        script.write_text(script.read_text(encoding="utf-8").rstrip("\n") + " x\n",
                          encoding="utf-8")
    else:  # a markdown cell turned into a code cell in the notebook
        nb = nbformat.read(pair, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "markdown")
        first.cell_type, first.outputs, first.execution_count = "code", [], None
        nbformat.write(nb, pair)
    assert sync_problem(pair, pair.with_suffix(".py")) is not None


# ---------------------------------------------------------------------------------------
# Committed notebooks carry no outputs (nbstripout)
# ---------------------------------------------------------------------------------------
def has_outputs(path: Path) -> bool:
    """What `nbstripout --keep-id --verify` checks: would stripping change the notebook?"""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    return student_tool.strip(copy.deepcopy(nb)) != nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_no_outputs(path):
    assert not has_outputs(path), (f"{path.name} holds outputs or execution counts: run "
                                   "`nbstripout --keep-id labs/*.ipynb`")


@pytest.mark.parametrize("what", ["outputs", "execution_count"])
def test_outputs_check_catches_a_run_notebook(what, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    assert not has_outputs(path)
    if what == "outputs":
        nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    else:
        nb.cells[0].execution_count = 3
    nbformat.write(nb, path)
    assert has_outputs(path)


# ---------------------------------------------------------------------------------------
# The student versions
# ---------------------------------------------------------------------------------------
INSTRUCTOR_CELL = '''def f(x):
    """Doc."""
    y = 1
    ### BEGIN SOLUTION
    return x + y
    ### END SOLUTION


def g(x):
    if x:
        ### BEGIN SOLUTION
        return 2
        ### END SOLUTION
    return 0
'''


def test_student_source_replaces_each_solution_block_with_a_stub():
    out = student_tool.student_source(INSTRUCTOR_CELL)
    assert "SOLUTION" not in out and "return x + y" not in out and "return 2" not in out
    assert f"    y = 1\n    {student_tool.STUB}\n" in out
    assert f"    if x:\n        {student_tool.STUB}\n    return 0" in out
    namespace = {}
    exec(out, namespace)  # the stubbed code still compiles and raises only when called
    with pytest.raises(NotImplementedError):
        namespace["f"](1)


@pytest.mark.parametrize("bad", [
    "### BEGIN SOLUTION\nx = 1\n",
    "x = 1\n### END SOLUTION\n",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
])
def test_student_source_rejects_unbalanced_markers(bad):
    with pytest.raises(ValueError):
        student_tool.student_source(bad)


def exercise_cells(nb) -> list[int]:
    """Indices of the setup cell (the first code cell), the exercise cells and the check cells.

    The labs' convention: an exercise cell and its check cell use only what the first code
    cell imports, so they can run on their own.
    """
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    keep = [code[0]] + [i for i in code[1:] if student_tool.BEGIN in nb.cells[i].source
                        or CHECK_CALL.search(nb.cells[i].source)]
    return keep


LABS_WITH_EXERCISES = [p for p in NOTEBOOKS if student_tool.BEGIN in p.read_text()]


@pytest.mark.slow
@pytest.mark.parametrize("path", LABS_WITH_EXERCISES, ids=[p.stem for p in LABS_WITH_EXERCISES])
def test_student_notebook_reports_not_implemented_without_crashing(path, tmp_path):
    # the command-line tool writes the student notebook into the folder we ask for
    assert student_tool.main([str(path), "--out", str(tmp_path)]) == 0
    student = nbformat.read(tmp_path / path.name, as_version=4)
    assert student_tool.BEGIN not in nbformat.writes(student)
    assert not has_outputs(tmp_path / path.name)
    for cell in student.cells:
        if cell.cell_type == "code":
            ast.parse("\n".join(line for line in cell.source.splitlines()
                                if not line.lstrip().startswith(("%", "!"))))
    # run the setup, exercise and check cells: the checks report, they do not raise
    keep = exercise_cells(nbformat.read(path, as_version=4))
    sub = nbformat.v4.new_notebook(cells=[student.cells[i] for i in keep], metadata=student.metadata,
                                   nbformat_minor=student.nbformat_minor)
    execute(sub, tmp_path)
    assert not errors_in(sub), errors_in(sub)
    checks_run = [c for c in sub.cells if CHECK_CALL.search(c.source)]
    assert checks_run, f"{path.name} has exercises but no check cell"
    for cell in checks_run:
        out = text_of(cell)
        assert "Not implemented yet" in out and "✅" not in out, out
