"""Following one run live: a status line and curves, refreshed by a gr.Timer.

The training tabs (Reward model; Train: PPO and the other methods) use this. The run folder
is the truth (moss_lab.runs); a tick re-reads it and sends nothing when nothing changed.
"""
from __future__ import annotations

import time

import gradio as gr

from moss_lab.files import read_json
from moss_lab.run_folder import read_metrics
from moss_lab.progress import phase_text
from moss_lab.runs import RunError

from .context import get_lab, metric_frame

ICONS = {"queued": "…", "running": "▶", "finished": "✔", "stopped": "■",
         "failed": "✖", "interrupted": "!"}


def status_line(name: str | None, rows: list[dict] | None = None, x: str = "iteration",
                total_key: str = "iterations") -> str:
    if not name:
        return "<span class='run-status'>No run yet: fill in the form and start one.</span>"
    try:
        info = get_lab().runs.get(name)
    except RunError as err:
        return f"<span class='run-status'>{err}</span>"
    rows = read_metrics(info.path) if rows is None else rows
    where = ""
    if rows:
        total = info.config.get(total_key)
        where = f" · {x} {rows[-1].get(x, len(rows))}" + (f" of {total}" if total else "")
    state = "stopping" if info.stop_requested else info.state
    text = f"{ICONS.get(info.state, '')} Run **{name}**: {state}{where} · {len(rows)} points"
    if info.state == "running" and not rows:  # before the first point: what it is doing
        text += preparing(info.path)
    if info.stop_requested:
        text += ("\n\n**Stopping:** the run stops at its next check: between iterations or "
                 "steps, and within a second or two while it builds a model, generates pairs "
                 "or pre-trains the critic.")
    if info.reason and info.state in ("failed", "interrupted", "stopped"):
        text += f"\n\n**Why:** {info.reason}"
    return f"<span class='run-status' data-state='{info.state}' data-points='{len(rows)}'>{text}</span>"


def preparing(run_dir) -> str:
    """' · <phase> (step k/n, t s)' from the run's progress.json (moss_lab.progress.phase); the
    time counts on between the run's writes."""
    record = read_json(run_dir / "progress.json")
    if not isinstance(record, dict) or not record.get("phase"):
        return " · starting"  # the job has not reported its first phase yet
    since = max(0.0, time.time() - float(record.get("updated_at") or time.time()))
    return " · " + phase_text({**record, "elapsed_s": float(record.get("elapsed_s") or 0) + since})


def tick(name: str | None, seen, metrics: list[str], x: str, total_key: str):
    """(status, *plots, seen) for a timer tick; gr.skip() everywhere when unchanged."""
    if not name:
        return (status_line(None), *[gr.skip()] * len(metrics), None)
    try:
        info = get_lab().runs.get(name)
    except RunError:
        return (status_line(name), *[gr.skip()] * len(metrics), None)
    rows = read_metrics(info.path)
    now = [name, info.state, len(rows), info.stop_requested]
    if info.state == "running" and not rows:  # a preparation phase: its progress and time
        now.append(preparing(info.path))
    if now == seen:
        return (gr.skip(), *[gr.skip()] * len(metrics), seen)
    if seen and seen[0] == name and seen[1] != info.state and info.state == "failed":
        gr.Warning(f"Run {name} failed: {info.reason}")
    plots = [metric_frame(rows, m, x=x) for m in metrics]
    return (status_line(name, rows, x, total_key), *plots, now)


def controls(prefix: str, label: str) -> tuple[gr.Button, gr.Button]:
    """The Launch and Stop buttons of a training form (elem ids <prefix>-launch, -stop)."""
    with gr.Row():
        return (gr.Button(label, variant="primary", elem_id=f"{prefix}-launch"),
                gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop"))


def curves(prefix: str, titles: dict[str, str], x: str, per_row: int,
           **kwargs) -> tuple[gr.Markdown, list[gr.LinePlot]]:
    """The status line and one live plot per metric (`titles`: metric -> title)."""
    status = gr.Markdown(status_line(None), elem_id=f"{prefix}-status")
    plots, metrics = [], list(titles)
    for start in range(0, len(metrics), per_row):
        with gr.Row():
            for m in metrics[start:start + per_row]:
                # an empty frame, not None: the plot draws its title and axes before a run
                plots.append(gr.LinePlot(metric_frame([], m), x="x", y="value", title=titles[m],
                                         x_title=x, y_title=m,
                                         height=220, elem_id=f"{prefix}-plot-{m.split('/')[-1]}",
                                         **kwargs))
    return status, plots


def finished_now(seen, now) -> bool:
    """Did the watched run just end (or is this the first look at an ended run)? Lists of
    models (Compare's policies, the reward tab's models) are refreshed then."""
    return bool(now) and now != seen and now[1] in ("finished", "stopped") and (
        not seen or seen[0] != now[0] or seen[1] != now[1])


def latest_run(kind: str) -> str | None:
    """The run of this kind to show when a page opens: an active one, else the newest."""
    runs = [r for r in get_lab().runs.list() if r.kind == kind]
    active = [r for r in runs if r.state in ("running", "queued")]
    pick = active or runs
    return pick[0].name if pick else None


def stop(name: str | None) -> str:
    if not name:
        raise gr.Error("There is no run to stop.")
    if not get_lab().runs.stop(name):
        gr.Warning(f"Run {name} is not running.")
    else:
        gr.Info(f"Stopping {name} at its next check (between iterations or steps).",
                duration=4)
    return status_line(name)
