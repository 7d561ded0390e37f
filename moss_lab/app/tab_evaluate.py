"""The Evaluate tab: policy A against policy B on N toy prompts (moss_lab.evaluate).

Judges: the gold score, the toy reward model, and people: "people" sends the N blind
pairs to the Label tab (served there like any pair, left/right at random) and the people's
figures grow as votes come in (Refresh). Every figure is a win/tie/loss rate of A with its
bootstrap 95% interval and the number of judgements; the agreement table says how often
two judges give the same verdict on the same prompt. The leaderboards (Bradley-Terry,
Elo scale, moss_lab.leaderboard) are one per judge: gold, reward model, people, never mixed.
Every text that comes from a user (policy names, folders) is shown escaped.
"""
from __future__ import annotations

import gradio as gr
import pandas as pd

from moss_lab import evaluate as ev
from moss_lab import leaderboard as lb

from . import forms, tab_ppo, watch
from .context import get_lab
from .session import current_user
from .tab_label import plain
from .tab_ppo import policy_choices

JUDGE_CHOICES = [("gold score", "gold"), ("reward model (toy)", "rm"),
                 ("people (blind pairs in the Label tab)", "people")]
RATE_COLUMNS = ["judge", "n", "A wins", "tie", "B wins", "mean score A", "mean score B"]
AGREE_COLUMNS = ["judges", "n", "same verdict", "when both decisive", "kappa"]
BOARD_COLUMNS = ["#", "policy", "rating", "95% interval", "games", "W", "T", "L"]
BOARDS = ("gold", "rm", "people")


def pct(rate: float, ci: list[float]) -> str:
    """41.0% [30.2, 52.1]"""
    return f"{100 * rate:.1f}% {ev.ci_text(*ci)}"


def rates_frame(by_judge: dict) -> pd.DataFrame:
    rows = [[judge, s["n"], pct(s["win_rate"], s["win_rate_ci95"]),
             pct(s["tie_rate"], s["tie_rate_ci95"]), pct(s["loss_rate"], s["loss_rate_ci95"]),
             "" if s.get("mean_score_a") is None else f"{s['mean_score_a']:.3f}",
             "" if s.get("mean_score_b") is None else f"{s['mean_score_b']:.3f}"]
            for judge, s in by_judge.items() if s.get("n")]
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


def agreement_frame(agreement: dict) -> pd.DataFrame:
    rows = [[pair.replace("~", " vs "), g["n"], pct(g["agreement"], g["agreement_ci95"]),
             "" if g["decisive_agreement"] is None else
             f"{100 * g['decisive_agreement']:.1f}% of {g['decisive']}", f"{g['kappa']:.3f}"]
            for pair, g in agreement.items()]
    return pd.DataFrame(rows, columns=AGREE_COLUMNS)


def board_frame(judge: str) -> pd.DataFrame:
    """One leaderboard (an empty table when that judge has judged nothing yet)."""
    if judge == "people":
        outcomes = lb.outcomes_from_votes(get_lab().store.votes())
    else:
        outcomes = lb.outcomes_from_judgements(ev.read_judgements(judge))
    try:
        board = lb.leaderboard(outcomes, n_resamples=300) if outcomes else []
    except lb.BoardError:
        board = []
    rows = [[rank, ev.label_of(r["model"]), round(r["rating"]),
             f"[{r['rating_ci95'][0]:.0f}, {r['rating_ci95'][1]:.0f}]", r["games"], r["wins"],
             r["ties"], r["losses"]] for rank, r in enumerate(board, 1)]
    return pd.DataFrame(rows, columns=BOARD_COLUMNS)


def boards():
    return tuple(board_frame(judge) for judge in BOARDS)


def people_evals() -> list[str]:
    """The names of stored evals that queued pairs for people, newest last."""
    return list(dict.fromkeys(r["eval"] for r in ev.all_rows()
                              if r.get("judge") == "people" and r.get("eval")))


def people_view(name: str | None):
    """(the people's figures as Markdown, their rates row, their agreement table)."""
    if not name:
        return ("*No eval with people yet: tick **people** and run one.*",
                rates_frame({}), agreement_frame({}))
    try:
        s = ev.people_verdicts(name, store=get_lab().store, n_resamples=1000)
    except ev.EvalError as err:
        raise gr.Error(str(err))
    head = (f"**People, eval {plain(name)}**: A = {plain(ev.label_of(s['a']))}, "
            f"B = {plain(ev.label_of(s['b']))}. {s['votes']} votes by {s['annotators']} "
            f"{'person' if s['annotators'] == 1 else 'people'} on {s['pairs']} pairs; {s['pending']} of {s['queued']} queued pairs "
            "still wait for a vote in the Label tab.")
    if not s["n"]:
        return head + "\n\n*No votes yet.*", rates_frame({}), agreement_frame({})
    text = (f"{head}\n\nA wins **{pct(s['win_rate'], s['win_rate_ci95'])}**, tie "
            f"{pct(s['tie_rate'], s['tie_rate_ci95'])}, B wins "
            f"{pct(s['loss_rate'], s['loss_rate_ci95'])} (n = {s['n']} pairs).")
    return text, rates_frame({"people": s}), agreement_frame(s["agreement"])


def run_eval(a: str, b: str, n, judges: list[str], request: gr.Request = None,
             progress=gr.Progress()):  # noqa: B008
    """Sample, judge and store one comparison; people's pairs go to the Label tab.
    In class mode a policy is one the caller may load (a built-in, their own run, the
    instructor's), never a free folder."""
    user = current_user(request)
    a, b = (watch.checked_model(x, user, "policy", policy_choices(user), tab_ppo.POLICIES)
            for x in (a, b))
    n, problem = forms.read_number(n, "N prompts", 1, ev.MAX_PROMPTS)
    if problem:
        raise gr.Error(problem)
    if not judges:
        raise gr.Error("Pick at least one judge (gold, reward model or people).")
    if not a or not b:
        raise gr.Error("Pick policy A and policy B.")
    try:
        ev.prepare(a, b, n, judges)  # every check before a model is loaded
        name = ev.check_name(None)
    except ev.EvalError as err:
        raise gr.Error(str(err))
    total = 2 * n * (1 + ("rm" in judges))
    done = [0]

    def on_progress(stage: str, k: int) -> None:
        done[0] += k
        progress(done[0] / total, desc=stage)

    try:
        result = ev.compare(a, b, n, judges, on_progress=on_progress)
    except ev.EvalError as err:
        raise gr.Error(str(err))
    summary = result.summary()
    if "people" in judges:
        path, queued = ev.save_with_people(result, get_lab().store, name)
        summary["people"], summary["queued"] = name, queued
        note = (f"**Sent to the Label tab:** {queued} blind pairs queued (eval {plain(name)}; "
                f"{n - queued} prompts where A and B answered alike were not asked). "
                "Press *Refresh* to see the people's figures so far.")
    else:
        path, note = ev.save(result, name), ""
    summary["saved"] = str(path)
    head = (f"**{plain(ev.label_of(summary['a']))}** (A) vs **{plain(ev.label_of(summary['b']))}** "
            f"(B) on {n} prompts · eval {plain(name)}")
    # the people's eval box shows this eval (its choices are refreshed next)
    return (head, summary, rates_frame(summary["by_judge"]), agreement_frame(summary["agreement"]),
            note, name if "people" in judges else gr.skip())


def refresh(name: str | None):
    people = people_evals()
    name = name or (people[-1] if people else None)
    return (gr.update(choices=people, value=name), *people_view(name), *boards())


def build(tab: gr.Tab) -> dict:
    gr.Markdown("Compare two policies on the same prompts, one response each. The rates are "
                "A's, with bootstrap 95% intervals over prompts. **people** sends blind pairs "
                "to the Label tab; their figures grow as votes come in.")
    with gr.Row():
        policy_a = gr.Dropdown(policy_choices(), value="toy", label="Policy A",
                               allow_custom_value=True, elem_id="eval-a")
        policy_b = gr.Dropdown(policy_choices(), value=None, label="Policy B (a run, or a "
                               "folder typed in)", allow_custom_value=True, elem_id="eval-b")
        n = forms.BoundedNumber(50, label="N prompts", precision=0, minimum=1,
                                maximum=ev.MAX_PROMPTS, step=1, elem_id="eval-n")
    judges = gr.CheckboxGroup(JUDGE_CHOICES, value=["gold", "rm"], label="Judges",
                              elem_id="eval-judges")
    go = gr.Button("Run the comparison", variant="primary", elem_id="eval-run")
    head = gr.Markdown(elem_id="eval-head")
    rates = gr.Dataframe(rates_frame({}), interactive=False, label="Win / tie / loss of A",
                         elem_id="eval-rates")
    agree = gr.Dataframe(agreement_frame({}), interactive=False,
                         label="Agreement between judges (same prompts)", elem_id="eval-agree")
    note = gr.Markdown(elem_id="eval-people-note")
    with gr.Accordion("All figures (JSON)", open=False):
        summary = gr.JSON(elem_id="eval-summary")
    gr.Markdown("### People's verdicts")
    with gr.Row():
        people_name = gr.Dropdown(people_evals(), value=None, label="Eval with people",
                                  allow_custom_value=True, elem_id="eval-people-name")
        again = gr.Button("↻ Refresh", size="sm", scale=0, min_width=120, elem_id="eval-refresh")
    people_text = gr.Markdown(elem_id="eval-people")
    people_rates = gr.Dataframe(rates_frame({}), interactive=False, label="People: win / tie / "
                                "loss of A", elem_id="eval-people-rates")
    people_agree = gr.Dataframe(agreement_frame({}), interactive=False,
                                label="People's agreement with gold and the reward model",
                                elem_id="eval-people-agree")
    gr.Markdown("### Leaderboards (Bradley-Terry, Elo scale: the base model is 1000; "
                "+191 = 75% expected wins)")
    tables = []
    for judge, title in (("gold", "Gold board"), ("rm", "Reward-model board"),
                         ("people", "People's board")):
        tables.append(gr.Dataframe(pd.DataFrame(columns=BOARD_COLUMNS), interactive=False,
                                   label=title, elem_id=f"eval-board-{judge}"))
    shown = [people_name, people_text, people_rates, people_agree, *tables]
    go.click(run_eval, [policy_a, policy_b, n, judges],
             [head, summary, rates, agree, note, people_name], api_name="evaluate",
             concurrency_limit=1, concurrency_id="evaluate").success(
        refresh, people_name, shown, api_visibility="private")
    again.click(refresh, people_name, shown, api_name="evaluate_refresh")
    def on_open(name, request: gr.Request):
        choices = policy_choices(watch.viewer(request))
        return (*(gr.update(choices=choices),) * 2, *refresh(name))

    tab.select(on_open, people_name, [policy_a, policy_b, *shown], api_visibility="private")
    return {"policy_a": policy_a, "policy_b": policy_b, "refresh": again}
