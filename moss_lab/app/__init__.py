"""The moss-lab Gradio app: compare, label, train a reward model, launch PPO runs.

    from moss_lab.app import launch
    launch()                                   # http://127.0.0.1:7860
    launch(port=8000, auth=("teacher", "secret"))

From a shell: `moss-lab app` or `python apps/lab_app.py`.
"""
from .lab_app import build_app, launch

__all__ = ["build_app", "launch"]
