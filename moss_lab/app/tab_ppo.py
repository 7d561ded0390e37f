"""The PPO tab: a form over moss_lab.ppo.PPOConfig, Launch/Stop, live curves.

Every default, choice and help text comes from PPOConfig (through moss_lab.app.forms), and
PPOConfig refuses settings that cannot work: the tab shows its message. Runs go through
the run manager (moss_lab.runs): they keep going when the browser closes, and reopening
the page shows the newest run again. The device list shows what is here (CPU, each GPU
with its memory), and a memory estimate under it follows the form (moss_lab.memory).

Class mode (issue #14): a run belongs to the login that launched it; the policy and reward
lists hold the built-in models, one's own runs and the instructor's (moss_lab.app.watch
says who may load what), and a launch is bounded (moss_lab.limits) and counted against the
class's run limits.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import gradio as gr
import pandas as pd

from moss_lab.configs import field_help
from moss_lab.device import available_devices, device_memory_gib
from moss_lab.files import read_jsonl
from moss_lab.ppo import PRESETS, PPOConfig
from moss_lab.runs import RunError, ppo_job, validate_name
from moss_lab.toyworld import question_of

from . import forms, watch
from .context import PLOT_METRICS, fmt, get_lab, gpu_available, has_policy
from .session import User, current_user

# The fields on the form (label shown), then the rest of PPO-max in an accordion. The
# on/off fields of PPOConfig are the switches.
FORM = {"kl_coef": "β: KL penalty (kl_coef)", "lr": "Learning rate", "iterations": "Iterations",
        "batch_size": "Batch (prompts per rollout)", "minibatch_size": "Minibatch",
        "max_new_tokens": "Max new tokens", "seed": "Seed", "prompts": "Prompts"}
MORE = ["kl_estimator", "reward_clip", "value_clip", "max_grad_norm", "critic_init",
        "critic_pretrain_steps", "precision", "lora_rank", "lora_alpha", "lora_targets"]
SWITCHES = forms.bool_fields(PPOConfig)
DEFAULT_PRESET = "toy-fast"


def preset_names() -> list[str]:
    """The presets this machine can run: a preset for CUDA only where there is a GPU."""
    return [n for n, c in PRESETS.items() if c.device != "cuda" or gpu_available()]


def switches_of(config: PPOConfig) -> list[str]:
    return [name for name in SWITCHES if getattr(config, name)]


def preset_values(name: str):
    """The form filled from a preset: policy, reward, the FORM and MORE fields, switches."""
    c = PRESETS[name]
    return (c.policy, c.reward, *[getattr(c, f) for f in [*FORM, *MORE]], switches_of(c))


def switches_help() -> str:
    return "\n".join(f"- `{name}`: {field_help(PPOConfig, name)}" for name in SWITCHES)


REWARDS = ("toy", "gold")  # the built-in rewards: the cached toy reward model, the oracle
POLICIES = ("toy",)


def reward_choices(user: User | None = None) -> list[tuple[str, str]]:
    """The rewards `user` may pick: built-in, then reward runs with a model (own and the
    instructor's in class mode; without a user in class mode: built-in only)."""
    out = [("toy reward model (cached)", "toy"), ("gold score (oracle)", "gold")]
    for r in watch.loadable_runs(user or watch.viewer()):
        if r.kind == "reward" and r.state in ("finished", "stopped") and (r.path / "model").is_dir():
            out.append((f"reward run {r.id}", str(r.path / "model")))
    return out


def policy_choices(user: User | None = None) -> list[tuple[str, str]]:
    """The policies `user` may start from or compare: the toy base model, then runs that
    saved a policy (own and the instructor's in class mode)."""
    out = [("toy base model", "toy")]
    for r in watch.loadable_runs(user or watch.viewer()):
        if has_policy(r):
            out.append((f"{r.kind.upper()} run {r.id}", str(r.path / "policy")))
    return out


def checked_models(user: User, policy: str | None, reward: str | None):
    """(policy, reward) if `user` may load them (gr.Error otherwise, see watch.checked_model)."""
    return (watch.checked_model(policy, user, "policy", policy_choices(user), POLICIES),
            watch.checked_model(reward, user, "reward", reward_choices(user), REWARDS))


def default_device() -> str:
    """The first GPU when there is one, else the CPU."""
    return "cuda:0" if gpu_available() else "cpu"


def parse_form(values) -> tuple[dict, list[str]]:
    """(PPOConfig fields, problems) of the FORM and MORE values; an empty Prompts is left
    for missing_inputs(), which says how to get prompts."""
    given = dict(zip([*FORM, *MORE], values))
    empty_prompts = not str(given.get("prompts") or "").strip()
    fields, unreadable = forms.parse(PPOConfig, {k: v for k, v in given.items()
                                                 if not (k == "prompts" and empty_prompts)})
    if empty_prompts:
        fields["prompts"] = ""
    return fields, unreadable


def form_config(preset, policy, reward, device, switches, values) -> PPOConfig:
    """The PPOConfig the form describes (ValueError: a field PPOConfig refuses). An empty
    policy or reward falls back to the preset's: "toy" for toy-fast, nothing for gpu-small
    (missing_inputs() then says what to give)."""
    fields, unreadable = parse_form(values)
    if unreadable:
        raise ValueError("; ".join(unreadable))
    fields.update({s: s in (switches or []) for s in SWITCHES})
    base = PRESETS.get(preset, PRESETS[DEFAULT_PRESET])
    return dataclasses.replace(base, policy=policy or base.policy, reward=reward or base.reward,
                               device=None if device == "auto" else device, **fields)


def memory_text(preset, policy, reward, device, switches, *values) -> str:
    """The memory estimate line under the device choice (model configs only, no weights)."""
    from moss_lab.memory import describe, estimate_for_config

    try:
        config = form_config(preset, policy, reward, device, switches, values)
        if config.missing_inputs():
            return "*memory estimate: once the policy, reward model and prompts are chosen*"
        where = device if device not in (None, "", "auto") else default_device()
        return f"*{describe(estimate_for_config(config, where), device_memory_gib(where))}*"
    except Exception as err:  # a half-typed folder name: say so, do not fail the form
        return f"*memory estimate: unavailable ({type(err).__name__}: {err})*"


def launch(name, preset, policy, reward, device, switches, *values, user: User | None = None):
    """Queue a PPO run for `user` (None: the request-less caller, single-user mode);
    `values` are the FORM fields, then the MORE fields."""
    user = user or current_user(None)
    policy, reward = checked_models(user, policy, reward)
    problems = []
    try:
        name = validate_name(name)
    except RunError as err:
        problems.append(str(err))
    fields, unreadable = parse_form(values)
    problems += unreadable
    config = None
    if preset in PRESETS and PRESETS[preset].device == "cuda" and not gpu_available():
        problems.append(f"the {preset} preset needs a CUDA GPU and there is none here; "
                        f"choose {DEFAULT_PRESET}")
    prompts = fields.get("prompts")
    if prompts and prompts != "toy" and user.class_mode:  # a file on the server: no
        problems.append("prompts must be 'toy' in class mode (files on the server are not "
                        "offered)")
    elif prompts and prompts != "toy" and not Path(prompts).is_file():
        problems.append(f"prompts file {prompts!r} not found: give a .txt or .jsonl file "
                        "(one prompt per line), or 'toy'")
    if not unreadable and preset in PRESETS:
        try:
            config = form_config(preset, policy, reward, device, switches, values)
            missing = config.missing_inputs()  # gpu-small: policy, reward model, prompts
            problems += ["missing " + "; ".join(missing)] if missing else []
        except ValueError as err:  # PPOConfig names the field
            problems.append(str(err))
    if problems:
        raise gr.Error("Not launched: " + "; ".join(problems))
    if str(device).startswith("cuda") and not gpu_available():
        raise gr.Error("Not launched: no CUDA GPU here; choose cpu.")
    where = device if device not in (None, "", "auto") else default_device()
    run = watch.submit(user, name, "ppo", config.to_dict(), ppo_job, where)
    gr.Info(f"Run {name} queued.", duration=4)
    return run, watch.status_line(run), None, default_name(user)


def launch_event(request: gr.Request, *args):
    """The Launch button: launch() for the logged-in user."""
    return launch(*args, user=current_user(request))


def form_of(name: str | None):
    """The form filled with a run's settings (a reloaded page shows the run it follows)."""
    fields = [*FORM, *MORE]
    try:
        config = get_lab().runs.get(name).config if name else None
    except RunError:
        config = None
    if not config:
        return tuple(gr.skip() for _ in range(len(fields) + 4))
    known = PPOConfig().to_dict()
    values = {**known, **{k: v for k, v in config.items() if k in known}}
    present = [value for _, value in available_devices()]
    device = {"cuda": "cuda:0"}.get(values["device"], values["device"])
    device = device if device in present else default_device()
    return (values["policy"], values["reward"], device,
            *[values[f] for f in fields], [s for s in SWITCHES if values[s]])


def default_name(user: User | None = None) -> str:
    return watch.new_name("ppo", user or watch.viewer())


def samples_table(name: str | None) -> pd.DataFrame:
    cols = ["iter", "prompt", "response", "score", "gold"]  # short: no header cut off
    if not name:
        return pd.DataFrame(columns=cols)
    try:
        samples = read_jsonl(get_lab().runs.get(name).path / "samples.jsonl")[-8:]
    except RunError:
        samples = []
    rows = []
    for s in reversed(samples):
        rows.append([s["iteration"], question_of(s["prompt"]), s["response"], fmt(s.get("score"), 2),
                     fmt(s.get("gold"), 2)])
    return pd.DataFrame(rows, columns=cols)


def tick(watched, seen, metrics, user: User | None = None):
    status, *plots, now = watch.tick(watched, seen, metrics, "iteration", "iterations")
    table = gr.skip() if now == seen else samples_table(watched)
    # a run that just ended has a policy to fine-tune further (and to compare)
    policies = (gr.update(choices=policy_choices(user)) if watch.finished_now(seen, now)
                else gr.skip())
    return (status, *plots, table, now, policies)


def run_status(name: str, request: gr.Request = None) -> dict:
    """A run's state and metric rows as read from its folder (for API clients: a run the
    caller may see)."""
    info = watch.run_for(name, current_user(request))
    return {"state": info.state, "reason": info.reason, "kind": info.kind,
            "queue": watch.queue_text(info).strip(" ·"),
            "metrics": get_lab().runs.metrics(name)}


def stop_run(name: str, request: gr.Request = None) -> str:
    """Ask a run to stop (for API clients; the Stop button stops the run on screen): the
    caller's own run, or any run for the instructor."""
    return watch.stop(name, request)


def refresh(request: gr.Request = None):
    """The policy and reward lists again, for the user of this page."""
    user = watch.viewer(request)
    return gr.update(choices=policy_choices(user)), gr.update(choices=reward_choices(user))


def opened(request: gr.Request = None):
    """The run to follow when the page opens (the user's newest), the model lists and a
    fresh run name (in the user's own folder)."""
    user = watch.viewer(request)
    return (watch.latest_run("ppo", user), gr.update(choices=policy_choices(user)),
            gr.update(choices=reward_choices(user)), default_name(user))


def build(demo: gr.Blocks) -> dict:
    watched = gr.State(None)
    seen = gr.State(None)
    default = PRESETS[DEFAULT_PRESET]
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            name = gr.Textbox(label="Run name", value=default_name, elem_id="ppo-name")
            preset = gr.Dropdown(preset_names(), value=DEFAULT_PRESET, label="Preset",
                                 elem_id="ppo-preset")
            policy = gr.Dropdown(policy_choices(), value="toy", label="Policy",
                                 allow_custom_value=True, info=field_help(PPOConfig, "policy"))
            reward = gr.Dropdown(reward_choices(), value="toy", label="Reward",
                                 allow_custom_value=True, info=field_help(PPOConfig, "reward"),
                                 elem_id="ppo-reward")
            device = gr.Dropdown(available_devices(), value=default_device(), label="Device",
                                 elem_id="ppo-device")
            memory = gr.Markdown(elem_id="ppo-memory")
            numbers = [forms.field_input(PPOConfig, default, f, label, elem_id=f"ppo-{f}")
                       for f, label in FORM.items()]
            switches = gr.CheckboxGroup(SWITCHES, value=switches_of(default), label="Switches",
                                        elem_id="ppo-switches")
            with gr.Accordion("More PPO-max settings, and what the switches do", open=False):
                more = [forms.field_input(PPOConfig, default, f, elem_id=f"ppo-{f}")
                        for f in MORE]
                gr.Markdown(switches_help())
            b_launch, b_stop = watch.controls("ppo", "Launch PPO")
        with gr.Column(scale=3):
            # 3 + 3: what PPO optimises, then the pattern-collapse signals (context.py)
            status, plots = watch.curves("ppo", PLOT_METRICS, "iteration", per_row=3)
            samples = gr.Dataframe(samples_table(None), label="Recent samples (newest first)",
                                   wrap=True, interactive=False, elem_id="ppo-samples",
                                   column_widths=["9%", "22%", "49%", "10%", "10%"])
    preset.change(preset_values, preset, [policy, reward, *numbers, *more, switches],
                  api_visibility="private")
    estimate_inputs = [preset, policy, reward, device, switches, *numbers, *more]
    gr.on([c.change for c in estimate_inputs], memory_text, estimate_inputs, memory,
          show_progress="hidden", trigger_mode="always_last", api_visibility="private")
    b_launch.click(launch_event, [name, preset, policy, reward, device, switches, *numbers,
                                  *more], [watched, status, seen, name], api_name="ppo_launch")
    b_stop.click(watch.stop, watched, status, api_visibility="private")

    def on_tick(w, s, request: gr.Request):
        return tick(w, s, list(PLOT_METRICS), watch.viewer(request))

    timer = gr.Timer(1.0)
    timer.tick(on_tick, [watched, seen], [status, *plots, samples, seen, policy],
               show_progress="hidden", concurrency_limit=None, api_visibility="private")
    form = [policy, reward, device, *numbers, *more, switches]
    demo.load(opened, None, [watched, policy, reward, name], api_visibility="private").then(
        form_of, watched, form, api_visibility="private").then(
        memory_text, estimate_inputs, memory, api_visibility="private")
    gr.api(run_status, api_name="run_status")
    gr.api(stop_run, api_name="stop_run")
    return {"policy": policy, "reward": reward, "refresh": refresh}
