"""The Compare tab: one prompt, two responses side by side, from the same policy or from
two (base vs a PPO run's checkpoint). Blind mode hides which model wrote which until you
pick the better one; that pick is a vote in the label store (source "compare", the two
policies as the pair's source_a/source_b), by the name typed in the Label tab (class mode:
the login name), and it is final: after the reveal it cannot be changed.

Generating is bounded: a built-in toy model that is not built yet is refused with the
command that builds it (a build takes minutes and would hold every other Compare), and in
class mode only the user's own policies and the instructor's may be loaded."""
from __future__ import annotations

import random
import uuid
from dataclasses import asdict

import gradio as gr

from moss_lab.sampling import generate
from moss_lab.toyworld import (
    format_prompt,
    gold_score,
    question_of,
    sample_prompts,
    topic_of,
)

from moss_lab.configs import check_new_tokens, field_bounds
from moss_lab.labels import LabelError, Pair, display_to_choice
from moss_lab.ppo import PPOConfig

from moss_lab.limits import LIMITS
from moss_lab.models import INFO_FILE, SHIPPED_DIR, resolve_toy, toy_model_dir

from . import forms, watch
from .context import get_lab
from .session import User, current_user
from .tab_label import checked_name, plain
from .tab_ppo import POLICIES, policy_choices

# Max new tokens: PPOConfig's range for max_new_tokens within the shared machine's bound
# (moss_lab.limits), then each policy's context window
MAX_TOKENS = field_bounds(PPOConfig, "max_new_tokens")
MAX_TOKENS = type(MAX_TOKENS)(MAX_TOKENS.lo, min(MAX_TOKENS.hi, LIMITS["max_new_tokens"]))

EXAMPLES = [question_of(p) for p in sample_prompts(12, seed=7)]


def _gold(prompt: str, response: str, ended: bool) -> str:
    if not topic_of(prompt):
        return ""
    return f" · gold {gold_score(prompt, response, ended).total:.2f}"


def unbuilt(name: str) -> str | None:
    """Why a built-in toy model cannot be loaded in a request (None when it can): it is not
    built yet (neither in the data home nor shipped with the package)."""
    size = resolve_toy(str(name))
    if size is None:
        return None
    folder = toy_model_dir(size)
    if (folder / INFO_FILE).is_file() or (SHIPPED_DIR / folder.name / INFO_FILE).is_file():
        return None
    return f"{name} is not built yet: build it first: moss-lab pretrain --size {size}"


def loadable(name: str, user: User) -> str:
    """`name` if `user` may load it here and now (gr.Error otherwise)."""
    builtins = POLICIES + ((str(name),) if resolve_toy(str(name)) else ())  # toy-s etc.
    name = watch.checked_model(name, user, "policy", policy_choices(user), builtins)
    problem = unbuilt(name)
    if problem:
        raise gr.Error(problem)
    return name


def compare(question: str, policy_a: str, policy_b: str, blind: bool, max_tokens: float,
            request: gr.Request = None):
    question = (question or "").strip()
    if not question:
        raise gr.Error("Type or pick a prompt first.")
    if not policy_a or not policy_b:
        raise gr.Error("Pick two policies (they may be the same).")
    user = current_user(request)
    policy_a, policy_b = loadable(policy_a, user), loadable(policy_b, user)
    max_tokens, problem = forms.read_number(max_tokens, "max new tokens", int(MAX_TOKENS.lo),
                                            int(MAX_TOKENS.hi))
    if problem:
        raise gr.Error(problem)
    prompt = format_prompt(question)
    out = []
    for name in (policy_a, policy_b):
        try:
            model, tokenizer = get_lab().policy(name)
        except Exception as err:  # a missing or broken checkpoint: say which
            if user.class_mode:  # no server path in a message to a class
                raise gr.Error(f"Could not load policy {_label(name, user)!r} "
                               f"({type(err).__name__}).")
            raise gr.Error(f"Could not load policy {name!r}: {err}")
        try:
            check_new_tokens(model, len(tokenizer(prompt).input_ids), max_tokens,
                             "max new tokens")
            s = generate(model, tokenizer, [prompt], max_new_tokens=max_tokens)
        except ValueError as err:
            raise gr.Error(f"{_label(name, user)}: {err}")
        except Exception as err:  # never a bare "Error"
            raise gr.Error(f"{_label(name, user)} could not generate: {type(err).__name__}: {err}")
        out.append((name, s.responses[0], s.ended[0]))
    # the pair as stored: A = policy 1's response, B = policy 2's; shown_left says which
    # one is "Response 1" (blind mode shuffles them)
    pair = Pair(uuid.uuid4().hex[:12], prompt, out[0][1], out[1][1], out[0][2], out[1][2],
                policy_a, policy_b)
    shown_left = random.choice("AB") if blind else "A"
    if shown_left == "B":
        out.reverse()
    labels = [f"Response {i + 1}" if blind else f"{_label(n, user)}{_gold(prompt, r, e)}"
              for i, (n, r, e) in enumerate(out)]
    reveal = {"prompt": prompt, "out": out, "blind": blind, "pair": asdict(pair),
              "shown_left": shown_left, "picked": None}
    return (gr.update(value=out[0][1], label=labels[0]), gr.update(value=out[1][1], label=labels[1]),
            reveal, "" if not blind else "*Which one is better? Pick, then see who wrote it.*")


def pick(which: int, reveal: dict | None, annotator: str, request: gr.Request = None):
    """Reveal the names; a blind pick is stored as a vote (class mode: by the login name,
    whatever `annotator` says). One pick per generation: once the names are shown, a pick
    cannot change (generate again for a new blind pair)."""
    if not reveal:
        raise gr.Error("Generate two responses first.")
    if reveal.get("picked") is not None:
        raise gr.Error(f"You picked Response {reveal['picked'] + 1} already and the names are "
                       "out, so the pick cannot change. Generate again for a new pair.")
    user = current_user(request)
    annotator = user.name if user.class_mode else checked_name(annotator)
    locked = (user.class_mode and not user.is_instructor
              and getattr(get_lab().settings, "labelling_locked", False))
    stored = ""
    if reveal.get("blind") and locked:
        stored = "\n\n*Not stored: labelling is locked by the instructor.*"
    elif reveal.get("blind"):
        if annotator:
            choice = display_to_choice("left" if which == 0 else "right", reveal["shown_left"])
            try:
                get_lab().store.record_vote(Pair(**reveal["pair"]), choice, annotator,
                                            reveal["shown_left"], source="compare")
            except LabelError as err:
                raise gr.Error(str(err))
            stored = f"\n\n*Stored as a vote by {plain(annotator)}.*"
        else:
            stored = ("\n\n*Not stored: type your annotator name in the Label tab to have "
                      "your blind picks counted.*")
    lines = []
    for i, (name, response, ended) in enumerate(reveal["out"]):
        mark = " ← your pick" if i == which else ""
        lines.append(f"**Response {i + 1}**: {plain(_label(name, user))}"
                     f"{_gold(reveal['prompt'], response, ended)}{mark}")
    return "\n\n".join(lines) + stored, {**reveal, "picked": which}


def _label(policy: str, user: User | None = None) -> str:
    return {v: k for k, v in policy_choices(user)}.get(policy, policy)


def refresh(request: gr.Request = None):
    """Both policy lists again, for the user of this page."""
    choices = policy_choices(watch.viewer(request))
    return gr.update(choices=choices), gr.update(choices=choices)


def build() -> dict:
    with gr.Row():
        question = gr.Dropdown(EXAMPLES, value=EXAMPLES[0], allow_custom_value=True,
                               label="Prompt (pick one or type your own)", scale=3)
        max_tokens = forms.BoundedNumber(40, label="Max new tokens", precision=0, scale=1,
                                         minimum=MAX_TOKENS.lo, maximum=MAX_TOKENS.hi, step=1,
                                         elem_id="compare-max-tokens")
    with gr.Row():
        policy_a = gr.Dropdown(policy_choices(), value="toy", label="Policy 1",
                               allow_custom_value=True)
        policy_b = gr.Dropdown(policy_choices(), value="toy", label="Policy 2",
                               allow_custom_value=True, elem_id="compare-policy-b")
        b_refresh = gr.Button("↻ checkpoints", size="sm", scale=0, min_width=120)
    with gr.Row():
        blind = gr.Checkbox(False, label="Blind mode (hide the names until you pick)")
        b_gen = gr.Button("Generate", variant="primary", elem_id="compare-generate")
    with gr.Row(equal_height=True):
        out_1 = gr.Textbox(label="Response 1", lines=5, interactive=False, elem_id="compare-1")
        out_2 = gr.Textbox(label="Response 2", lines=5, interactive=False, elem_id="compare-2")
    with gr.Row():
        pick_1 = gr.Button("1 is better", size="sm")
        pick_2 = gr.Button("2 is better", size="sm")
    revealed = gr.Markdown(elem_id="compare-revealed")
    reveal = gr.State(None)
    b_gen.click(compare, [question, policy_a, policy_b, blind, max_tokens],
                [out_1, out_2, reveal, revealed], api_name="compare")
    b_refresh.click(refresh, None, [policy_a, policy_b], api_visibility="private")
    return {"policy_a": policy_a, "policy_b": policy_b, "picks": (pick_1, pick_2),
            "reveal": reveal, "revealed": revealed, "refresh": refresh}


def picker(which: int):
    """The handler of pick button `which` (0 or 1), with the request of its click."""
    def on_pick(reveal, annotator, request: gr.Request):
        return pick(which, reveal, annotator, request)
    return on_pick


def wire_picks(parts: dict, annotator: gr.Textbox) -> None:
    """The pick buttons need the Label tab's name box (built after this tab; in class mode
    its value is ignored: the login name votes)."""
    for which, button in enumerate(parts["picks"]):
        button.click(picker(which), [parts["reveal"], annotator],
                     [parts["revealed"], parts["reveal"]], api_name=f"compare_pick_{which + 1}")
