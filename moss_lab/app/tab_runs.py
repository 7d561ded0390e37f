"""The Runs tab, as TensorBoard or W&B show runs: every run with its status and final
figures; any number of runs of any kind overlaid on any metrics (a legend with the run
names, optional smoothing); a config diff between two runs; notes and tags; CSV export;
delete (with confirmation); a PPO run's checkpoint sent to the Compare tab.

The run folders are the truth (moss_lab.runs): notes and tags live in <run>/notes.json.

Class mode: a student lists, changes and overlays their own runs (and sees the instructor's
runs tagged "shared"), the instructor every run, with an owner column; a run is named by its
id "<login>/<name>" (moss_lab.app.watch says who may do what). A queued run shows its place
in the queue.
"""
from __future__ import annotations

import json

import gradio as gr
import pandas as pd

from moss_lab.runs import RunError

from . import watch
from .context import created_text, fmt, get_lab, has_policy, metric_frame, smooth, x_key
from .downloads import download_path, write_replacing
from .session import User, current_user
from .watch import ICONS

# header shown -> how to read it from a run; short headers, so that none wraps mid-word
COLUMNS = ["run", "kind", "status", "created", "steps", "score", "gold", "KL",
           "acc labels", "acc gold", "tags", "why"]
COLUMN_WIDTHS = ["13%", "6%", "9%", "8%", "5%", "6%", "6%", "6%", "6%", "6%", "9%", "20%"]
OVERLAY_METRICS = ["reward/score", "reward/gold", "objective/kl", "objective/entropy",
                   "response/length", "loss", "train/accuracy", "eval/acc_labels",
                   "eval/acc_gold"]
X_KEYS = ("iteration", "step", "epoch")
# Tableau 10: one colour per series, in the order the series are listed
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2",
           "#ff9da6", "#9d755d", "#bab0ac"]


def state_text(info) -> str:
    state = "stopping" if info.stop_requested else info.state
    return f"{ICONS.get(info.state, '')} {state}{watch.queue_text(info)}"


def runs_table(user: User | None = None) -> pd.DataFrame:
    """The runs `user` may see, one row each (an owner column in class mode)."""
    user = user or watch.viewer()
    rows = []
    for r in watch.visible_runs(user):
        f = r.final
        rows.append([r.id, r.kind, state_text(r), created_text(r),
                     fmt(f.get("iterations", f.get("steps", f.get("step")))),
                     fmt(f.get("reward/score")), fmt(f.get("reward/gold")),
                     fmt(f.get("objective/kl")), fmt(f.get("acc_labels")),
                     fmt(f.get("acc_gold")), ", ".join(r.tags), r.reason or ""])
        if user.class_mode:
            rows[-1].insert(1, r.owner or "")
    columns = [*COLUMNS[:1], "owner", *COLUMNS[1:]] if user.class_mode else COLUMNS
    return pd.DataFrame(rows, columns=columns)


def table_for(request: gr.Request = None) -> pd.DataFrame:
    """runs_table for the user of a request."""
    return runs_table(watch.viewer(request))


def run_names(user: User | None = None) -> list[str]:
    return [r.id for r in watch.visible_runs(user or watch.viewer())]


def _metrics(name: str, user: User | None) -> list[dict]:
    """A run's metric rows if `user` may see it (RunError otherwise: left out quietly)."""
    info = get_lab().runs.get(name)
    if not watch.may_see(user or watch.viewer(), info):
        raise RunError(f"no run {name!r} that you can see")
    return get_lab().runs.metrics(name)


def metric_choices(names: list[str] | None = None, user: User | None = None) -> list[str]:
    """The usual metrics first, then any other numeric metric the chosen runs logged."""
    seen = dict.fromkeys(OVERLAY_METRICS)
    for name in names or []:
        try:
            rows = _metrics(name, user)
        except RunError:
            continue
        for row in rows[-1:] + rows[:1]:
            seen.update({k: None for k, v in row.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)
                         and k not in X_KEYS})
    return list(seen)


def _as_list(value) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [v for v in value if v]


def overlay_frame(runs, metrics, smoothing: float = 0.0, user: User | None = None) -> pd.DataFrame:
    """Long-form (x, value, run) table: one series per run (and per metric when several),
    of the runs `user` may see.

    The series column is named "run" and holds "<run>" or "<run> · <metric>"."""
    runs, metrics = _as_list(runs), _as_list(metrics)
    frames = []
    for name in runs:
        try:
            rows = _metrics(name, user)
        except RunError:
            continue
        for metric in metrics:
            label = name if len(metrics) == 1 else f"{name} · {metric}"
            frame = metric_frame(rows, metric, x=x_key(rows), label=label)
            if len(frame):
                frame["value"] = smooth(frame["value"].tolist(), smoothing)
                frames.append(frame)
    if not frames:
        return metric_frame([], "-", label="")
    return pd.concat(frames, ignore_index=True)


def overlay(runs, metrics, smoothing: float = 0.0, request: gr.Request = None):
    """The overlay's points (step 1 of 2; `overlay_style` follows)."""
    return overlay_frame(runs, metrics, smoothing, watch.viewer(request))


def overlay_style(runs, metrics, smoothing: float = 0.0, request: gr.Request = None):
    """The overlay's colours and legend (step 2 of 2, once the browser has the points).

    Gradio's LinePlot fixes the colour domain when it draws and afterwards only swaps the
    data: series missing from the first frame were drawn with stroke "none". A new
    color_map / colors_in_legend makes it draw again, from the points it holds then; sent
    in the same update as the points, it drew from the previous points (one run behind)."""
    frame = overlay_frame(runs, metrics, smoothing, watch.viewer(request))
    series = list(dict.fromkeys(frame["run"])) if len(frame) else []
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    metrics = _as_list(metrics)
    y_title = metrics[0] if len(metrics) == 1 else " / ".join(metrics) or "value"
    return gr.LinePlot(color_map=colors, colors_in_legend=series, y_title=y_title)


def overlay_points(runs: list[str], metrics: list[str], smoothing: float = 0.0,
                   request: gr.Request = None) -> list[dict]:
    """The overlay's points as records {x, value, run} (for API clients and tests): of the
    runs the caller may see."""
    return overlay_frame(runs, metrics, smoothing, current_user(request)).to_dict("records")


def details(name: str | None, request: gr.Request = None):
    """(config, where, notes, tags) of one run (the folder is shown outside class mode)."""
    if not name:
        return None, "", "", ""
    user = current_user(request)
    info = watch.run_for(name, user)
    where = "" if user.class_mode else f"`{info.path}` · "
    where += f"{info.kind} · status: **{state_text(info).split(' ', 1)[-1]}**"
    if info.reason:
        where += f" · why: {info.reason}"
    return info.config, where, info.notes, ", ".join(info.tags)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(run_a: str | None, run_b: str | None, request: gr.Request = None) -> pd.DataFrame:
    """The config fields that differ between two runs (field, run A, run B)."""
    cols = ["field", run_a or "run A", run_b or "run B"]
    if not run_a or not run_b:
        return pd.DataFrame(columns=["field", "run A", "run B"])
    user = current_user(request)
    a, b = (_flat(watch.run_for(n, user).config) for n in (run_a, run_b))
    if run_a == run_b:
        cols = ["field", f"{run_a} (A)", f"{run_b} (B)"]
    show = (lambda v: "" if v is ... else json.dumps(v) if not isinstance(v, str) else v)
    rows = [[k, show(a.get(k, ...)), show(b.get(k, ...))]
            for k in sorted(set(a) | set(b)) if a.get(k, ...) != b.get(k, ...)]
    return pd.DataFrame(rows, columns=cols)


def on_run(name: str | None, action, user: User, rule=watch.may_see, prefix: str = ""):
    """action(name) on the picked run if `user` may (rule: see it, or change it); a missing
    pick, a run of someone else or a RunError becomes a message."""
    watch.run_for(name, user, rule)
    try:
        return action(name)
    except RunError as err:
        raise gr.Error(f"{prefix}{err}")


def save_notes(name: str | None, notes: str, tags: str, request: gr.Request = None) -> str:
    info = on_run(name, lambda n: get_lab().runs.set_notes(n, notes, tags),
                  current_user(request), watch.may_change, prefix="Not saved: ")
    gr.Info(f"Notes of {name} saved.", duration=3)
    return ", ".join(info.tags)


def export_csv(name: str | None, request: gr.Request = None) -> str:
    """A run's metrics as a CSV file to download (a run the caller may see)."""
    user = current_user(request)
    on_run(name, get_lab().runs.get, user)
    path = download_path("runs-csv", user.name or "_", name.replace("/", "-") + "-metrics.csv")
    return str(write_replacing(path, lambda tmp: get_lab().runs.metrics_csv(name, tmp)))


def delete_run(name: str | None, request: gr.Request = None) -> str:
    on_run(name, get_lab().runs.delete, current_user(request), watch.may_change,
           prefix="Not deleted: ")
    gr.Info(f"Run {name} deleted.", duration=4)
    return name


def checkpoint_of(name: str | None, request: gr.Request = None) -> str:
    """The policy folder of a run, for Compare: a run the caller may load."""
    user = current_user(request)
    info = watch.run_for(name, user)
    if not watch.may_load(user, info):
        raise gr.Error(f"Run {name!r} is not one you may load (nothing was done).")
    if not has_policy(info):
        raise gr.Error(f"Run {name} has no trained policy (only PPO runs that finished or "
                       "were stopped after at least one iteration have one).")
    return str(info.path / "policy")


def to_compare(name: str | None, request: gr.Request = None):
    """Compare's policy list (the caller's), set to a run's checkpoint (Runs -> Compare)."""
    from .tab_ppo import policy_choices

    path = checkpoint_of(name, request)
    return gr.update(choices=policy_choices(watch.viewer(request)), value=path)


def build() -> dict:
    names = run_names()  # in class mode nobody's: each page fills its own on load
    with gr.Row():
        b_refresh = gr.Button("↻ Refresh", size="sm", scale=0, min_width=100)
        gr.Markdown("Runs are read from their folders: what you see survives a reload or a "
                    "restart; a run cut off by a restart shows as *interrupted*.")
    table = gr.Dataframe(runs_table, interactive=False, wrap=True, elem_id="runs-table",
                         column_widths=None if get_lab().accounts else COLUMN_WIDTHS)

    gr.Markdown("### Overlay")
    with gr.Row():
        runs = gr.Dropdown(names, value=names[:1], multiselect=True, scale=3,
                           label="Runs (any number, any kind)", elem_id="runs-overlay-runs")
        metrics = gr.Dropdown(metric_choices(names[:1]), value=["reward/score"],
                              multiselect=True, allow_custom_value=True, scale=2,
                              label="Metrics (several: one line per run and metric)",
                              elem_id="runs-overlay-metrics")
        smoothing = gr.Slider(0, 0.99, value=0, step=0.01, scale=1, label="Smoothing",
                              info="exponential moving average, as TensorBoard",
                              elem_id="runs-smoothing")
    with gr.Row():
        b_reward_gold = gr.Button("Reward and gold", size="sm", scale=0, min_width=160)
        b_kl = gr.Button("KL and length", size="sm", scale=0, min_width=160)
    first = overlay_style(names[:1], ["reward/score"])
    plot = gr.LinePlot(overlay_frame(names[:1], ["reward/score"]), x="x", y="value",
                       color_map=first.color_map, colors_in_legend=first.colors_in_legend,
                       color="run", title="Overlay", x_title="iteration / step",
                       y_title="reward/score", color_title="run", height=320,
                       elem_id="runs-overlay")

    gr.Markdown("### One run")
    with gr.Row():
        run_1 = gr.Dropdown(names, value=names[0] if names else None, label="Run",
                            allow_custom_value=True, scale=2, elem_id="runs-run")
        tags = gr.Textbox(label="Tags (comma separated)", scale=2, elem_id="runs-tags")
    where = gr.Markdown(elem_id="runs-where")
    notes = gr.Textbox(label="Notes", lines=2, elem_id="runs-notes")
    with gr.Row():
        b_notes = gr.Button("Save notes and tags", size="sm", elem_id="runs-save-notes")
        b_compare = gr.Button("Load its checkpoint into Compare", size="sm",
                              elem_id="runs-to-compare")
        b_csv = gr.Button("Export metrics as CSV", size="sm", elem_id="runs-csv")
        b_delete = gr.Button("Delete run…", size="sm", variant="stop", elem_id="runs-delete")
    csv_file = gr.File(label="metrics.csv", visible=False, elem_id="runs-csv-file")
    with gr.Row(visible=False, elem_id="runs-confirm") as confirm:
        confirm_text = gr.Markdown()
        b_yes = gr.Button("Yes, delete it", variant="stop", size="sm", scale=0,
                          min_width=140, elem_id="runs-delete-yes")
        b_no = gr.Button("Cancel", size="sm", scale=0, min_width=100, elem_id="runs-delete-no")
    with gr.Accordion("Its config", open=False):
        config = gr.JSON(label="config.json")

    with gr.Accordion("Config diff between two runs", open=False):
        with gr.Row():
            diff_a = gr.Dropdown(names, value=names[1] if len(names) > 1 else None,
                                 label="Run A", allow_custom_value=True, elem_id="runs-diff-a")
            diff_b = gr.Dropdown(names, value=names[0] if names else None, label="Run B",
                                 allow_custom_value=True, elem_id="runs-diff-b")
        diff = gr.Dataframe(config_diff(None, None), interactive=False, wrap=True,
                            label="Fields that differ", elem_id="runs-diff")

    def refresh(chosen, which, weight, one, a, b, request: gr.Request = None):
        user = watch.viewer(request)
        names = run_names(user)
        chosen = [n for n in _as_list(chosen) if n in names] or names[:1]
        one = one if one in names else (names[0] if names else None)
        return (runs_table(user), gr.update(choices=names, value=chosen),
                gr.update(choices=metric_choices(chosen, user)),
                overlay_frame(chosen, which, weight, user),
                gr.update(choices=names, value=one), *details(one, request),
                gr.update(choices=names), gr.update(choices=names))

    outputs = [table, runs, metrics, plot, run_1, config, where, notes, tags, diff_a, diff_b]
    inputs = [runs, metrics, smoothing, run_1, diff_a, diff_b]
    b_refresh.click(refresh, inputs, outputs, api_name="runs_table").then(
        overlay_style, [runs, metrics, smoothing], plot, api_visibility="private")
    shown = gr.State(None)

    def tick(before, request: gr.Request):
        """The table again, only when a run changed (keeps the user's scroll position)."""
        now = runs_table(watch.viewer(request))
        key = now.to_json()
        return (gr.skip(), before) if key == before else (now, key)

    gr.Timer(3.0).tick(tick, shown, [table, shown], show_progress="hidden",
                       concurrency_limit=None, api_visibility="private")
    for trigger in (runs.change, metrics.change, smoothing.release):
        trigger(overlay, [runs, metrics, smoothing], plot, api_visibility="private",
                trigger_mode="always_last").then(
            overlay_style, [runs, metrics, smoothing], plot, api_visibility="private")
    def metrics_of(chosen, request: gr.Request):
        return gr.update(choices=metric_choices(_as_list(chosen), watch.viewer(request)))

    runs.change(metrics_of, runs, metrics, api_visibility="private")
    gr.api(overlay_points, api_name="overlay_points")
    b_reward_gold.click(lambda: ["reward/score", "reward/gold"], None, metrics,
                        api_visibility="private")
    b_kl.click(lambda: ["objective/kl", "response/length"], None, metrics,
               api_visibility="private")
    run_1.change(details, run_1, [config, where, notes, tags], api_visibility="private")
    b_notes.click(save_notes, [run_1, notes, tags], tags, api_name="run_notes").then(
        table_for, None, table, api_visibility="private")

    def csv_for(name, request: gr.Request):
        return gr.File(export_csv(name, request), visible=True)

    b_csv.click(csv_for, run_1, csv_file, api_visibility="private")
    gr.api(export_csv, api_name="export_csv")
    diff_a.change(config_diff, [diff_a, diff_b], diff, api_visibility="private")
    diff_b.change(config_diff, [diff_a, diff_b], diff, api_name="run_config_diff")

    # Delete: ask first, then delete and refresh everything that lists runs
    def ask(name):
        if not name:
            raise gr.Error("Pick a run first.")
        return gr.Row(visible=True), (f"Delete run **{name}** and its folder (metrics, "
                                      "samples, model)? This cannot be undone.")

    b_delete.click(ask, run_1, [confirm, confirm_text], api_visibility="private")
    b_no.click(lambda: gr.Row(visible=False), None, confirm, api_visibility="private")
    b_yes.click(delete_run, run_1, None, api_name="delete_run").success(
        lambda: gr.Row(visible=False), None, confirm, api_visibility="private").then(
        refresh, inputs, outputs, api_visibility="private")
    return {"run_1": run_1, "to_compare": b_compare, "load_checkpoint": to_compare,
            "refresh": (refresh, inputs, outputs),
            "restyle": (overlay_style, [runs, metrics, smoothing], plot)}
