"""Strip outputs from the lab notebooks, so that git holds the lessons, not a run of them.

    python tools/strip_notebooks.py            # strip labs/*.ipynb in place
    python tools/strip_notebooks.py --check    # exit 1 and name the notebooks with outputs
    python tools/strip_notebooks.py a.ipynb    # strip the given notebooks

Removed: cell outputs, execution counts, and per-cell run metadata (execution timings,
collapsed/scrolled state). Kept: the cells' sources, tags and the kernel spec.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

LABS = Path(__file__).resolve().parents[1] / "labs"
RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def strip(nb: nbformat.NotebookNode) -> bool:
    """Strip `nb` in place; return True when something was removed."""
    changed = False
    for cell in nb.cells:
        for key in RUN_METADATA:
            changed |= cell.metadata.pop(key, None) is not None
        if cell.cell_type == "code":
            changed |= bool(cell.outputs) or cell.execution_count is not None
            cell.outputs, cell.execution_count = [], None
    changed |= nb.metadata.pop("widgets", None) is not None
    return changed


def is_stripped(nb: nbformat.NotebookNode) -> bool:
    probe = nbformat.from_dict(nb)  # a deep copy
    return not strip(probe)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="only report, change nothing")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(LABS.glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if not is_stripped(nb):
                dirty.append(path)
        elif strip(nb):
            nbformat.write(nb, path)
            print(f"stripped {path}")
    if dirty:
        print("notebooks with outputs (run `python tools/strip_notebooks.py`):\n  "
              + "\n  ".join(map(str, dirty)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
