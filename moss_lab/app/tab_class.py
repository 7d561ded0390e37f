"""The Class tab: the instructor's view of a class (class mode, issue #14).

Per student: votes, agreement with gold, Cohen's kappa with the others (pooled over every
pair they share with someone), runs and their best gold score; the pairs the class
disagrees on most; one download with everything (labels, ratings, votes, run summaries);
every active run with a Stop; and the class's settings (pair overlap, labelling lock, run
limits), kept in <home>/class.json and applied to the run queue at once.

Every handler asks session.require_instructor first: hiding the tab is no protection. Texts
written by students (prompts, responses, names) are shown in tables as plain text, never as
Markdown or HTML. The per-student table is computed from a few store-wide reads and kept
for a few seconds, so a class of 30 with 200k votes costs one computation per refresh.
"""
from __future__ import annotations

import csv
import tempfile
import threading
import time
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import gradio as gr
import pandas as pd

from moss_lab.labels import cohen_kappa
from moss_lab.runs import RunError

from . import forms, watch
from .context import created_text, fmt, get_lab
from .downloads import download_path, write_replacing
from .session import require_instructor

STUDENT_COLUMNS = ["student", "role", "votes", "gold agreement", "gold pairs",
                   "kappa with others", "shared pairs", "runs", "best gold"]
DISAGREE_COLUMNS = ["prompt", "response A", "response B", "verdicts", "who"]
ACTIVE_COLUMNS = ["run", "owner", "kind", "status", "created"]
RUN_COLUMNS = ["run", "owner", "kind", "state", "created", "steps", "score", "gold",
               "best gold", "KL", "why"]
CACHE_S = 5.0  # the per-student table is recomputed at most this often
MAX_DISAGREEMENTS = 50
SETTINGS_RANGES = {"overlap": (1, 50), "max_runs_per_student": (1, 20), "max_running": (1, 64)}

_cache: dict = {}
_cache_lock = threading.Lock()


# --- per student ----------------------------------------------------------------------------
def kappas(verdicts: dict[str, dict[str, str]]) -> dict[str, tuple[float | None, int]]:
    """{annotator: (pooled Cohen's kappa with the others, pairs shared)}: each pair an
    annotator shares adds one (theirs, the other's) item per other judge."""
    items: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    pairs: Counter = Counter()
    for by in verdicts.values():
        for who, mine in by.items():
            pairs[who] += 1
            for other, theirs in by.items():
                if other != who:
                    items[who][0].append(mine)
                    items[who][1].append(theirs)
    return {who: (cohen_kappa(*items[who]) if items[who][0] else None, pairs[who])
            for who in pairs}


def best_gold(info) -> float | None:
    """The highest reward/gold a run logged (None: it logged none)."""
    try:
        rows = get_lab().runs.metrics(info.id)
    except RunError:
        return None
    golds = [r["reward/gold"] for r in rows if isinstance(r.get("reward/gold"), (int, float))]
    return max(golds) if golds else None


def students_frame() -> pd.DataFrame:
    """The per-student table, computed now (students_table caches it)."""
    lab = get_lab()
    store, accounts = lab.store, lab.accounts
    verdicts = store.shared_verdicts()
    kappa = kappas(verdicts)
    runs = lab.runs.list()
    by_owner: dict[str, list] = defaultdict(list)
    for r in runs:
        by_owner[r.owner or ""].append(r)
    names = list(getattr(accounts, "names", None) or [])
    names += sorted((set(kappa) | set(by_owner)) - set(names) - {""})
    rows = []
    for name in names:
        user = accounts.user(name) if accounts is not None else None
        votes = store.progress(name)["mine"]
        gold = store.gold_agreement(name)
        k, shared = kappa.get(name, (None, 0))
        golds = [g for g in (best_gold(r) for r in by_owner.get(name, [])) if g is not None]
        rows.append([name, user.role if user else "?", votes, fmt(gold["agreement"]),
                     gold["n"], fmt(k), shared, len(by_owner.get(name, [])),
                     fmt(max(golds)) if golds else ""])
    return pd.DataFrame(rows, columns=STUDENT_COLUMNS)


def students_table(request: gr.Request = None) -> pd.DataFrame:
    """Per student: votes, agreement with gold, kappa with the others, runs, best gold
    (kept CACHE_S seconds: a refresh by every instructor's page costs one computation)."""
    require_instructor(request)
    with _cache_lock:
        kept = _cache.get("students")
        if kept is not None and time.monotonic() - kept[0] < CACHE_S:
            return kept[1]
        frame = students_frame()
        _cache["students"] = (time.monotonic(), frame)
        return frame


def student_records(request: gr.Request = None) -> list[dict]:
    """The per-student table as records (for API clients)."""
    return students_table(request).to_dict("records")


# --- disagreements ----------------------------------------------------------------------------
def split(votes: dict) -> float:
    """How split a pair's verdicts are: 1 - the largest share (0: all agree)."""
    total = sum(votes.values())
    return 1 - max(votes.values()) / total if total else 0.0


def disagreements_table(request: gr.Request = None) -> pd.DataFrame:
    """The pairs the class disagrees on most (the most split first, then the most judged):
    texts as plain text in a table, never rendered."""
    require_instructor(request)
    found = sorted(get_lab().store.disagreements(),
                   key=lambda d: (split(d["votes"]), sum(d["votes"].values())), reverse=True)
    rows = [[d["prompt"], d["response_a"], d["response_b"],
             " · ".join(f"{c} {n}" for c, n in d["votes"].items() if n),
             ", ".join(f"{who}: {v}" for who, v in d["annotators"].items())]
            for d in found[:MAX_DISAGREEMENTS]]
    return pd.DataFrame(rows, columns=DISAGREE_COLUMNS)


# --- runs ---------------------------------------------------------------------------------------
def active_runs(request: gr.Request = None):
    """(table of every queued or running run, the Stop list's choices)."""
    require_instructor(request)
    active = [r for r in get_lab().runs.list() if r.active]
    ids = [r.id for r in active]
    rows = [[rid, r.owner or "", r.kind,
             ("stopping" if r.stop_requested else r.state) + watch.queue_text(r), created_text(r)]
            for rid, r in zip(ids, active)]
    return (pd.DataFrame(rows, columns=ACTIVE_COLUMNS),
            gr.update(choices=ids, value=ids[0] if ids else None))


def stop_any(run: str | None, request: gr.Request = None):
    """Stop any run (the instructor's Stop); the refreshed table and list."""
    require_instructor(request)
    watch.stop(run, request)
    return active_runs(request)


def runs_rows() -> list[list]:
    """Every run's summary (the runs CSV of the download)."""
    out = []
    for r in get_lab().runs.list():
        f, best = r.final, best_gold(r)
        out.append([r.id, r.owner or "", r.kind,
                    r.state, created_text(r), f.get("iterations", f.get("steps", "")),
                    f.get("reward/score", ""), f.get("reward/gold", ""),
                    "" if best is None else best, f.get("objective/kl", ""), r.reason or ""])
    return out


# --- export ---------------------------------------------------------------------------------------
def _csv(path, columns: list[str], rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def export_all(request: gr.Request = None) -> str:
    """One zip with everything: labels.jsonl (prompt/chosen/rejected, ties marked),
    ratings.jsonl, votes.csv (every vote), runs.csv (every run's summary). Written in one
    folder that the next export replaces: nothing piles up."""
    require_instructor(request)
    store = get_lab().store
    target = download_path("class", f"moss-lab-class-{time.strftime('%Y%m%d-%H%M%S')}.zip")
    with tempfile.TemporaryDirectory(prefix="moss-lab-class-") as work:
        folder = Path(work)
        store.export_jsonl(folder / "labels.jsonl", include_ties=True)
        store.export_ratings_jsonl(folder / "ratings.jsonl")
        votes = store.votes()
        columns = list(votes[0]) if votes else ["id", "pair_id", "annotator", "choice"]
        _csv(folder / "votes.csv", columns, ([v.get(c, "") for c in columns] for v in votes))
        _csv(folder / "runs.csv", RUN_COLUMNS, runs_rows())

        def write_zip(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for name in ("labels.jsonl", "ratings.jsonl", "votes.csv", "runs.csv"):
                    z.write(folder / name, name)

        write_replacing(target, write_zip)
    for older in target.parent.glob("moss-lab-class-*.zip"):  # the last one is replaced
        if older != target:
            older.unlink(missing_ok=True)
    return str(target)


# --- settings -------------------------------------------------------------------------------------
def settings_values(request: gr.Request = None):
    """The form filled from ClassSettings."""
    require_instructor(request)
    s = get_lab().settings
    return s.overlap, s.labelling_locked, s.max_runs_per_student, s.max_running


def save_settings(overlap, locked, max_runs, max_running, request: gr.Request = None) -> str:
    """Check, keep (class.json) and apply the settings; a message saying what is in force."""
    require_instructor(request)
    values, problems = {}, []
    for key, value in (("overlap", overlap), ("max_runs_per_student", max_runs),
                       ("max_running", max_running)):
        lo, hi = SETTINGS_RANGES[key]
        values[key], problem = forms.read_number(value, key, lo, hi)
        if problem:
            problems.append(problem)
    if problems:
        raise gr.Error("Not saved: " + "; ".join(problems))
    settings = get_lab().settings
    for key, value in values.items():
        setattr(settings, key, value)
    settings.labelling_locked = bool(locked)
    settings.save()
    watch.apply_limits()
    return (f"Saved: each pair judged by {settings.overlap} people; labelling "
            f"{'LOCKED' if settings.labelling_locked else 'open'}; at most "
            f"{settings.max_runs_per_student} run(s) per student, {settings.max_running} "
            "running at once in the class.")


# --- the tab --------------------------------------------------------------------------------------
def refresh_all(request: gr.Request = None):
    """Everything the tab shows, read again (for the Refresh button and opening the tab)."""
    require_instructor(request)
    return (students_table(request), disagreements_table(request), *active_runs(request),
            *settings_values(request))


def build() -> dict:
    gr.Markdown("The class at a glance (instructor only). Tables are plain text; the "
                "per-student figures are at most a few seconds old.")
    b_refresh = gr.Button("↻ Refresh", size="sm", elem_id="class-refresh")
    gr.Markdown("### Students")
    students = gr.Dataframe(pd.DataFrame(columns=STUDENT_COLUMNS), interactive=False,
                            wrap=True, elem_id="class-students")
    gr.Markdown("### Pairs the class disagrees on most")
    disagree = gr.Dataframe(pd.DataFrame(columns=DISAGREE_COLUMNS), interactive=False,
                            wrap=True, elem_id="class-disagreements")
    gr.Markdown("### Active runs")
    active = gr.Dataframe(pd.DataFrame(columns=ACTIVE_COLUMNS), interactive=False,
                          elem_id="class-active-runs")
    with gr.Row():
        run = gr.Dropdown([], label="Run to stop", scale=3, elem_id="class-run")
        b_stop = gr.Button("Stop it", variant="stop", scale=1, elem_id="class-stop")
    gr.Markdown("### Settings")
    with gr.Row():
        overlap = gr.Number(2, precision=0, label="People per pair (overlap k)",
                            elem_id="class-overlap")
        locked = gr.Checkbox(False, label="Lock labelling (students cannot vote)",
                             elem_id="class-locked")
        max_runs = gr.Number(1, precision=0, label="Runs per student (queued or running)",
                             elem_id="class-max-runs")
        max_running = gr.Number(2, precision=0, label="Runs running at once (class-wide)",
                                elem_id="class-max-running")
    b_save = gr.Button("Save settings", elem_id="class-save")
    saved = gr.Markdown(elem_id="class-saved")
    gr.Markdown("### Download everything")
    b_export = gr.Button("Download everything (zip: labels, ratings, votes, runs)",
                         elem_id="class-export")
    export_file = gr.File(label="class export", visible=False, elem_id="class-export-file")

    outputs = [students, disagree, active, run, overlap, locked, max_runs, max_running]
    b_refresh.click(refresh_all, None, outputs, api_name="class_refresh")
    b_stop.click(stop_any, run, [active, run], api_name="class_stop")
    b_save.click(save_settings, [overlap, locked, max_runs, max_running], saved,
                 api_name="class_settings")

    def download(request: gr.Request):
        return gr.File(export_all(request), visible=True)

    b_export.click(download, None, export_file, api_name="class_export")
    gr.api(student_records, api_name="class_students")
    return {"students": students, "disagreements": disagree, "active": active, "run": run,
            "settings": [overlap, locked, max_runs, max_running], "saved": saved,
            "refresh": (refresh_all, None, outputs)}
