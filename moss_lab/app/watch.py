"""Following one run live (a status line and curves, refreshed by a gr.Timer), and who may
see, change, load and launch which runs.

The training tabs (Reward model; Train: PPO and the other methods) and the Runs tab use
this. The run folder is the truth (moss_lab.runs); a tick re-reads it and sends nothing
when nothing changed.

Who may do what (class mode, issue #14; single-user mode: the one user does everything):
    see      a student: their own runs, and the instructor's runs tagged "shared";
             the instructor: every run
    change   stop, delete, notes: a student their own runs; the instructor any run
    load     a model to start from or to compare: built-in names, a student's own runs
             and the instructor's runs (runs from before class mode count as the
             instructor's); never a free folder path
A refusal never says whether someone else's run exists: "no run ... that you can see".
"""
from __future__ import annotations

import time

import gradio as gr

from moss_lab.files import read_json
from moss_lab.limits import check_bounds
from moss_lab.run_folder import new_run_name, read_metrics
from moss_lab.progress import phase_text
from moss_lab.runs import USERS, RunError, run_id

from .context import get_lab, metric_frame
from .session import User, current_user

# In class mode, a value computed without a request (a component's initial value at page
# load) is nobody's: it lists no one's runs. Handlers that act use current_user(request).
NOBODY = User(None, "student")


def viewer(request=None) -> User:
    """Who is looking: current_user(request); nobody (sees no runs) when a value is
    computed without a request in class mode."""
    if request is None and get_lab().accounts is not None:
        return NOBODY
    return current_user(request)


def instructors_run(info) -> bool:
    """Launched by an instructor (or before class mode: no owner)."""
    accounts = get_lab().accounts
    if info.owner is None or accounts is None:
        return True
    user = accounts.user(info.owner)
    return bool(user and user.is_instructor)


def may_see(user: User, info) -> bool:
    if not user.class_mode or user.is_instructor:
        return True
    return bool(user.name) and (info.owner == user.name
                                or (instructors_run(info) and "shared" in info.tags))


def may_change(user: User, info) -> bool:
    return not user.class_mode or user.is_instructor or (
        bool(user.name) and info.owner == user.name)


def may_load(user: User, info) -> bool:
    return not user.class_mode or user.is_instructor or (
        bool(user.name) and (info.owner == user.name or instructors_run(info)))


def visible_runs(user: User) -> list:
    """The runs `user` may see, newest first."""
    return [r for r in get_lab().runs.list() if may_see(user, r)]


def loadable_runs(user: User) -> list:
    """The runs whose models `user` may load (newest first)."""
    return [r for r in get_lab().runs.list() if may_load(user, r)]


def own_runs(user: User) -> list:
    """The runs a training tab follows: the user's own in class mode, all otherwise."""
    if not user.class_mode:
        return get_lab().runs.list()
    return get_lab().runs.list(owner=user.name) if user.name else []


def run_for(run: str | None, user: User, rule=may_see):
    """The run `run` (an id) if `user` may see it (rule: may_change to stop or delete it),
    else gr.Error; the same message whether it exists or not."""
    if not run:
        raise gr.Error("Pick a run first.")
    try:
        info = get_lab().runs.get(run)
    except RunError as err:
        if user.class_mode and not user.is_instructor:
            raise gr.Error(f"No run {run!r} that you can see (nothing was done).")
        raise gr.Error(str(err))
    if not may_see(user, info):
        raise gr.Error(f"No run {run!r} that you can see (nothing was done).")
    if not rule(user, info):
        raise gr.Error(f"Run {run!r} is not yours: only its owner or the instructor may "
                       "change it (nothing was done).")
    return info


def checked_model(value: str | None, user: User, what: str, choices: list,
                  builtins: tuple[str, ...]) -> str | None:
    """`value` (a model picked for `what`) if `user` may load it: in class mode a built-in
    name or one of `choices` (the values of the user's list: own runs, the instructor's).
    Free folder paths and other students' runs are refused with gr.Error, without echoing
    any path. Single-user mode: as given."""
    value = (value or "").strip() if isinstance(value, str) else value
    if not value or not user.class_mode or value in builtins:
        return value
    if value in {v for _, v in choices}:
        return value
    raise gr.Error(f"Not allowed: that {what} is not one you may load. Pick a built-in one "
                   f"({', '.join(builtins)}), one of your own runs or one of the instructor's "
                   "(folder paths and other students' runs are refused in class mode).")


def new_name(kind: str, user: User) -> str:
    """A fresh run name in the user's own folder (class mode) or the runs folder."""
    root = get_lab().runs.root
    if user.class_mode and user.name:
        root = root / USERS / user.name
    return new_run_name(kind, root)


def apply_limits() -> None:
    """The class's run limits (ClassSettings) on the run manager; none in single-user mode."""
    lab = get_lab()
    settings, runs = lab.settings, lab.runs
    class_mode = lab.accounts is not None and settings is not None
    runs.max_per_owner = settings.max_runs_per_student if class_mode else None
    runs.max_running = settings.max_running if class_mode else None
    if class_mode:  # the class maximum is the CPU's run slots too (one run per GPU); every
        # student may have a run waiting
        runs.per_device = {"cpu": settings.max_running, "default": 1}
        runs.queue_limit = max(4, len(lab.accounts.names))


def submit(user: User, name: str, kind: str, config: dict, job, device: str) -> str:
    """Queue a run for `user` after the bounds on its work (moss_lab.limits) and under the
    class's limits (ClassSettings); return its id. Any refusal is a gr.Error."""
    try:
        check_bounds(kind, config)
    except ValueError as err:
        raise gr.Error(f"Not launched: {err}")
    apply_limits()
    owner = user.name if user.class_mode else None
    # the instructor's runs are not counted against the per-student limit
    who = {"owner": owner, "limited": not user.is_instructor} if owner else {}
    try:
        get_lab().runs.submit(name, kind, config, job, device=device, **who)
    except RunError as err:
        raise gr.Error(f"Not launched: {err}")
    return run_id(owner, name)


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queue_text(info) -> str:
    """' · 2nd in the queue' for a queued run ('' when the manager cannot say)."""
    if info.state != "queued":
        return ""
    position = get_lab().runs.queue_position(info.id)
    return f" · {ordinal(position)} in the queue" if position else ""


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
    text = (f"{ICONS.get(info.state, '')} Run **{name}**: {state}{queue_text(info)}{where}"
            f" · {len(rows)} points")
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
    now = [name, info.state, len(rows), info.stop_requested, queue_text(info)]
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


def latest_run(kind: str, user: User | None = None) -> str | None:
    """The run of this kind to show when a page opens: an active one, else the newest (of
    the user's own runs in class mode); its id."""
    runs = [r for r in own_runs(user or viewer()) if r.kind == kind]
    active = [r for r in runs if r.state in ("running", "queued")]
    pick = active or runs
    return pick[0].id if pick else None


def stop(name: str | None, request: gr.Request = None) -> str:
    """Stop a run: its owner's or the instructor's request only (gr.Error otherwise)."""
    if not name:
        raise gr.Error("There is no run to stop.")
    run_for(name, current_user(request), may_change)
    if not get_lab().runs.stop(name):
        gr.Warning(f"Run {name} is not running.")
    else:
        gr.Info(f"Stopping {name} at its next check (between iterations or steps).",
                duration=4)
    return status_line(name)
