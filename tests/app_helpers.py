"""Helpers shared by the app tests (gradio_client and browser)."""
import os
import socket
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_home(tmp: Path) -> Path:
    """A fresh data home whose models/ is the shared test models folder (nothing rebuilt)."""
    shared = Path(os.environ["MOSS_LAB_HOME"]) / "models"
    shared.mkdir(parents=True, exist_ok=True)
    (tmp / "models").symlink_to(shared.resolve(), target_is_directory=True)
    return tmp


def fake_run(home, name, kind="ppo", rows=(), config=None, state="finished", policy=False):
    """A run folder as a trainer leaves it (the Runs tab reads folders only)."""
    from moss_lab.files import append_jsonl, write_json

    folder = home / "runs" / name
    folder.mkdir(parents=True)
    write_json(folder / "config.json", {"kind": kind, **(config or {})})
    write_json(folder / "status.json", {"state": state, "kind": kind, "created_at": time.time()})
    for row in rows:
        append_jsonl(folder / "metrics.jsonl", row)
    if policy:
        write_json(folder / "policy" / "config.json", {})
    return folder
