"""The PPO tab: a form over moss_lab.ppo.PPOConfig, Launch/Stop, live curves.

Every default, choice and help text comes from PPOConfig (through moss_lab.app.forms), and
PPOConfig refuses settings that cannot work: the tab shows its message. Runs go through
the run manager (moss_lab.runs): they keep going when the browser closes, and reopening
the page shows the newest run again. The device list shows what is here (CPU, each GPU
with its memory), and a memory estimate under it follows the form (moss_lab.memory).
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


def launch(name, preset, policy, reward, device, switches, *values):
    """Queue a PPO run; `values` are the FORM fields, then the MORE fields."""
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
    if prompts and prompts != "toy" and not Path(prompts).is_file():
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
    present = [value for _, value in available_devices()]
    device = {"cuda": "cuda:0"}.get(values["device"], values["device"])
    device = device if device in present else default_device()
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
    b_launch.click(launch, [name, preset, policy, reward, device, switches, *numbers, *more],
                   [watched, status, seen, name], api_name="ppo_launch")
    b_stop.click(watch.stop, watched, status, api_visibility="private")
    timer = gr.Timer(1.0)
    timer.tick(lambda w, s: tick(w, s, list(PLOT_METRICS)), [watched, seen],
               [status, *plots, samples, seen, policy],
               show_progress="hidden", concurrency_limit=None, api_visibility="private")
    form = [policy, reward, device, *numbers, *more, switches]
    demo.load(lambda: watch.latest_run("ppo"), None, watched, api_visibility="private").then(
        form_of, watched, form, api_visibility="private").then(
        memory_text, estimate_inputs, memory, api_visibility="private")
    gr.api(run_status, api_name="run_status")
    gr.api(stop_run, api_name="stop_run")
    return {"policy": policy, "reward": reward,
            "refresh": lambda: (gr.update(choices=policy_choices()),
                                gr.update(choices=reward_choices()))}
