"""The PPO tab: a config form over moss_lab.ppo.PPOConfig, Launch/Stop, live curves.

Runs go through the run manager (moss_lab.runs): they keep going when the browser closes,
and reopening the page shows the newest run again.
"""
from __future__ import annotations

import math
import time

import gradio as gr
import pandas as pd

from moss_lab.runs import QueueFullError, RunError, ppo_job, read_jsonl, validate_name

from . import watch
from .context import PLOT_METRICS, fmt, get_lab, gpu_available

try:
    from moss_lab.ppo import FIELD_DOCS, PRESETS, PPOConfig
except ImportError:  # the PPO library is not there (yet)
    PRESETS = None

# PPO-max switches shown as checkboxes: label -> (field, value when on, value when off)
SWITCHES = {
    "reward normalisation": ("reward_norm", True, False),
    "reward clipping (±5)": ("reward_clip", 5.0, None),
    "value-loss clipping (0.2)": ("value_clip", 0.2, None),
    "advantage normalisation": ("advantage_norm", True, False),
    "token-level KL penalty": ("token_level_kl", True, False),
    "gradient clipping (1.0)": ("max_grad_norm", 1.0, None),
    "critic from the reward model": ("critic_init", "reward", "policy"),
    "critic pre-training (2 rollouts)": ("critic_pretrain_steps", 2, 0),
}
FORM = ["kl_coef", "lr", "iterations", "batch_size", "minibatch_size", "max_new_tokens"]


def switches_of(config) -> list[str]:
    return [label for label, (name, on, _) in SWITCHES.items() if getattr(config, name) == on]


def preset_values(name: str):
    """The form filled from a preset."""
    c = PRESETS[name]
    return (*[getattr(c, f) for f in FORM], switches_of(c))


def reward_choices() -> list[tuple[str, str]]:
    out = [("toy reward model (trained on simulated labels, cached)", "toy"),
           ("gold score (oracle: teaching only)", "gold")]
    for r in get_lab().runs.list():
        if r.kind == "reward" and r.state in ("finished", "stopped") and (r.path / "model").is_dir():
            out.append((f"reward run {r.name}", str(r.path / "model")))
    return out


def policy_choices() -> list[tuple[str, str]]:
    out = [("toy base model", "toy")]
    for r in get_lab().runs.list():
        if r.kind == "ppo" and (r.path / "policy" / "config.json").is_file():
            out.append((f"PPO run {r.name}", str(r.path / "policy")))
    return out


def check_form(values: dict) -> list[str]:
    """Problems with the form, in words (the library trusts its config)."""
    problems = []
    for key in ("lr", "kl_coef"):
        v = values[key]
        if v is None or not math.isfinite(v):
            problems.append(f"{key} must be a number")
    if not problems:
        if values["lr"] <= 0 or values["lr"] > 1:
            problems.append(f"learning rate must be in (0, 1], got {values['lr']}")
        if values["kl_coef"] < 0:
            problems.append(f"β (kl_coef) must be >= 0, got {values['kl_coef']}")
    for key, low in (("iterations", 1), ("batch_size", 1), ("minibatch_size", 1),
                     ("max_new_tokens", 1)):
        v = values[key]
        if v is None or v != int(v) or v < low:
            problems.append(f"{key} must be a whole number >= {low}, got {v}")
    if not problems and values["minibatch_size"] > values["batch_size"]:
        problems.append("minibatch size must not exceed the batch size")
    return problems


def launch(name, preset, policy, reward, device, switches, *numbers):
    if PRESETS is None:
        raise gr.Error("The PPO library (moss_lab.ppo) is not available in this install.")
    values = dict(zip(FORM, numbers))
    problems = check_form(values)
    try:
        name = validate_name(name)
    except RunError as err:
        problems.insert(0, str(err))
    if problems:
        raise gr.Error("Not launched: " + "; ".join(problems))
    if device == "cuda" and not gpu_available():
        raise gr.Error("Not launched: no CUDA GPU here; choose cpu or auto.")
    overrides = {k: (int(v) if k not in ("lr", "kl_coef") else float(v)) for k, v in values.items()}
    for label, (field, on, off) in SWITCHES.items():
        overrides[field] = on if label in (switches or []) else off
    config = PPOConfig.preset(preset, policy=policy or "toy", reward=reward or "toy",
                              device=None if device == "auto" else device, **overrides)
    where = device if device != "auto" else ("cuda" if gpu_available() else "cpu")
    try:
        get_lab().runs.submit(name, "ppo", config.to_dict(), ppo_job, device=where)
    except (QueueFullError, RunError) as err:
        raise gr.Error(f"Not launched: {err}")
    gr.Info(f"Run {name} queued.", duration=4)
    return name, watch.status_line(name), None, default_name()


def default_name() -> str:
    return time.strftime("ppo-%m%d-%H%M%S")


def samples_table(name: str | None) -> pd.DataFrame:
    cols = ["iteration", "prompt", "response", "score", "gold"]
    if not name:
        return pd.DataFrame(columns=cols)
    try:
        samples = read_jsonl(get_lab().runs.get(name).path / "samples.jsonl")[-8:]
    except RunError:
        samples = []
    rows = []
    for s in reversed(samples):
        prompt = s["prompt"].replace("Human:", "").replace("Assistant:", "").strip()
        rows.append([s["iteration"], prompt, s["response"], fmt(s.get("score"), 2),
                     fmt(s.get("gold"), 2)])
    return pd.DataFrame(rows, columns=cols)


def tick(watched, seen, metrics):
    status, *plots, now = watch.tick(watched, seen, metrics, "iteration", "iterations")
    table = gr.skip() if now == seen else samples_table(watched)
    return (status, *plots, table, now)


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
    if PRESETS is None:
        gr.Markdown("### PPO is not available yet\nThe PPO library (`moss_lab.ppo`) is not "
                    "installed in this version; this tab will work once it is.")
        return {}
    watched = gr.State(None)
    seen = gr.State(None)
    default = PRESETS["toy-fast"]
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            name = gr.Textbox(label="Run name", value=default_name,
                              elem_id="ppo-name")
            preset = gr.Dropdown(list(PRESETS), value="toy-fast", label="Preset")
            policy = gr.Dropdown(policy_choices(), value="toy", label="Policy",
                                 allow_custom_value=True)
            reward = gr.Dropdown(reward_choices(), value="toy", label="Reward",
                                 allow_custom_value=True)
            devices = ["auto", "cpu"] + (["cuda"] if gpu_available() else [])
            device = gr.Dropdown(devices, value="auto", label="Device (auto: GPU when present)")
            kl = gr.Number(default.kl_coef, label="β: KL penalty (kl_coef)", info=FIELD_DOCS["kl_coef"][:90])
            lr = gr.Number(default.lr, label="Learning rate", elem_id="ppo-lr")
            iters = gr.Number(default.iterations, label="Iterations", precision=0, elem_id="ppo-iterations")
            batch = gr.Number(default.batch_size, label="Batch (prompts per rollout)", precision=0,
                              elem_id="ppo-batch")
            minibatch = gr.Number(default.minibatch_size, label="Minibatch", precision=0,
                                  elem_id="ppo-minibatch")
            new_tokens = gr.Number(default.max_new_tokens, label="Max new tokens", precision=0)
            switches = gr.CheckboxGroup(list(SWITCHES), value=switches_of(default),
                                        label="PPO-max switches")
            with gr.Row():
                b_launch = gr.Button("Launch", variant="primary", elem_id="ppo-launch")
                b_stop = gr.Button("Stop", variant="stop", elem_id="ppo-stop")
        with gr.Column(scale=3):
            status = gr.Markdown(watch.status_line(None), elem_id="ppo-status")
            plots = []
            metrics = list(PLOT_METRICS)
            with gr.Row():
                for m in metrics[:3]:
                    plots.append(gr.LinePlot(x="x", y="value", title=PLOT_METRICS[m], x_title="iteration",
                                             y_title=m, height=220, elem_id=f"ppo-plot-{m.split('/')[1]}"))
            with gr.Row():
                for m in metrics[3:]:
                    plots.append(gr.LinePlot(x="x", y="value", title=PLOT_METRICS[m], x_title="iteration",
                                             y_title=m, height=220, elem_id=f"ppo-plot-{m.split('/')[1]}"))
            samples = gr.Dataframe(samples_table(None), label="Recent samples (newest first)",
                                   wrap=True, interactive=False, elem_id="ppo-samples",
                                   column_widths=["9%", "22%", "49%", "10%", "10%"])
    numbers = [kl, lr, iters, batch, minibatch, new_tokens]
    preset.change(preset_values, preset, [*numbers, switches], api_visibility="private")
    b_launch.click(launch, [name, preset, policy, reward, device, switches, kl, lr, iters, batch,
                            minibatch, new_tokens], [watched, status, seen, name],
                   api_name="ppo_launch")
    b_stop.click(watch.stop, watched, status, api_visibility="private")
    timer = gr.Timer(1.0)
    timer.tick(lambda w, s: tick(w, s, metrics), [watched, seen], [status, *plots, samples, seen],
               show_progress="hidden", concurrency_limit=None, api_visibility="private")
    demo.load(lambda: watch.latest_run("ppo"), None, watched, api_visibility="private")
    gr.api(run_status, api_name="run_status")
    gr.api(stop_run, api_name="stop_run")
    return {"watched": watched, "policy": policy, "reward": reward,
            "refresh": lambda: (gr.update(choices=policy_choices()),
                                gr.update(choices=reward_choices()))}
