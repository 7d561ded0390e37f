"""`make labs`, the README's third command, opens JupyterLab on the labs (as root too:
JupyterLab refuses root without --allow-root, which containers and cloud notebooks are)."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from app_helpers import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_labs_serves_the_labs(tmp_path):
    port, token = free_port(), "moss-lab-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    proc = subprocess.Popen(
        ["make", "-s", "labs", f"LABS_PORT={port}",
         f"LABS_ARGS=--no-browser --ServerApp.token={token}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        listing, deadline = None, time.time() + 90
        while listing is None and time.time() < deadline and proc.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/contents?token={token}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    listing = json.load(response)
            except OSError:
                time.sleep(1)
        if listing is None:
            os.killpg(proc.pid, signal.SIGTERM)
            pytest.fail("make labs did not serve the labs:\n" + proc.communicate(timeout=30)[0].decode())
        names = {item["name"] for item in listing["content"]}
        expected = {p.name for p in (ROOT / "labs").glob("*.ipynb")}
        assert expected and expected <= names
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
