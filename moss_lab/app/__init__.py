"""The moss-lab Gradio app: compare, label, train a reward model, launch PPO runs.

    from moss_lab.app import launch
    launch()                                   # http://127.0.0.1:7860
    launch(users=Accounts.load("users.toml"))  # class mode (moss_lab.accounts)

From a shell: `moss-lab app` or `python apps/lab_app.py`.
"""
import os

# Gradio's usage analytics and version check call out to its servers: the app makes no
# outside connection (read when Gradio builds or launches, so setting it here is in time)
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# Gradio rebuilds a pandas table of up to 10,000 past events after every event for its own
# timing summary (~8 ms of a vote's ~17 ms of server CPU in a class); rebuild it rarely
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")

from .lab_app import build_app, launch  # noqa: E402

__all__ = ["build_app", "launch"]
