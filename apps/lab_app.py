"""Start the moss-lab app at http://127.0.0.1:7860:

    python apps/lab_app.py

The app is the package moss_lab.app; `moss-lab app` starts the same app with options
(host, port, share, users, auth-file).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # a checkout without an install

from moss_lab.app import launch

if __name__ == "__main__":
    launch()
