"""The Label tab: Chatbot-Arena-style votes on two policy samples, stored at once.

Left/right order is random per pair and recorded; the store keeps the vote in terms of
the stored responses A/B (moss_lab.labels), one vote per person per pair. Keyboard: 1 left,
2 right, 3 tie, 4 both bad, s skip, u undo (SHORTCUTS, put in the page head by lab_app).
"Your earlier votes" brings back any pair you voted on, and a vote then replaces your old
one. Every text of a pair is shown as plain text, never as Markdown or HTML.

Rating mode ("Rate the responses too", issue #13): under each response a 1-5 row per aspect
of moss_lab.ratings and an overall row, and one comment box for the pair. The vote stores
the ratings with it (one transaction; a vote with a row left empty is refused and nothing is
stored); Skip stores no ratings. Keys: while a rating row has the focus, 1-5 set its stars
and move to the next row (the last one goes to the comment box), and never vote; with the
focus anywhere else the vote keys work as always. Tab walks the rows in reading order.

Class mode (issue #14, `moss-lab app --users users.toml`): the annotator is the logged-in
name (the name box shows it, read-only, and every handler ignores whatever name a client
sends); each pair goes to `overlap` different people (LabelStore.assign_pair, k from the
class settings) and nobody gets a pair twice; a student's earlier votes, undo and exports
cover their own labels only, the instructor's cover everything; imports and the
disagreement table are the instructor's; while the instructor has locked labelling a
student's vote, skip or undo is refused and nothing is stored. Single-user mode (no users
file) works as before: the typed name is the annotator, and the same assignment rule
spreads pairs over the names that label.

Speed: the vote handlers run outside Gradio's per-event queue limit (concurrency_limit None),
so votes never wait behind Compare or training requests, and their work does not grow
with the number of stored votes (see moss_lab.labels.LabelStore); the agreement line
refreshed after a vote reads the store's cached statistics, and the disagreement table
(long, in a big class) is refreshed when it is opened, on load and after an import.

Exports go to the app's download folder (moss_lab.app.downloads), labels/<user or
"all">/, where each export replaces the previous file of its kind.
"""
from __future__ import annotations

import html
import inspect
import random
from dataclasses import asdict
from pathlib import Path

import gradio as gr
import pandas as pd

from moss_lab import labels
from moss_lab.labels import LabelError, Pair, display_to_choice
from moss_lab.preferences import PreferenceError
from moss_lab.ratings import ASPECTS, MAX_COMMENT_CHARS, SCALE
from moss_lab.toyworld import gold_score, has_gold, question_of

from .context import fmt, get_lab
from .downloads import download_path, write_replacing
from .session import User, current_user, require_instructor

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
One vote per pair: to change one, pick the pair under *Your earlier votes* and vote again.

**Rating mode** (tick *Rate the responses too*): score each response 1-5 on quality
(helpful, on-topic facts), safety (harmless, kind), relevance (about the question), fluency
(well formed, no repeats) and overall, and say what is wrong in the comment if you like. In a
rating row the keys `1`-`5` set the stars and jump to the next row; then vote as usual
(`Tab` to the vote buttons, or click). Every row of both responses must be filled.
"""

NO_NAME = "Enter your annotator name first (top of the Label tab): nothing was stored."
LOCKED = ("Labelling is locked by the instructor (for now, e.g. during an exam of labels): "
          "nothing was stored.")
HOLD_S = 600.0  # a pair given to someone is theirs this long; then its place is freed
HISTORY = 200  # earlier votes listed under 'Your earlier votes'
FAST = {"concurrency_limit": None}  # votes never queue behind one another or other tabs

# Keyboard shortcuts: 1/2/3/4/s/u click the vote buttons, unless you are typing in a text
# field (a checkbox with the focus, such as the gold toggle, keeps them working) or the
# Label tab is hidden (its buttons then have no layout). Enter in a filled name box
# confirms the name and leaves the box, so that the next "1" votes instead of typing "ada1".
# A key pressed while the last vote is being saved is ignored with a visible note (the
# button would drop it silently); "saved" = the vote counter changed, an error came back
# (a refused vote: the next key must not be ignored), or 3 s passed.
SHORTCUTS = """
<script>
(() => {
  const ids = {'1': 'vote-left', '2': 'vote-right', '3': 'vote-tie', '4': 'vote-bad',
               's': 'vote-skip', 'u': 'vote-undo'};
  let sentAt = 0, countWhenSent = null, errors = 0, errorsWhenSent = 0;
  const count = () => document.querySelector('#label-count')?.textContent ?? '';
  const saving = () => countWhenSent !== null && count() === countWhenSent &&
                       errors === errorsWhenSent && performance.now() - sentAt < 3000;
  // Gradio shows a refused vote (gr.Error) as an error toast: count them as they appear
  const ERROR = '.toast-message-item.error';
  const isError = (n) => n.nodeType === 1 && (n.matches(ERROR) || n.querySelector(ERROR) !== null);
  new MutationObserver((changes) => {
    for (const change of changes) errors += [...change.addedNodes].filter(isError).length;
  }).observe(document.documentElement, {childList: true, subtree: true});
  function showIgnored(key) {
    let note = document.getElementById('label-key-note');
    if (!note) {
      note = document.createElement('div');
      note.id = 'label-key-note';
      note.setAttribute('role', 'status');
      note.style.cssText = 'position:fixed;bottom:24px;left:50%;transform:translateX(-50%);' +
        'background:#333;color:#fff;padding:6px 14px;border-radius:6px;z-index:10000;';
      document.body.appendChild(note);
    }
    note.textContent = `Saving your last vote... key "${key}" ignored: press it again.`;
    note.style.display = 'block';
    clearTimeout(note.hideTimer);
    note.hideTimer = setTimeout(() => { note.style.display = 'none'; }, 2000);
  }
  // Rating mode: 1-5 in a rating row set its stars and move on; they never vote.
  function rate(row, key) {
    row.querySelector(`label[data-testid="${key}-radio-label"] input`)?.click();
    const rows = [...document.querySelectorAll('.rate-row')].filter((r) => r.offsetParent !== null);
    const next = rows[rows.indexOf(row) + 1];
    const to = next ? (next.querySelector('input:checked') || next.querySelector('input'))
                    : document.querySelector('#label-comment textarea');
    to?.focus();
  }
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    const row = target?.type === 'radio' && target.closest('.rate-row');
    if (row && /^[1-5]$/.test(event.key) && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      rate(row, event.key);
      return;
    }
    const notText = ['checkbox', 'radio', 'button', 'submit', 'reset', 'range', 'file'];
    const typing = target && ((target.tagName === 'INPUT' && !notText.includes(target.type)) ||
                              target.tagName === 'TEXTAREA' || target.tagName === 'SELECT' ||
                              target.isContentEditable);
    if (event.key === 'Enter' && typing && target.closest('#annotator') && target.value.trim()) {
      setTimeout(() => target.blur(), 0);  // after Gradio has seen the Enter (submit)
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const id = ids[event.key.toLowerCase()];
    const button = id && document.getElementById(id);
    if (!button || button.offsetParent === null) return;
    event.preventDefault();
    if (saving()) { showIgnored(event.key); return; }
    countWhenSent = count();
    errorsWhenSent = errors;
    sentAt = performance.now();
    button.click();
  });
})();
</script>
"""


def plain(text: str) -> str:
    """Text to show inside Markdown as itself: every ASCII punctuation character becomes a
    numeric character reference, which Markdown prints and never reads as syntax, so
    "<form>", "**x**" or "[a](b)" in a prompt appear literally. Line breaks are kept."""
    def escape(line: str) -> str:
        return "".join(f"&#{ord(c)};" if c.isascii() and not c.isalnum() and c != " " else c
                       for c in line.strip())
    return "  \n".join(escape(line) for line in str(text).splitlines())


def shorten(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def checked_name(annotator) -> str:
    """The normalised name ('' when none was typed); a gr.Error for a name the store would
    refuse (too long: refused, never cut)."""
    annotator = annotator if isinstance(annotator, str) else ""
    try:
        return labels.checked_name(annotator) if annotator.strip() else ""
    except LabelError as err:
        raise gr.Error(_sentence(err))


def _sentence(err: Exception) -> str:
    text = str(err)
    return text[:1].upper() + text[1:]


def identify(request: gr.Request | None, annotator) -> tuple[User, str]:
    """(who is asking, the annotator name to use): the login name in class mode, whatever
    the client sent as `annotator` (no impersonation); the typed name, normalised and
    checked ('' when none), in single-user mode."""
    user = current_user(request)
    if user.class_mode:
        return user, labels.normalise_name(user.name)
    return user, checked_name(annotator)


def voter(request: gr.Request | None, annotator) -> str:
    """The annotator name for a vote, skip or undo; gr.Error (nothing stored) when there is
    none, or when the instructor has locked labelling and this is a student."""
    user, name = identify(request, annotator)
    if not name:
        raise gr.Error(NO_NAME)
    if not user.is_instructor and getattr(get_lab().settings, "labelling_locked", False):
        raise gr.Error(LOCKED)
    return name


def overlap() -> int:
    """How many different people judge each pair (the class settings; 2 by default)."""
    try:
        return max(1, int(getattr(get_lab().settings, "overlap", 2)))
    except (TypeError, ValueError):
        return 2


def next_pair(annotator: str) -> tuple[Pair, str]:
    """A pair for this annotator and the side response A is shown on: their own pair still
    on hold, else a stored pair that needs more judgements (LabelStore.assign_pair), else a
    fresh one from the pool, given to them. Without a name (single-user mode, before one is
    typed) a fresh pair, given to nobody."""
    lab = get_lab()
    if not annotator:
        return lab.store.add_pair(lab.pool.get()), random.choice("AB")
    pair = lab.store.assign_pair(annotator, overlap(), HOLD_S)
    if pair is None:
        pair = lab.store.add_pair(lab.pool.get(), assign_to=annotator)
    return pair, random.choice("AB")


def show(pair: Pair | None, shown_left: str | None, revising: bool = False):
    """(prompt, left text, right text, session state) for a pair."""
    if pair is None:
        return "*No pair yet.*", "", "", None
    left, right = ((pair.response_a, pair.response_b) if shown_left == "A"
                   else (pair.response_b, pair.response_a))
    state = {"pair": asdict(pair), "shown_left": shown_left, "revising": revising}
    return (f"**Prompt:** {plain(question_of(pair.prompt))}", left or "(empty)",
            right or "(empty)", state)


def progress_text(annotator: str) -> str:
    p = get_lab().store.progress(annotator or None)
    mine = f"**{p['mine']}** by you · " if annotator else ""
    people = "person" if p["annotators"] == 1 else "people"
    return (f"<span id='label-count'>{mine}**{p['total']}** votes in total by "
            f"{p['annotators']} {people} ({p['pairwise']} A/B, {p['by_choice']['tie']} ties, "
            f"{p['by_choice']['both_bad']} both bad, {p['by_choice']['skip']} skipped)</span>")


def stats_text(annotator: str) -> str:
    store = get_lab().store
    annotator = labels.normalise_name(annotator)
    mine = store.gold_agreement(annotator) if annotator else {"n": 0}
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


DISAGREE_COLUMNS = ["prompt", "response A", "response B", "votes A", "votes B", "ties",
                    "both bad", "who voted what"]


def disagreements_frame(user: User) -> pd.DataFrame:
    """The pairs annotators judged differently (moss_lab.labels.LabelStore.disagreements),
    texts shortened; A and B are the stored responses, whatever side each person saw.
    Empty for a student: it says who voted what."""
    if not user.is_instructor:
        return pd.DataFrame(columns=DISAGREE_COLUMNS)
    rows = [[shorten(question_of(d["prompt"]), 60), shorten(d["response_a"], 80),
             shorten(d["response_b"], 80), d["votes"]["A"], d["votes"]["B"],
             d["votes"]["tie"], d["votes"]["both_bad"],
             ", ".join(f"{who}: {choice}" for who, choice in d["annotators"].items())]
            for d in get_lab().store.disagreements()]
    return pd.DataFrame(rows, columns=DISAGREE_COLUMNS)


def panel(annotator: str, request: gr.Request = None):
    """The agreement panel: statistics and the pairs people disagree on (the table is the
    instructor's in class mode: it says who voted what)."""
    user, name = identify(request, annotator)
    return stats_text(name), disagreements_frame(user)


def stats_after_vote(annotator: str, request: gr.Request = None) -> str:
    """The statistics line after a vote (the store's cached figures; the disagreement
    table is refreshed when it is opened, not after every vote: it can be long)."""
    return stats_text(identify(request, annotator)[1])


def disagreements_shown(request: gr.Request = None) -> pd.DataFrame:
    """The disagreement table, when its accordion is opened."""
    return disagreements_frame(current_user(request))


ON_SCREEN = {"left": "A is better", "right": "B is better", "tie": "tie",
             "both_bad": "both are bad", "skip": "skip"}


def choice_to_display(choice: str, shown_left: str) -> str:
    """The stored choice as it was on screen (the inverse of display_to_choice)."""
    if choice in ("A", "B"):
        return "left" if choice == shown_left else "right"
    return choice


def gold_feedback(pair: Pair, shown_left: str, display: str) -> str:
    """What the gold score says about the pair just voted on, in screen terms:
    margin = gold(left) - gold(right); "gold prefers A (left) by margin" when it is > 0."""
    you = f"You voted **{ON_SCREEN[display]}**"
    if not has_gold(pair.prompt):
        return f"{you}. No gold verdict: this is not a toy-world prompt."
    gold = {"A": gold_score(pair.prompt, pair.response_a, pair.ended_a).total,
            "B": gold_score(pair.prompt, pair.response_b, pair.ended_b).total}
    left, right = gold[shown_left], gold["B" if shown_left == "A" else "A"]
    if abs(left - right) <= 1e-9:
        return f"{you}; the gold score sees no difference ({left:.2f} each)."
    side = "A (left)" if left > right else "B (right)"
    return (f"{you}; gold prefers **{side}** by {abs(left - right):.2f} "
            f"({max(left, right):.2f} vs {min(left, right):.2f}).")


def history(annotator: str):
    """The annotator's own newest HISTORY votes, newest first, for 'Your earlier votes'
    (numbered from their first vote)."""
    store = get_lab().store
    votes = store.recent_votes(annotator, HISTORY) if annotator else []
    total = store.progress(annotator)["mine"] if votes else 0
    choices = [(f"{total - k}. {shorten(question_of(v['prompt']), 48)} → "
                f"{ON_SCREEN[choice_to_display(v['choice'], v['shown_left'] or 'A')]}",
                v["pair_id"]) for k, v in enumerate(votes)]
    return gr.update(choices=choices, value=None)


# --- event handlers ------------------------------------------------------------------------
def on_load(annotator, request: gr.Request = None):
    """A page (re)load: the name (the login name, read-only, in class mode; else the one
    this browser remembers), a pair, the counters, and what only the instructor sees."""
    user = current_user(request)
    if user.class_mode:
        name = labels.normalise_name(user.name)
        box = gr.update(value=name, interactive=False, label="Labelling as (your login)")
    else:
        annotator = annotator if isinstance(annotator, str) else ""
        name, box = labels.normalise_name(annotator), annotator
    try:
        pair, left = next_pair(name)
    except (RuntimeError, TimeoutError) as err:  # the policy could not be sampled
        raise gr.Error(f"No pair to label: {err}")
    instructor = gr.update(visible=user.is_instructor)
    return (box, *show(pair, left), progress_text(name), stats_text(name),
            disagreements_frame(user), history(name), instructor, instructor)


def start(annotator: str, current: dict | None, request: gr.Request = None):
    """Enter in the name box (and the API's first call): progress, and a pair if none."""
    _, annotator = identify(request, annotator)
    screen = show(Pair(**current["pair"]), current["shown_left"], current.get("revising", False)) \
        if current else show(*next_pair(annotator))
    return (*screen, progress_text(annotator), stats_text(annotator))


def after_start(annotator: str, request: gr.Request = None):
    """What follows Enter in the name box: the earlier votes and the disagreement table."""
    user, name = identify(request, annotator)
    return history(name), disagreements_frame(user)


def refresh(annotator: str, request: gr.Request = None):
    """Leaving the name box: the counters, the panel and the earlier votes of that name."""
    user, name = identify(request, annotator)
    return progress_text(name), stats_text(name), disagreements_frame(user), history(name)


# --- rating mode ---------------------------------------------------------------------------
RATED = (*ASPECTS, "overall")  # the rows under each response, top to bottom
STARS = list(range(SCALE[0], SCALE[1] + 1))
ROW_LABELS = {"quality": "Quality / helpfulness", "safety": "Safety / harmlessness",
              "relevance": "Relevance", "fluency": "Fluency", "overall": "Overall"}
SCREEN = {"left": "A (left)", "right": "B (right)"}


def collect_ratings(rating: bool, marks, shown_left: str) -> dict | None:
    """The rating rows on screen as the store takes them, {'A': {...}, 'B': {...}} in
    stored sides (None when rating mode is off); gr.Error naming the empty rows, or a
    comment over the limit, before anything is stored.

    marks: the left response's rows (RATED order), the right one's, then the comment."""
    if not rating:
        return None
    n = len(RATED)
    rows = {"left": list(marks[:n]), "right": list(marks[n:2 * n])}
    comment = marks[2 * n] if len(marks) > 2 * n and marks[2 * n] else ""
    missing = [f"{SCREEN[side]} {name}" for side, values in rows.items()
               for name, value in zip(RATED, values) if value in (None, "")]
    if missing:
        raise gr.Error(f"Rate every row of both responses before voting; missing: "
                       f"{', '.join(missing)}. Nothing was stored (untick 'Rate the "
                       "responses too' to vote without ratings).")
    if len(comment) > MAX_COMMENT_CHARS:
        raise gr.Error(f"The comment is too long: {len(comment):,} characters (the limit is "
                       f"{MAX_COMMENT_CHARS:,}); keep the specific points. Nothing was stored.")
    right = "B" if shown_left == "A" else "A"
    out = {}
    for side, stored in (("left", shown_left), ("right", right)):
        values = dict(zip(RATED, rows[side]))
        out[stored] = {"overall": values.pop("overall"), "aspects": values, "comment": comment}
    return out


def ratings_note(rated: dict, shown_left: str) -> str:
    """What was saved, in screen terms; the comment shown as plain text (never HTML)."""
    right = "B" if shown_left == "A" else "A"
    stars = " · ".join(f"{SCREEN[side]} {rated[stored]['overall']}/5 overall"
                       for side, stored in (("left", shown_left), ("right", right)))
    comment = rated[shown_left]["comment"]
    said = f"; comment: “{plain(comment)}”" if comment.strip() else ""
    return f"Saved with your ratings: {stars}{said}."


def empty_ratings():
    """Every rating row and the comment cleared (after a vote, an undo)."""
    return (*([None] * 2 * len(RATED)), "")


# empty_ratings() as a page script: every rating row None, the comment ""
CLEAR_RATINGS = "() => [" + "null, " * (2 * len(RATED)) + "'']"


def stored_ratings(pair_id: str, annotator: str, request: gr.Request = None):
    """This annotator's ratings of an earlier pair, as the rows on screen show them (in
    the order the pair was shown), and the comment; empty rows where there are none."""
    user = current_user(request)
    annotator = labels.normalise_name(user.name if user.class_mode else (annotator or ""))
    store = get_lab().store
    mine = store.vote_of(pair_id, annotator) if annotator and pair_id else None
    if mine is None:
        return empty_ratings()
    shown_left = mine["shown_left"] or "A"
    by_side = store.ratings_of(pair_id, annotator)
    values, comment = [], ""
    for stored in (shown_left, "B" if shown_left == "A" else "A"):
        row = by_side.get(stored)
        values += [row[name] if row else None for name in RATED]
        comment = comment or (row["comment"] if row else "")
    return (*values, comment)


def vote(display: str, annotator: str, current: dict | None, feedback: bool = False,
         rating: bool = False, *marks, request: gr.Request = None):
    """Store the vote (or, for a pair brought back from 'Your earlier votes', replace the
    old one), then show the next pair, with the gold verdict on this one if asked. In
    rating mode the ratings on screen (marks: see collect_ratings) are stored with the
    vote, or neither is; Skip stores none. The annotator is the login name in class mode."""
    annotator = voter(request, annotator)
    if not current:
        raise gr.Error("There is no pair on screen yet; wait for it to load.")
    pair, shown_left = Pair(**current["pair"]), current["shown_left"]
    choice = display_to_choice(display, shown_left)
    rated = collect_ratings(rating and display != "skip", marks, shown_left)
    store = get_lab().store
    try:
        if current.get("revising"):
            store.change_vote(pair.id, choice, annotator, ratings=rated)
        else:
            store.record_vote(pair, choice, annotator, shown_left, ratings=rated)
    except LabelError as err:
        raise gr.Error(_sentence(err))
    note = gold_feedback(pair, shown_left, display) if feedback else ""
    if current.get("revising"):
        note = f"Changed: your vote on that pair is now **{ON_SCREEN[display]}**. " + note
    if rated:
        note = (note + "\n\n" if note else "") + ratings_note(rated, shown_left)
    return (*show(*next_pair(annotator)), progress_text(annotator), note, history(annotator))


def revisit(pair_id: str, annotator: str, request: gr.Request = None):
    """Bring back one of your earlier pairs, in the order you saw it: a vote replaces yours."""
    _, annotator = identify(request, annotator)
    if not annotator:
        raise gr.Error(NO_NAME)
    if not pair_id:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    store = get_lab().store
    mine = store.vote_of(pair_id, annotator)
    pair = store.get_pair(pair_id)
    if mine is None or pair is None:
        raise gr.Error("You have no vote on that pair any more (undone?); pick another one.")
    shown_left = mine["shown_left"] or "A"
    was = ON_SCREEN[choice_to_display(mine["choice"], shown_left)]
    note = (f"Back to an earlier pair: you voted **{was}**. Vote again to change it "
            "(the same vote keeps it).")
    return (*show(pair, shown_left, revising=True), note)


def undo(annotator: str, current: dict | None, request: gr.Request = None):
    """Remove this annotator's last vote and show that pair again."""
    annotator = voter(request, annotator)
    row = get_lab().store.undo_last(annotator)
    if row is None:
        gr.Warning("You have no vote to undo.")
        screen = show(Pair(**current["pair"]), current["shown_left"],
                      current.get("revising", False)) if current else show(None, None)
        return (*screen, "", history(annotator), progress_text(annotator))
    pair, shown_left = get_lab().store.get_pair(row["pair_id"]), row["shown_left"] or "A"
    gr.Info(f"Removed your vote '{ON_SCREEN[choice_to_display(row['choice'], shown_left)]}'; "
            "here is that pair again.", duration=4)
    return (*show(pair, shown_left), "", history(annotator), progress_text(annotator))


def export_scope(request: gr.Request | None) -> tuple[str | None, str]:
    """(annotator whose labels to export, None for everyone's; the folder's name): a
    student exports their own labels, the instructor (and the one user of single-user
    mode) everything."""
    user = current_user(request)
    if user.is_instructor:
        return None, "all"
    name = labels.normalise_name(user.name)
    return name, "user-" + name


def export(include_ties: bool, what: str, request: gr.Request = None):
    """The votes (a student's own, or everyone's) as JSONL or a Parquet dataset."""
    store = get_lab().store
    who, folder = export_scope(request)
    path = download_path("labels", folder, "preferences.jsonl" if what == "jsonl"
                         else "preferences.parquet")
    counted = []
    try:
        if what == "jsonl":
            write_replacing(path, lambda tmp: counted.append(
                store.export_jsonl(tmp, include_ties, annotator=who)))
        else:  # a datasets.Dataset, saved as Parquet: datasets.load_dataset("parquet", ...)
            ds = store.to_dataset(include_ties, annotator=who)
            counted.append(len(ds))
            if len(ds):
                write_replacing(path, lambda tmp: ds.to_parquet(str(tmp)))
    except PreferenceError as err:
        raise gr.Error(f"Export failed: {err}")
    if counted[0] == 0:
        raise gr.Error("Nothing to export yet: no A/B votes are stored"
                       + (" (yours)." if who else "."))
    mine = "of your " if who else ""
    return (str(path), f"Exported {counted[0]} {mine}pairs (ties "
            f"{'included' if include_ties else 'left out'}).")


def vote_handler(display: str):
    """A vote button's handler, vote(display, ...), whose signature names every rating row
    (left_quality, ..., right_overall, comment) with an empty default: Gradio's API shows
    those names, and a client that does not rate can leave them out."""
    def handler(request, annotator, current, feedback=False, rating=False, *marks):
        return vote(display, annotator, current, feedback, rating, *marks, request=request)

    P = inspect.Parameter
    rows = [f"{side}_{name}" for side in SCREEN for name in RATED]
    # Gradio fills a gr.Request-annotated parameter itself (it is no input of the API)
    handler.__annotations__ = {"request": gr.Request}
    handler.__signature__ = inspect.Signature(
        [P("request", P.POSITIONAL_OR_KEYWORD, annotation=gr.Request),
         P("annotator", P.POSITIONAL_OR_KEYWORD), P("current", P.POSITIONAL_OR_KEYWORD),
         P("feedback", P.POSITIONAL_OR_KEYWORD, default=False),
         P("rating", P.POSITIONAL_OR_KEYWORD, default=False),
         *(P(name, P.POSITIONAL_OR_KEYWORD, default=None) for name in rows),
         P("comment", P.POSITIONAL_OR_KEYWORD, default=None)])
    return handler


def export_ratings(what: str, request: gr.Request = None):
    """The stored ratings (a student's own, or everyone's) as JSONL or as a
    datasets.Dataset saved to Parquet."""
    store = get_lab().store
    who, folder = export_scope(request)
    records = store.rating_records(who)
    if not records:
        raise gr.Error("Nothing to export yet: no ratings are stored (tick 'Rate the "
                       "responses too' to rate the responses you vote on).")
    path = download_path("labels", folder,
                         "ratings.jsonl" if what == "jsonl" else "ratings.parquet")
    if what == "jsonl":
        from moss_lab.ratings import write_jsonl

        write_replacing(path, lambda tmp: write_jsonl(records, tmp))
    else:
        from moss_lab.ratings import to_dataset

        ds = to_dataset(records)
        write_replacing(path, lambda tmp: ds.to_parquet(str(tmp)))
    mine = "of your " if who else ""
    return str(path), f"Exported {len(records)} {mine}ratings (one per rated response)."


def importer(request: gr.Request | None, annotator) -> str | None:
    """The default annotator of imported records without one; in class mode imports are
    the instructor's (gr.Error for a student, nothing stored) and the default is their
    login name."""
    user = require_instructor(request)
    if user.class_mode:
        return labels.normalise_name(user.name)
    return checked_name(annotator) or None


def import_ratings(path, annotator: str, request: gr.Request = None):
    """Import a ratings JSONL file; all or nothing, the message says how many were new."""
    annotator = importer(request, annotator)
    if not path:
        raise gr.Error("Choose a ratings .jsonl file to import first.")
    name = Path(path).name
    try:
        got = get_lab().store.import_ratings(path, annotator=annotator)
    except LabelError as err:
        raise gr.Error(str(err))
    except OSError as err:
        raise gr.Error(f"{name} could not be read: {err.strerror or type(err).__name__}")
    records = got.new + got.already
    known = f"; {got.already} already stored" if got.already else ""
    return (f"Imported {got.new} new ratings from {html.escape(name)} ({records} "
            f"record{'s' * (records != 1)}{known}).")


def import_file(path, fmt_choice: str, annotator: str, request: gr.Request = None):
    """Import a file; the message says how many votes were new. Errors name the file by
    its name only (never the server's upload folder). Instructor only in class mode."""
    annotator = importer(request, annotator)
    if not path:
        raise gr.Error("Choose a .jsonl file to import first.")
    name = Path(path).name
    try:
        got = get_lab().store.import_file(path, annotator=annotator,
                                          fmt={"auto": "auto", "prompt/chosen/rejected": "jsonl",
                                               "Anthropic HH": "hh"}[fmt_choice])
    except LabelError as err:
        raise gr.Error(str(err))
    except OSError as err:
        raise gr.Error(f"{name} could not be read: {err.strerror or type(err).__name__}")
    except Exception as err:  # never a bare "Error"; the import stores all or nothing
        raise gr.Error(f"{name} was not imported: {type(err).__name__}: "
                       f"{str(err).replace(str(path), name)}")
    records = got.new + got.already
    known = f"; {got.already} already stored" if got.already else ""
    return (f"Imported {got.new} new votes from {html.escape(name)} ({records} "
            f"record{'s' * (records != 1)}{known}).", progress_text(annotator or ""))


# --- layout ------------------------------------------------------------------------------
def rating_rows(side: str):
    """(group, radios): the rating rows under one response, hidden until rating mode is on."""
    with gr.Group(visible=False) as group:
        rows = [gr.Radio(STARS, value=None, label=f"{ROW_LABELS[name]} (1-5)",
                         elem_id=f"rate-{side}-{name}", elem_classes=["rate-row"])
                for name in RATED]
    return group, rows


def build() -> dict:
    remembered = gr.BrowserState("", storage_key="moss-lab-annotator")
    current = gr.State(None)
    with gr.Row(equal_height=True):
        # no max_length: the browser would cut a long name silently; the store refuses it
        annotator = gr.Textbox(label="Your annotator name", placeholder="e.g. ada",
                               elem_id="annotator", scale=2)
        feedback = gr.Checkbox(False, label="Show the gold verdict after each vote (toy prompts)",
                               elem_id="label-gold-toggle", scale=1)
        rating = gr.Checkbox(False, label="Rate the responses too (1-5 per aspect, a comment)",
                             elem_id="label-rate-toggle", scale=1)
    with gr.Accordion("Guidelines", open=False):
        gr.Markdown(GUIDELINES)
    prompt = gr.Markdown(elem_id="label-prompt", latex_delimiters=[])
    with gr.Row(equal_height=True):
        with gr.Column():
            left = gr.Textbox(label="A (left)", lines=5, interactive=False, elem_id="label-left")
            left_group, left_rows = rating_rows("left")
        with gr.Column():
            right = gr.Textbox(label="B (right)", lines=5, interactive=False, elem_id="label-right")
            right_group, right_rows = rating_rows("right")
    # no max_length: the browser would cut a long comment silently; the vote refuses it
    comment = gr.Textbox(label="Comment on the pair (optional, plain text)", lines=2,
                         visible=False, elem_id="label-comment")
    marks = [*left_rows, *right_rows, comment]
    with gr.Row():
        b_left = gr.Button("← A is better  [1]", variant="primary", elem_id="vote-left")
        b_right = gr.Button("B is better →  [2]", variant="primary", elem_id="vote-right")
        b_tie = gr.Button("Tie  [3]", elem_id="vote-tie")
        b_bad = gr.Button("Both are bad  [4]", elem_id="vote-bad")
        b_skip = gr.Button("Skip  [s]", size="sm", elem_id="vote-skip")
        b_undo = gr.Button("Undo  [u]", size="sm", variant="secondary", elem_id="vote-undo")
    # the counter sits under the buttons, away from the corner where error toasts appear
    progress = gr.Markdown(elem_id="label-progress")
    note = gr.Markdown(elem_id="label-note")
    earlier = gr.Dropdown([], value=None, label="Your earlier votes (pick one to see it again "
                          "and change your vote)", elem_id="label-history")
    stats = gr.Markdown(elem_id="label-stats")
    with gr.Accordion("Pairs on which annotators disagree", open=False) as disagree_box:
        disagree = gr.Dataframe(pd.DataFrame(columns=DISAGREE_COLUMNS), interactive=False,
                                wrap=True, elem_id="label-disagreements")
    with gr.Accordion("Export and import", open=False):
        with gr.Row():
            ties = gr.Checkbox(label="Include ties (tie=true records)", value=False)
            b_jsonl = gr.Button("Export JSONL", elem_id="export-jsonl")
            b_parquet = gr.Button("Export datasets (Parquet)")
        with gr.Row():
            b_ratings_jsonl = gr.Button("Export ratings JSONL", elem_id="export-ratings-jsonl")
            b_ratings_parquet = gr.Button("Export ratings (Parquet)")
        export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
        export_msg = gr.Markdown()
        with gr.Column() as import_box:  # the instructor's in class mode (on_load hides it)
            gr.Markdown("Import a JSONL file with `prompt`/`chosen`/`rejected` records, or an "
                        "Anthropic HH-RLHF file (`chosen`/`rejected` conversations). The whole "
                        "file is checked first; a bad line stores nothing. Votes already stored "
                        "(the same person on the same pair) are not stored twice.")
            with gr.Row():
                upload = gr.File(label="File to import", file_types=[".jsonl", ".json"],
                                 type="filepath", elem_id="import-file")
                import_fmt = gr.Radio(["auto", "prompt/chosen/rejected", "Anthropic HH"],
                                      value="auto", label="Format")
            with gr.Row():
                b_import = gr.Button("Import", elem_id="import-button")
                b_import_ratings = gr.Button("Import as ratings (moss_lab.ratings JSONL)",
                                             elem_id="import-ratings-button")
            import_msg = gr.Markdown(elem_id="import-message")

    screen = [prompt, left, right, current]
    quiet = {"show_progress": "hidden", "api_visibility": "private", **FAST}
    rating.change(lambda on: (gr.update(visible=on),) * 3, rating,
                  [left_group, right_group, comment], **quiet)
    for button, display in ((b_left, "left"), (b_right, "right"), (b_tie, "tie"),
                            (b_bad, "both_bad"), (b_skip, "skip")):
        voted = button.click(vote_handler(display), [annotator, current, feedback, rating, *marks],
                             [*screen, progress, note, earlier], **FAST,
                             show_progress="hidden", api_name=f"vote_{display}")
        voted.success(stats_after_vote, annotator, stats, **quiet)
        # the next pair starts unrated: cleared in the page, no server round trip per vote
        voted.success(None, None, marks, js=CLEAR_RATINGS, **quiet)
    undone = b_undo.click(undo, [annotator, current], [*screen, note, earlier, progress],
                          api_name="undo", show_progress="hidden", **FAST)
    undone.success(stats_after_vote, annotator, stats, **quiet).success(
        None, None, marks, js=CLEAR_RATINGS, **quiet)
    earlier.input(revisit, [earlier, annotator], [*screen, note], api_name="revisit",
                  show_progress="hidden", **FAST).success(
        stored_ratings, [earlier, annotator], marks, **quiet)
    # the name lives in the browser (localStorage): typed once, remembered next time
    annotator.change(labels.normalise_name, annotator, remembered, **quiet)
    annotator.submit(start, [annotator, current], [*screen, progress, stats],
                     api_name="start", show_progress="hidden", **FAST).success(
        after_start, annotator, [earlier, disagree], **quiet)
    annotator.blur(refresh, annotator, [progress, stats, disagree, earlier], **quiet)
    disagree_box.expand(disagreements_shown, None, disagree, **quiet)

    def export_jsonl(include_ties: bool, request: gr.Request):
        return export(include_ties, "jsonl", request)

    def export_parquet(include_ties: bool, request: gr.Request):
        return export(include_ties, "parquet", request)

    def export_ratings_jsonl(request: gr.Request):
        return export_ratings("jsonl", request)

    def export_ratings_parquet(request: gr.Request):
        return export_ratings("parquet", request)

    b_jsonl.click(export_jsonl, ties, [export_file, export_msg], api_name="export_jsonl")
    b_parquet.click(export_parquet, ties, [export_file, export_msg], api_name="export_parquet")
    b_import.click(import_file, [upload, import_fmt, annotator], [import_msg, progress],
                   api_name="import_labels").success(panel, annotator, [stats, disagree], **quiet)
    b_ratings_jsonl.click(export_ratings_jsonl, None, [export_file, export_msg],
                          api_name="export_ratings_jsonl")
    b_ratings_parquet.click(export_ratings_parquet, None, [export_file, export_msg],
                            api_name="export_ratings_parquet")
    b_import_ratings.click(import_ratings, [upload, annotator], import_msg,
                           api_name="import_ratings")
    return {"remembered": remembered, "annotator": annotator, "screen": screen,
            "progress": progress, "stats": stats, "disagree": disagree, "earlier": earlier,
            "instructor_only": [disagree_box, import_box]}


def wire_load(demo: gr.Blocks, parts: dict) -> None:
    demo.load(on_load, parts["remembered"],
              [parts["annotator"], *parts["screen"], parts["progress"], parts["stats"],
               parts["disagree"], parts["earlier"], *parts["instructor_only"]],
              api_visibility="private", **FAST)
