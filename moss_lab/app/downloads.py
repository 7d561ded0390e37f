"""Files the app hands out for download (label and rating exports, a run's metrics CSV,
the Class tab's zip).

All go to one folder the app owns, <tmp>/moss-lab-exports-XXXX/, removed when the app
exits; inside it one subfolder per kind and user, and one file per thing exported, which
the next export of the same thing replaces: nothing piles up. Gradio copies the file it
serves into its own cache, so replacing ours never breaks a download under way."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

_ROOT: list[Path] = []  # made on first use
_LOCK = threading.Lock()


def root() -> Path:
    """The app's download folder (made on first use, removed at exit)."""
    with _LOCK:
        if not _ROOT or not _ROOT[0].is_dir():
            _ROOT[:] = [Path(tempfile.mkdtemp(prefix="moss-lab-exports-"))]
            atexit.register(shutil.rmtree, _ROOT[0], True)
        return _ROOT[0]


def safe_part(part: str) -> str:
    """A folder or file name from any text (a user or run name): no separators, no '..'."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in part).lstrip(".")
    return name or "_"


def download_path(*parts: str) -> Path:
    """root()/<part>/.../<last part>: the folders made, the file not yet written."""
    *folders, file_name = [safe_part(p) for p in parts]
    folder = root().joinpath(*folders)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / file_name


def write_replacing(path: Path, write) -> Path:
    """write(tmp) to a temporary name beside `path`, then move it over `path`: two exports
    at once never interleave, and the last one wins."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
