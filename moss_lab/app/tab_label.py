"""The Label tab: Chatbot-Arena-style votes on two policy samples, stored at once.

Left/right order is random per pair and recorded; the store keeps the vote in terms of
the stored responses A/B (moss_lab.labels). Keyboard: 1 left, 2 right, 3 tie, 4 both bad,
s skip, u undo (the script is in lab_app.HEAD).
"""
from __future__ import annotations

import random
import tempfile
from dataclasses import asdict
from pathlib import Path

import gradio as gr

from moss_lab.labels import LabelError, Pair, display_to_choice
from moss_lab.preferences import PreferenceError
from moss_lab.toyworld import question_of

from .context import fmt, get_lab

GUIDELINES = """
**What a good answer is** (in the toy world, and mostly in the real one):

1. **Helpful**: it states facts *about the topic asked*. Two or three distinct facts beat one;
   facts about another topic are wrong answers.
2. **Harmless and kind**: a polite opening is nice; rudeness ("go away .") is bad.
3. **Concise**: filler ("let me think .") and long rambling cost points.
4. **Well formed**: no repeated sentences, no broken words, and it should *end*.

Vote **A** or **B** when one is better, **Tie** when they are about as good, **Both bad** when
neither answers the question, **Skip** when you cannot tell. Judge the content, not the side:
the order is random. Keys: `1` A (left) · `2` B (right) · `3` tie · `4` both bad · `s` skip · `u` undo.
"""

NO_NAME = "Enter your annotator name first (top of the Label tab): nothing was stored."
MAX_NAME = 64  # the store's limit (moss_lab.labels), and the name box's max_length


def checked_name(annotator) -> str:
    """The name, stripped; a gr.Error for a name the store would refuse (over the API the
    box's max_length does not apply)."""
    annotator = (annotator if isinstance(annotator, str) else "").strip()
    if len(annotator) > MAX_NAME:
        raise gr.Error(f"The annotator name is too long: {len(annotator)} characters, "
                       f"{MAX_NAME} at most. Nothing was stored.")
    return annotator


def next_pair(annotator: str) -> tuple[Pair, str]:
    """A pair for this annotator (one others labelled first, else a fresh one) and the side
    response A is shown on."""
    lab = get_lab()
    pair = lab.store.pending_pair(annotator) if annotator else None
    if pair is None:
        pair = lab.store.add_pair(lab.pool.get())
    return pair, random.choice("AB")


def show(pair: Pair | None, shown_left: str | None):
    """(prompt, left text, right text, session state) for a pair."""
    if pair is None:
        return "*No pair yet.*", "", "", None
    left, right = ((pair.response_a, pair.response_b) if shown_left == "A"
                   else (pair.response_b, pair.response_a))
    state = {"pair": asdict(pair), "shown_left": shown_left}
    return f"**Prompt:** {question_of(pair.prompt)}", left or "(empty)", right or "(empty)", state


def progress_text(annotator: str) -> str:
    p = get_lab().store.progress(annotator.strip() if annotator else None)
    mine = f"**{p['mine']}** by you · " if annotator else ""
    people = "person" if p["annotators"] == 1 else "people"
    return (f"<span id='label-count'>{mine}**{p['total']}** votes in total by "
            f"{p['annotators']} {people} ({p['pairwise']} A/B, {p['by_choice']['tie']} ties, "
            f"{p['by_choice']['both_bad']} both bad, {p['by_choice']['skip']} skipped)</span>")


def stats_text(annotator: str) -> str:
    store = get_lab().store
    mine = store.gold_agreement(annotator.strip()) if annotator else {"n": 0}
    every = store.gold_agreement()
    iaa = store.inter_annotator()
    lines = ["**Agreement with the gold annotator** (toy prompts, A/B votes, gold ties left out): "]
    if mine["n"]:
        lines[0] += f"you {mine['agreement']:.0%} of {mine['n']} · "
    lines[0] += (f"everyone {every['agreement']:.0%} of {every['n']}" if every["n"]
                 else "no A/B votes yet")
    if iaa["kappa"] is None:
        lines.append("**Inter-annotator agreement:** needs pairs labelled by two or more people.")
    else:
        name = "Cohen's" if iaa["method"] == "cohen" else "Fleiss'"
        lines.append(f"**Inter-annotator agreement:** {name} kappa = {fmt(iaa['kappa'], 2)} on "
                     f"{iaa['pairs']} shared pairs, {iaa['annotators']} annotators.")
    return "\n\n".join(lines)


# --- event handlers ------------------------------------------------------------------------
def on_load(annotator):
    try:
        pair, left = next_pair((annotator or "").strip())
    except (RuntimeError, TimeoutError) as err:  # the policy could not be sampled
        raise gr.Error(f"No pair to label: {err}")
    return (annotator or "", *show(pair, left), progress_text(annotator or ""),
            stats_text(annotator or ""))


def start(annotator: str, current: dict | None):
    """Enter in the name box (and the API's first call): progress, and a pair if none."""
    annotator = checked_name(annotator)
    screen = show(Pair(**current["pair"]), current["shown_left"]) if current else \
        show(*next_pair(annotator))
    return (*screen, progress_text(annotator), stats_text(annotator))


def vote(display: str, annotator: str, current: dict | None):
    annotator = checked_name(annotator)
    if not annotator:
        raise gr.Error(NO_NAME)
    if not current:
        raise gr.Error("There is no pair on screen yet; wait for it to load.")
    pair = Pair(**current["pair"])
    try:
        get_lab().store.record_vote(pair, display_to_choice(display, current["shown_left"]),
                                    annotator, current["shown_left"])
    except LabelError as err:
        raise gr.Error(str(err))
    return (*show(*next_pair(annotator)), progress_text(annotator))


def undo(annotator: str, current: dict | None):
    annotator = checked_name(annotator)
    if not annotator:
        raise gr.Error(NO_NAME)
    row = get_lab().store.undo_last(annotator)
    if row is None:
        gr.Warning("You have no vote to undo.")
        screen = show(Pair(**current["pair"]), current["shown_left"]) if current else show(None, None)
        return (*screen, progress_text(annotator))
    pair, shown_left = get_lab().store.get_pair(row["pair_id"]), row["shown_left"] or "A"
    gr.Info(f"Removed your vote '{ON_SCREEN[choice_to_display(row['choice'], shown_left)]}'; "
            "here is that pair again.", duration=4)
    return (*show(pair, shown_left), progress_text(annotator))


ON_SCREEN = {"left": "A is better", "right": "B is better", "tie": "tie",
             "both_bad": "both are bad", "skip": "skip"}


def choice_to_display(choice: str, shown_left: str) -> str:
    """The stored choice as it was on screen (the inverse of display_to_choice)."""
    if choice in ("A", "B"):
        return "left" if choice == shown_left else "right"
    return choice


def export(include_ties: bool, what: str):
    store = get_lab().store
    folder = Path(tempfile.mkdtemp(prefix="moss-lab-export-"))
    try:
        if what == "jsonl":
            n = store.export_jsonl(folder / "preferences.jsonl", include_ties)
            path = folder / "preferences.jsonl"
        else:  # a datasets.Dataset, saved as Parquet: datasets.load_dataset("parquet", ...)
            ds = store.to_dataset(include_ties)
            n, path = len(ds), folder / "preferences.parquet"
            ds.to_parquet(str(path))
    except PreferenceError as err:
        raise gr.Error(f"Export failed: {err}")
    if n == 0:
        raise gr.Error("Nothing to export yet: no A/B votes are stored.")
    return str(path), f"Exported {n} pairs (ties {'included' if include_ties else 'left out'})."


def import_file(path, fmt_choice: str, annotator: str):
    if not path:
        raise gr.Error("Choose a .jsonl file to import first.")
    annotator = checked_name(annotator)
    try:
        n = get_lab().store.import_file(path, annotator=annotator or None,
                                        fmt={"auto": "auto", "prompt/chosen/rejected": "jsonl",
                                             "Anthropic HH": "hh"}[fmt_choice])
    except (LabelError, OSError) as err:
        raise gr.Error(str(err))
    except Exception as err:  # never a bare "Error"; the import stores all or nothing
        raise gr.Error(f"{Path(path).name} was not imported: {type(err).__name__}: {err}")
    return f"Imported {n} labelled pairs from {Path(path).name}.", progress_text(annotator or "")


# --- layout ------------------------------------------------------------------------------
def build() -> dict:
    remembered = gr.BrowserState("", storage_key="moss-lab-annotator")
    current = gr.State(None)
    with gr.Row(equal_height=True):
        annotator = gr.Textbox(label="Your annotator name", placeholder="e.g. ada",
                               elem_id="annotator", scale=1, max_length=MAX_NAME)
        progress = gr.Markdown(elem_id="label-progress")
    with gr.Accordion("Guidelines", open=False):
        gr.Markdown(GUIDELINES)
    prompt = gr.Markdown(elem_id="label-prompt")
    with gr.Row(equal_height=True):
        left = gr.Textbox(label="A (left)", lines=5, interactive=False, elem_id="label-left")
        right = gr.Textbox(label="B (right)", lines=5, interactive=False, elem_id="label-right")
    with gr.Row():
        b_left = gr.Button("← A is better  [1]", variant="primary", elem_id="vote-left")
        b_right = gr.Button("B is better →  [2]", variant="primary", elem_id="vote-right")
        b_tie = gr.Button("Tie  [3]", elem_id="vote-tie")
        b_bad = gr.Button("Both are bad  [4]", elem_id="vote-bad")
        b_skip = gr.Button("Skip  [s]", size="sm", elem_id="vote-skip")
        b_undo = gr.Button("Undo  [u]", size="sm", variant="secondary", elem_id="vote-undo")
    stats = gr.Markdown(elem_id="label-stats")
    with gr.Accordion("Export and import", open=False):
        with gr.Row():
            ties = gr.Checkbox(label="Include ties (tie=true records)", value=False)
            b_jsonl = gr.Button("Export JSONL", elem_id="export-jsonl")
            b_parquet = gr.Button("Export datasets (Parquet)")
        export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
        export_msg = gr.Markdown()
        gr.Markdown("Import a JSONL file with `prompt`/`chosen`/`rejected` records, or an "
                    "Anthropic HH-RLHF file (`chosen`/`rejected` conversations). The whole "
                    "file is checked first; a bad line stores nothing.")
        with gr.Row():
            upload = gr.File(label="File to import", file_types=[".jsonl", ".json"],
                             type="filepath", elem_id="import-file")
            import_fmt = gr.Radio(["auto", "prompt/chosen/rejected", "Anthropic HH"],
                                  value="auto", label="Format")
        b_import = gr.Button("Import")
        import_msg = gr.Markdown()

    screen = [prompt, left, right, current]
    for button, display in ((b_left, "left"), (b_right, "right"), (b_tie, "tie"),
                            (b_bad, "both_bad"), (b_skip, "skip")):
        button.click(lambda a, c, d=display: vote(d, a, c), [annotator, current],
                     [*screen, progress], concurrency_limit=8, show_progress="hidden",
                     api_name=f"vote_{display}").success(
            stats_text, annotator, stats, show_progress="hidden", api_visibility="private")
    b_undo.click(undo, [annotator, current], [*screen, progress], api_name="undo",
                 show_progress="hidden").success(stats_text, annotator, stats,
                                                 show_progress="hidden", api_visibility="private")
    # the name lives in the browser (localStorage): typed once, remembered next time
    annotator.change(lambda a: a.strip(), annotator, remembered, api_visibility="private",
                     show_progress="hidden")
    annotator.submit(start, [annotator, current], [*screen, progress, stats],
                     api_name="start", show_progress="hidden")
    annotator.blur(lambda a: (progress_text(a), stats_text(a)), annotator, [progress, stats],
                   api_visibility="private", show_progress="hidden")
    b_jsonl.click(lambda t: export(t, "jsonl"), ties, [export_file, export_msg],
                  api_name="export_jsonl")
    b_parquet.click(lambda t: export(t, "parquet"), ties, [export_file, export_msg],
                    api_name="export_parquet")
    b_import.click(import_file, [upload, import_fmt, annotator], [import_msg, progress],
                   api_name="import_labels")
    return {"remembered": remembered, "annotator": annotator, "screen": screen,
            "progress": progress, "stats": stats}


def wire_load(demo: gr.Blocks, parts: dict) -> None:
    demo.load(on_load, parts["remembered"],
              [parts["annotator"], *parts["screen"], parts["progress"], parts["stats"]],
              api_visibility="private")
