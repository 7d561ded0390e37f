"""Files that are never seen half-written, and the JSON-lines logs every run keeps.

One home for the file habits the whole library shares:

    write_text / write_json    atomic: written to a temporary file beside the target,
                               then renamed over it, so a reader (or a crash) never sees
                               half a file
    building(folder)           the same for a whole folder (a model being built)
    read_json / read_jsonl     tolerant readers: a missing file or the half-written last
                               line of a log that is still growing is not an error
    append_jsonl               one JSON object per line (metrics.jsonl, samples.jsonl)
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (temporary file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj) -> Path:
    """Write `obj` as indented JSON, atomically (numbers from torch/numpy become floats)."""
    return write_text(path, json.dumps(obj, indent=2, default=_plain) + "\n")


def read_json(path: str | Path, default=None):
    """The JSON in `path`, or `default` when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return default


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one JSON object as one line (the file is created if missing)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=_plain) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSON-lines file that may still be written: a half-written last line
    is skipped, and a missing file has no rows."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    except FileNotFoundError:
        pass
    return rows


@contextlib.contextmanager
def building(folder: str | Path):
    """Build a folder atomically: yields an empty temporary folder beside `folder`; when
    the block ends without an error it replaces `folder`, otherwise it is removed.

        with building(target) as tmp:
            model.save_pretrained(tmp)
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".building-{folder.name}-", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _plain(x):
    """JSON fallback: tensors and numpy scalars as numbers, anything else as text."""
    if hasattr(x, "item"):
        try:
            return x.item()
        except (TypeError, ValueError, RuntimeError):
            pass
    return float(x) if hasattr(x, "__float__") else str(x)
