"""Helpers shared by the app tests (gradio_client and browser)."""
import os
import socket
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
