"""The PPO tab: a form over moss_lab.ppo.PPOConfig, Launch/Stop, live curves.

Every default, choice and help text comes from PPOConfig (through moss_lab.app.forms), and
PPOConfig refuses settings that cannot work: the tab shows its message. Runs go through
the run manager (moss_lab.runs): they keep going when the browser closes, and reopening
the page shows the newest run again.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pandas as pd

from moss_lab.configs import field_help
from moss_lab.files import read_jsonl
from moss_lab.ppo import PRESETS, PPOConfig
from moss_lab.run_folder import new_run_name
from moss_lab.runs import QueueFullError, RunError, ppo_job, validate_name
from moss_lab.toyworld import question_of

from . import forms, watch
from .context import PLOT_METRICS, fmt, get_lab, gpu_available, has_policy

# The fields on the form (label shown), then the rest of PPO-max in an accordion. The
# on/off fields of PPOConfig are the switches.
FORM = {"kl_coef": "β: KL penalty (kl_coef)", "lr": "Learning rate", "iterations": "Iterations",
        "batch_size": "Batch (prompts per rollout)", "minibatch_size": "Minibatch",
        "max_new_tokens": "Max new tokens", "seed": "Seed", "prompts": "Prompts"}
MORE = ["kl_estimator", "reward_clip", "value_clip", "max_grad_norm", "critic_init",
        "critic_pretrain_steps"]
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


def reward_choices() -> list[tuple[str, str]]:
    out = [("toy reward model (cached)", "toy"), ("gold score (oracle)", "gold")]
    for r in get_lab().runs.list():
        if r.kind == "reward" and r.state in ("finished", "stopped") and (r.path / "model").is_dir():
            out.append((f"reward run {r.name}", str(r.path / "model")))
    return out


def policy_choices() -> list[tuple[str, str]]:
    out = [("toy base model", "toy")]
    for r in get_lab().runs.list():
        if has_policy(r):
            out.append((f"{r.kind.upper()} run {r.name}", str(r.path / "policy")))
    return out


def launch(name, preset, policy, reward, device, switches, *values):
    """Queue a PPO run; `values` are the FORM fields, then the MORE fields."""
    problems = []
    try:
        name = validate_name(name)
    except RunError as err:
        problems.append(str(err))
    fields, unreadable = forms.parse(PPOConfig, dict(zip([*FORM, *MORE], values)))
    problems += unreadable
    fields.update({s: s in (switches or []) for s in SWITCHES})
    config = None
    if preset in PRESETS and PRESETS[preset].device == "cuda" and not gpu_available():
        problems.append(f"the {preset} preset needs a CUDA GPU and there is none here; "
                        f"choose {DEFAULT_PRESET}")
    prompts = fields.get("prompts")
    if prompts and prompts != "toy" and not Path(prompts).is_file():
        problems.append(f"prompts file {prompts!r} not found: give a .txt or .jsonl file "
                        "(one prompt per line), or 'toy'")
    if not (reward or "").strip():
        problems.append("choose a reward model (Reward)")
    if not unreadable:
        try:
            config = PPOConfig.preset(preset, policy=policy or "toy", reward=reward or "toy",
                                      device=None if device == "auto" else device, **fields)
        except ValueError as err:  # PPOConfig names the field
            problems.append(str(err))
    if problems:
        raise gr.Error("Not launched: " + "; ".join(problems))
    if device == "cuda" and not gpu_available():
        raise gr.Error("Not launched: no CUDA GPU here; choose cpu or auto.")
    where = device if device != "auto" else ("cuda" if gpu_available() else "cpu")
    try:
        get_lab().runs.submit(name, "ppo", config.to_dict(), ppo_job, device=where)
    except (QueueFullError, RunError) as err:
        raise gr.Error(f"Not launched: {err}")
    gr.Info(f"Run {name} queued.", duration=4)
    return name, watch.status_line(name), None, default_name()


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
    device = values["device"] if values["device"] in ("cpu", "cuda") else "auto"
    return (values["policy"], values["reward"], device,
            *[values[f] for f in fields], [s for s in SWITCHES if values[s]])


def default_name() -> str:
    return new_run_name("ppo", get_lab().runs.root)


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


def tick(watched, seen, metrics):
    status, *plots, now = watch.tick(watched, seen, metrics, "iteration", "iterations")
    table = gr.skip() if now == seen else samples_table(watched)
    # a run that just ended has a policy to fine-tune further (and to compare)
    policies = (gr.update(choices=policy_choices()) if watch.finished_now(seen, now)
                else gr.skip())
    return (status, *plots, table, now, policies)


def run_status(name: str) -> dict:
    """A run's state and metric rows as read from its folder (for API clients)."""
    try:
        info = get_lab().runs.get(name)
    except RunError as err:
        raise gr.Error(str(err))
    return {"state": info.state, "reason": info.reason, "kind": info.kind,
            "metrics": get_lab().runs.metrics(name)}


def stop_run(name: str) -> str:
    """Ask a run to stop (for API clients; the Stop button stops the run on screen)."""
    return watch.stop(name)


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
            devices = ["auto", "cpu"] + (["cuda"] if gpu_available() else [])
            device = gr.Dropdown(devices, value="auto", label="Device (auto: GPU when present)",
                                 elem_id="ppo-device")
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
            status, plots = watch.curves("ppo", PLOT_METRICS, "iteration", per_row=3)
            samples = gr.Dataframe(samples_table(None), label="Recent samples (newest first)",
                                   wrap=True, interactive=False, elem_id="ppo-samples",
                                   column_widths=["9%", "22%", "49%", "10%", "10%"])
    preset.change(preset_values, preset, [policy, reward, *numbers, *more, switches],
                  api_visibility="private")
    b_launch.click(launch, [name, preset, policy, reward, device, switches, *numbers, *more],
                   [watched, status, seen, name], api_name="ppo_launch")
    b_stop.click(watch.stop, watched, status, api_visibility="private")
    timer = gr.Timer(1.0)
    timer.tick(lambda w, s: tick(w, s, list(PLOT_METRICS)), [watched, seen],
               [status, *plots, samples, seen, policy],
               show_progress="hidden", concurrency_limit=None, api_visibility="private")
    form = [policy, reward, device, *numbers, *more, switches]
    demo.load(lambda: watch.latest_run("ppo"), None, watched, api_visibility="private").then(
        form_of, watched, form, api_visibility="private")
    gr.api(run_status, api_name="run_status")
    gr.api(stop_run, api_name="stop_run")
    return {"policy": policy, "reward": reward,
            "refresh": lambda: (gr.update(choices=policy_choices()),
                                gr.update(choices=reward_choices()))}
