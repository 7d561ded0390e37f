"""The methods beside PPO in the Train tab: DPO, GRPO, RLOO and best-of-n.

Each form is built from the method's config dataclass (moss_lab.methods.train_*) through
moss_lab.app.forms: defaults, choices and help come from the config, and the config
refuses settings that cannot work (the tab shows its message). Runs go through the run
manager (moss_lab.runs) like PPO runs; every method writes the same metrics, one row per
step, so one set of curves follows whichever run was launched last.

Class mode: as in the PPO tab, the model lists hold what the user may load (built-in
models, own runs, the instructor's), a launch is bounded (moss_lab.limits) and the run is
the user's. DPO's data is the simulated toy labels or the app's label store, never a file.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from moss_lab import runs
from moss_lab.configs import field_help
from moss_lab.files import read_jsonl
from moss_lab.methods.train_best_of_n import BestOfNConfig
from moss_lab.methods.train_dpo import DPOTrainConfig, load_pairs, usable_pairs
from moss_lab.methods.train_grpo import GRPOTrainConfig
from moss_lab.methods.train_rloo import RLOOTrainConfig
from moss_lab.methods.training import MethodError
from moss_lab.toyworld import question_of

from . import forms, watch
from .context import PLOT_METRICS, fmt, get_lab, gpu_available
from .session import User, annotator_of, current_user
from .tab_ppo import POLICIES, REWARDS, policy_choices, reward_choices


@dataclass
class Method:
    kind: str          # the run kind (run names, the Runs tab)
    config: type       # its config dataclass
    job: object        # its job in moss_lab.runs
    main: list         # the fields on the form; the others go in an accordion
    about: str         # one line for the learner

    def more(self) -> list[str]:
        """The other fields, the method's own first (device: where the run manager runs it)."""
        own_first = [n for c in self.config.__mro__ for n in vars(c).get("__annotations__", {})]
        fields = {f.name for f in dataclasses.fields(self.config)} - {*self.main, "device"}
        return [n for n in dict.fromkeys(own_first) if n in fields]


ONLINE = ["policy", "reward", "steps", "group_size", "prompts_per_step", "beta", "lr", "seed"]
METHODS = {
    "DPO": Method("dpo", DPOTrainConfig, runs.dpo_job,
                  ["policy", "data", "pairs", "beta", "loss_type", "epochs", "lr", "seed"],
                  "learns straight from preference pairs (chosen vs rejected): no reward model "
                  "and no sampling while training. It can train on your own labels (data)."),
    "GRPO": Method("grpo", GRPOTrainConfig, runs.grpo_job, ONLINE,
                   "samples a group of responses per prompt; a response's advantage is its "
                   "reward minus the group's mean, over the group's std: no critic."),
    "RLOO": Method("rloo", RLOOTrainConfig, runs.rloo_job, ONLINE,
                   "REINFORCE with a leave-one-out baseline: each response is compared with "
                   "the mean reward of the other responses to its prompt."),
    "best-of-n": Method("best-of-n", BestOfNConfig, runs.best_of_n_job,
                        ["policy", "reward", "ns", "pool", "eval_prompts", "seed"],
                        "no training: sample n responses and keep the one the reward model "
                        "likes best. One point per n of the ladder (step 1, 2, ...)."),
}
CHOICES = ["PPO", *METHODS]
ABOUT_PPO = ("samples responses, scores them with the reward model and climbs a clipped "
             "policy gradient with a critic and a KL penalty (MOSS-RLHF's PPO-max).")
CURVES = {m: PLOT_METRICS[m] for m in
          ("reward/score", "reward/gold", "objective/kl", "response/length")}
LABELS = {"data": "Preference pairs (data)", "reward": "Reward", "eval_reward": "Reward (evaluation)",
          "policy": "Policy (start from)", "ns": "n ladder (ns)"}


def about(choice: str) -> str:
    text = METHODS[choice].about if choice in METHODS else ABOUT_PPO
    return f"**{choice}** {text}"


def data_choices() -> list[tuple[str, str]]:
    """DPO's data: simulated toy labels, or the votes in the app's own label store."""
    return [("simulated toy labels", "toy"),
            ("your labels (Label tab)", str(get_lab().store.path))]


LISTS = {"policy": policy_choices, "reward": reward_choices, "eval_reward": reward_choices,
         "data": data_choices}  # fields picked from a list that grows with the runs


def field_input(m: Method, name: str, prefix: str):
    """A form input: a list of models (or of label sets) for LISTS, else from the config."""
    default, kw = m.config(), {"label": LABELS.get(name, name), "elem_id": f"{prefix}-{name}"}
    if name not in LISTS:
        return forms.any_input(m.config, default, name, **kw)
    return gr.Dropdown(LISTS[name](), value=getattr(default, name), allow_custom_value=True,
                       info=field_help(m.config, name), **kw)


def checked_fields(fields: dict, user: User) -> dict:
    """The model and data fields if `user` may load them (gr.Error otherwise)."""
    out = dict(fields)
    for key in ("policy", "reward", "eval_reward"):
        if key in out:
            choices = policy_choices(user) if key == "policy" else reward_choices(user)
            out[key] = watch.checked_model(out[key], user, key, choices,
                                           POLICIES if key == "policy" else REWARDS)
    if "data" in out:
        out["data"] = watch.checked_model(out["data"], user, "data", data_choices(),
                                          ("toy", "labels"))
    return out


def problems_of(config) -> list[str]:
    """What the config cannot check by itself: reward folders, DPO's labels."""
    out = []
    for key in ("reward", "eval_reward"):
        spec = getattr(config, key, "toy")
        if spec not in ("toy", "gold") and not Path(spec).is_dir():
            out.append(f"{key} {spec!r} not found: choose toy, gold or a reward run")
    if isinstance(config, DPOTrainConfig) and config.data != "toy":
        try:
            usable_pairs(load_pairs(config), config)
        except MethodError as err:
            out.append(str(err))
    return out


def launch(choice: str, name: str, *values, user: User | None = None):
    """Queue a run of method `choice` for `user` (None: the request-less caller, single-user
    mode); `values` are its main fields, then the others."""
    user = user or current_user(None)
    m, problems = METHODS[choice], []
    try:
        name = runs.validate_name(name)
    except runs.RunError as err:
        problems.append(str(err))
    fields, problems_read = forms.parse_any(m.config, dict(zip(m.main + m.more(), values)))
    fields = checked_fields(fields, user)
    if annotator_of(user) and "annotator" in {f.name for f in dataclasses.fields(m.config)}:
        fields["annotator"] = annotator_of(user)  # a student's own labels, whatever was sent
    problems += problems_read
    if not problems_read:
        try:
            config = m.config(**fields)
            problems += problems_of(config)
        except ValueError as err:  # the config names the field
            problems.append(str(err))
    if problems:
        raise gr.Error("Not launched: " + "; ".join(problems))
    run = watch.submit(user, name, m.kind, config.to_dict(), m.job,
                       "cuda" if gpu_available() else "cpu")
    gr.Info(f"Run {name} queued.", duration=4)
    return (run, watch.status_line(run, x="step", total_key="steps"), None,
            default_name(choice, user))


def default_name(choice: str, user: User | None = None) -> str:
    return watch.new_name(METHODS[choice].kind, user or watch.viewer())


def samples_table(name: str | None) -> pd.DataFrame:
    cols = ["step", "prompt", "response", "score", "gold"]
    try:
        samples = read_jsonl(get_lab().runs.get(name).path / "samples.jsonl")[-8:] if name else []
    except runs.RunError:
        samples = []
    return pd.DataFrame([[s.get("step"), question_of(s["prompt"]), s["response"],
                          fmt(s.get("score"), 2), fmt(s.get("gold"), 2)]
                         for s in reversed(samples)], columns=cols)


def stop(name: str | None, request: gr.Request = None) -> str:
    watch.stop(name, request)
    return watch.status_line(name, x="step", total_key="steps")


def tick(watched, seen):
    status, *plots, now = watch.tick(watched, seen, list(CURVES), "step", "steps")
    return (status, *plots, gr.skip() if now == seen else samples_table(watched), now)


def pick(choice: str, request: gr.Request = None):
    """Show the chosen method's form and follow its newest run (PPO: the PPO panel)."""
    kind = METHODS[choice].kind if choice in METHODS else None
    boxes = [gr.Column(visible=c == choice) for c in METHODS]
    latest = watch.latest_run(kind, watch.viewer(request)) if kind else None
    return (about(choice), gr.Column(visible=kind is None), gr.Column(visible=kind is not None),
            *boxes, latest, None, gr.Timer(active=bool(kind)))


def launcher(choice: str):
    def launch_method(request: gr.Request, name, *values):
        return launch(choice, name, *values, user=current_user(request))
    return launch_method


def build(method: gr.Radio, note: gr.Markdown, ppo_box: gr.Column) -> dict:
    """The panel beside PPO's (`ppo_box`), shown when `method` is not PPO; `note` says what
    the chosen method does."""
    watched, seen = gr.State(None), gr.State(None)
    boxes, forms_, lists = [], [], []
    with gr.Column(visible=False) as panel, gr.Row():
        with gr.Column(scale=1, min_width=300):
            for choice, m in METHODS.items():
                prefix = m.kind.replace("best-of-n", "bon")
                with gr.Column(visible=False) as box:
                    name = gr.Textbox(label="Run name", value=lambda c=choice: default_name(c),
                                      elem_id=f"{prefix}-name")
                    inputs = [field_input(m, f, prefix) for f in m.main]
                    with gr.Accordion(f"More {choice} settings", open=False):
                        inputs += [field_input(m, f, prefix) for f in m.more()]
                    buttons = watch.controls(prefix, f"Launch {choice}")
                boxes.append(box)
                forms_.append((choice, name, inputs, *buttons))
                lists += [(i, LISTS[f]) for f, i in zip(m.main + m.more(), inputs) if f in LISTS]
        with gr.Column(scale=3):
            status, plots = watch.curves("methods", CURVES, "step", per_row=2)
            samples = gr.Dataframe(samples_table(None), label="Recent samples (newest first)",
                                   wrap=True, interactive=False, elem_id="methods-samples",
                                   column_widths=["9%", "22%", "49%", "10%", "10%"])
    for choice, name, inputs, b_launch, b_stop in forms_:
        b_launch.click(launcher(choice), [name, *inputs], [watched, status, seen, name],
                       api_name=f"{METHODS[choice].kind.replace('-', '_')}_launch")
        b_stop.click(stop, watched, status, api_visibility="private")
    timer = gr.Timer(1.0, active=False)
    timer.tick(tick, [watched, seen], [status, *plots, samples, seen], show_progress="hidden",
               concurrency_limit=None, api_visibility="private")
    method.change(pick, method, [note, ppo_box, panel, *boxes, watched, seen, timer],
                  api_visibility="private")
    def refresh(request: gr.Request = None):
        """The model lists again, for the user of this page."""
        user = watch.viewer(request)
        return tuple(gr.update(choices=fn(user) if fn is not data_choices else fn())
                     for _, fn in lists)

    return {"lists": [d for d, _ in lists], "refresh": refresh}
