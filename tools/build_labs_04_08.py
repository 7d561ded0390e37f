"""Build labs/04-08 notebooks from their plain-text sources in tools/lab_sources/.

The sources are Python files in the "percent" format that Jupytext, VS Code and Spyder
read: a line `# %%` starts a code cell, `# %% [markdown]` starts a markdown cell whose
lines are comments (`# ` is stripped). Editing the .py file and rebuilding keeps the
labs reviewable as ordinary diffs; the notebooks are written without outputs.

    .venv/bin/python tools/build_labs_04_08.py            # rebuild all five
    .venv/bin/python tools/build_labs_04_08.py 06         # rebuild lab 06 only
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "tools" / "lab_sources"
LABS = ROOT / "labs"


def parse_cells(text: str) -> list:
    """Split a percent-format file into notebook cells (empty cells are dropped)."""
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#")
                             for l in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif kind == "code" and body.strip():
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_cells(source.read_text())
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives an identical file
        cell["id"] = f"{source.stem[:2]}-{i:03d}"
    target = LABS / f"{source.stem}.ipynb"
    nbformat.validate(nb)
    target.write_text(nbformat.writes(nb) + "\n")
    return target


def main(argv: list[str]) -> int:
    sources = sorted(SOURCES.glob("0[4-8]_*.py"))
    if argv:
        sources = [s for s in sources if any(s.name.startswith(a) for a in argv)]
    for source in sources:
        print("wrote", build(source).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
