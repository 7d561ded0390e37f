"""What all users of one app process share: the label store, the run manager, the pair
pool and loaded policies. (Module globals are shared by every browser session; anything
per user lives in gr.State / gr.BrowserState in the tabs.)

Everything is created on first use, so that MOSS_LAB_HOME is read when the app is built,
not when this module is imported (tests set it per module).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import pandas as pd

from moss_lab.labels import LabelStore, PairPool
from moss_lab.runs import RunManager

PLOT_METRICS = {  # metric name in metrics.jsonl -> plot title
    "reward/score": "Reward-model score",
    "reward/gold": "Gold score (true quality)",
    "objective/kl": "KL to the reference",
    # the PPO tab's second row: where pattern collapse shows while the reward still rises
    # (MOSS-RLHF Part I; entropy is in metrics.jsonl and the Runs tab); titles short
    # enough for a third of the row
    "response/ref_perplexity": "Ref. perplexity (high: drift)",
    "response/length": "Response length (tokens)",
    "response/distinct_2": "2-gram variety (low: repeats)",
}


REPEAT_WINDOW_S = 3.0


@dataclass
class Lab:
    store: LabelStore
    runs: RunManager
    pool: PairPool
    accounts: object = None  # moss_lab.accounts.Accounts in class mode, None single-user
    settings: object = None  # moss_lab.app.session.ClassSettings (class.json)
    _policies: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def policy(self, name: str):
        """(model, tokenizer) for a policy name or folder, loaded once and kept."""
        from moss_lab.models import load_policy

        with self._lock:
            if name not in self._policies:
                self._policies[name] = load_policy(name, device="cpu")
            return self._policies[name]

    def close(self) -> None:
        self.pool.close(timeout=5)
        self.store.close()


_LAB: Lab | None = None


def get_lab() -> Lab:
    global _LAB
    if _LAB is None:
        from .session import ClassSettings

        # repeat_window: a second Launch click on the same form is refused, not run twice
        _LAB = Lab(LabelStore(), RunManager(repeat_window=REPEAT_WINDOW_S),
                   PairPool("toy", size=64), settings=ClassSettings.load())
    return _LAB


def use_accounts(accounts) -> None:
    """Turn class mode on for this app process (moss_lab.accounts.Accounts, or None)."""
    get_lab().accounts = accounts


def reset_lab() -> None:
    """Forget the shared objects (tests: a fresh data home per app)."""
    global _LAB
    if _LAB is not None:
        _LAB.close()
    _LAB = None


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def metric_frame(rows: list[dict], metric: str, x: str = "iteration",
                 label: str | None = None) -> pd.DataFrame:
    """One metric as a (x, value[, run]) table for gr.LinePlot; rows without it are skipped.

    The columns are typed float even when empty: Gradio reads an empty untyped column as
    text ("nominal"), and a live plot whose first frame was empty kept one tick per
    distinct value on both axes after the data arrived."""
    data = [{"x": r.get(x, i + 1), "value": float(r[metric])}
            for i, r in enumerate(rows)
            if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    frame = pd.DataFrame(data, columns=["x", "value"]).astype(float)
    if label is not None:
        frame["run"] = label
    return frame


TRAINED_KINDS = ("ppo", "dpo", "grpo", "rloo")  # the kinds whose runs save a policy/


def has_policy(info) -> bool:
    """A training run that saved a policy after at least one iteration or step (a run
    stopped before that saves nothing worth comparing)."""
    if info.kind not in TRAINED_KINDS or not (info.path / "policy" / "config.json").is_file():
        return False
    done = info.final.get("iterations", info.final.get("steps"))
    if done is None:
        rows = get_lab().runs.metrics(info.id)
        done = max((r.get("iteration", r.get("step", 0)) for r in rows), default=0)
    return done > 0


def x_key(rows: list[dict]) -> str:
    """The x axis of a run's metrics: "iteration" (PPO and the RL methods) or "step"."""
    for key in ("iteration", "step", "epoch"):
        if rows and key in rows[0]:
            return key
    return "iteration"


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: a debiased exponential moving average (weight 0: none)."""
    if not weight or weight <= 0:
        return list(values)
    out, last, n = [], 0.0, 0
    for v in values:
        n += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** n))
    return out


def created_text(info) -> str:
    """When a run was created, for a table cell ('' when unknown)."""
    return time.strftime("%m-%d %H:%M", time.localtime(info.created_at)) if info.created_at else ""


def fmt(value, digits: int = 3) -> str:
    """A number for a table cell ('' for missing)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
