"""The Runs tab: every run with its status and final figures, two runs' curves overlaid,
and a PPO run's checkpoint sent to the Compare tab."""
from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from moss_lab.runs import RunError

from .context import fmt, get_lab, metric_frame
from .watch import ICONS

COLUMNS = ["run", "kind", "status", "created", "steps", "reward/score", "reward/gold",
           "objective/kl", "acc_labels", "acc_gold", "why"]
OVERLAY_METRICS = ["reward/score", "reward/gold", "objective/kl", "objective/entropy",
                   "response/length", "loss", "train/accuracy", "eval/acc_gold"]


def runs_table() -> pd.DataFrame:
    rows = []
    for r in get_lab().runs.list():
        f = r.final
        created = time.strftime("%m-%d %H:%M", time.localtime(r.created_at)) if r.created_at else ""
        rows.append([r.name, r.kind, f"{ICONS.get(r.state, '')} {r.state}", created,
                     fmt(f.get("iterations", f.get("steps", f.get("step")))),
                     fmt(f.get("reward/score")), fmt(f.get("reward/gold")),
                     fmt(f.get("objective/kl")), fmt(f.get("acc_labels")),
                     fmt(f.get("acc_gold")), r.reason or ""])
    return pd.DataFrame(rows, columns=COLUMNS)


def run_names() -> list[str]:
    return [r.name for r in get_lab().runs.list()]


def overlay(run_1: str | None, run_2: str | None, metric: str) -> pd.DataFrame:
    frames = []
    for name in (run_1, run_2):
        if not name:
            continue
        try:
            info = get_lab().runs.get(name)
        except RunError:
            continue
        rows = get_lab().runs.metrics(name)
        x = "iteration" if info.kind == "ppo" else "step"
        frames.append(metric_frame(rows, metric, x=x, label=name))
    if not frames:
        return metric_frame([], metric, label="")
    return pd.concat(frames, ignore_index=True)


def details(name: str | None):
    if not name:
        return None, ""
    try:
        info = get_lab().runs.get(name)
    except RunError as err:
        raise gr.Error(str(err))
    return info.config, f"`{info.path}` · status: {info.state}" + (
        f" · {info.reason}" if info.reason else "")


def checkpoint_of(name: str | None) -> str:
    if not name:
        raise gr.Error("Pick a run (Run 1) first.")
    info = get_lab().runs.get(name)
    folder = info.path / "policy"
    if info.kind != "ppo" or not (folder / "config.json").is_file():
        raise gr.Error(f"Run {name} has no saved policy (only finished or stopped PPO runs do).")
    return str(folder)


def build() -> dict:
    with gr.Row():
        b_refresh = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100)
        gr.Markdown("Runs are read from their folders: what you see survives a reload or a "
                    "restart; a run cut off by a restart shows as *interrupted*.")
    table = gr.Dataframe(runs_table, interactive=False, wrap=True, elem_id="runs-table")
    with gr.Row():
        run_1 = gr.Dropdown(run_names(), label="Run 1", allow_custom_value=True)
        run_2 = gr.Dropdown(run_names(), value=None, label="Run 2 (overlay)",
                            allow_custom_value=True)
        metric = gr.Dropdown(OVERLAY_METRICS, value="reward/score", label="Metric")
    plot = gr.LinePlot(x="x", y="value", color="run", title="Overlay", x_title="iteration / step",
                       y_title="value", height=280)
    with gr.Row():
        b_compare = gr.Button("Load Run 1's checkpoint into Compare", elem_id="runs-to-compare")
    where = gr.Markdown()
    with gr.Accordion("Run 1 config", open=False):
        config = gr.JSON(label="config.json")

    def refresh(first, second, which):
        names = run_names()
        first = first if first in names else (names[0] if names else None)
        return (runs_table(), gr.update(choices=names, value=first), gr.update(choices=names),
                overlay(first, second, which), *details(first))

    outputs = [table, run_1, run_2, plot, config, where]
    b_refresh.click(refresh, [run_1, run_2, metric], outputs, api_name="runs_table")
    shown = gr.State(None)

    def tick(before):
        """The table again, only when a run changed (keeps the user's scroll position)."""
        now = runs_table()
        key = now.to_json()
        return (gr.skip(), before) if key == before else (now, key)

    gr.Timer(3.0).tick(tick, shown, [table, shown], show_progress="hidden",
                       concurrency_limit=None, api_visibility="private")
    for trigger in (run_1.change, run_2.change, metric.change):
        trigger(overlay, [run_1, run_2, metric], plot, api_visibility="private")
    run_1.change(details, run_1, [config, where], api_visibility="private")
    return {"run_1": run_1, "to_compare": b_compare, "checkpoint_of": checkpoint_of,
            "refresh": (refresh, [run_1, run_2, metric], outputs)}
