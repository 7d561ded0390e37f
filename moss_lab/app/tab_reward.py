"""The Reward model tab: train on the stored labels (plus simulated ones), live curves,
and score any prompt/response by hand. Training is moss_lab.reward.train_reward_model,
run by the run manager (moss_lab.runs.reward_job)."""
from __future__ import annotations

import threading

import gradio as gr

from moss_lab.paths import models_dir
from moss_lab.reward import RewardConfig
from moss_lab.run_folder import new_run_name
from moss_lab.runs import QueueFullError, RunError, reward_job, validate_name
from moss_lab.toyworld import SimulatedAnnotator, format_prompt, gold_score, topic_of

from . import forms, watch
from .context import fmt, get_lab, gpu_available

METRICS = {"loss": "Training loss", "train/accuracy": "Training accuracy",
           "eval/acc_labels": "Held-out accuracy (labels)",
           "eval/acc_gold": "Held-out accuracy (gold)"}

# the RewardConfig fields on the form (label shown); the others keep their defaults
FORM = {"epochs": "Epochs", "lr": "Learning rate", "batch_size": "Batch size (pairs)",
        "seed": "Seed"}
MAX_SIMULATED = 20000

_RMS: dict = {}  # folder -> (model, tokenizer), loaded once
_RM_LOCK = threading.Lock()


def labels_summary() -> str:
    p = get_lab().store.progress()
    return (f"**{p['pairwise']}** A/B votes and {p['by_choice']['tie']} ties are stored; "
            "ties are used only when 'include ties' is on. Top them up with pairs labelled by "
            "the simulated annotator (two samples of the base model per prompt).")


def rm_choices() -> list[tuple[str, str]]:
    out = [(f"reward run {r.name}", str(r.path / "model")) for r in get_lab().runs.list()
           if r.kind == "reward" and (r.path / "model" / "config.json").is_file()]
    for folder in sorted(models_dir().glob("toy-rm-*")):  # the PPO tab's cached toy RM
        if (folder / "config.json").is_file():
            out.append((f"cached {folder.name}", str(folder)))
    return out


def launch(name, simulated, noise, epochs, lr, batch_size, include_ties, seed=None):
    problems = []
    try:
        name = validate_name(name)
    except RunError as err:
        problems.append(str(err))
    values = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
    if seed is not None:  # API clients of the first version sent no seed
        values["seed"] = seed
    fields, unreadable = forms.parse(RewardConfig, values)
    problems += unreadable
    # RewardConfig does not check its values (PPOConfig does): the form does
    if not unreadable:
        if not 0 < fields["lr"] <= 1:
            problems.append(f"learning rate must be in (0, 1], got {lr}")
        if fields["epochs"] < 1 or fields["batch_size"] < 2:
            problems.append("epochs must be >= 1 and batch_size >= 2")
    if not (forms.is_whole(simulated) and 0 <= simulated <= MAX_SIMULATED):
        problems.append(f"simulated pairs must be a whole number in [0, {MAX_SIMULATED}], "
                        f"got {simulated}")
    if problems:
        raise gr.Error("Not launched: " + "; ".join(problems))
    config = {"reward": fields, "labels_db": str(get_lab().store.path),
              "include_ties": bool(include_ties), "simulated": int(simulated),
              "noise": float(noise)}
    try:
        get_lab().runs.submit(name, "reward", config, reward_job,
                              device="cuda" if gpu_available() else "cpu")
    except (QueueFullError, RunError) as err:
        raise gr.Error(f"Not launched: {err}")
    gr.Info(f"Reward-model run {name} queued.", duration=4)
    return (name, watch.status_line(name, x="step", total_key="-"), None, default_name())


def form_of(name: str | None):
    """The form filled with a reward run's settings (what a reloaded page follows)."""
    try:
        config = get_lab().runs.get(name).config if name else None
    except RunError:
        config = None
    if not config or not isinstance(config.get("reward"), dict):
        return tuple(gr.skip() for _ in range(3 + len(FORM)))
    rm = {**RewardConfig().__dict__, **config["reward"]}
    return (config.get("simulated", gr.skip()), config.get("noise", gr.skip()),
            *[rm.get(f, gr.skip()) for f in FORM], bool(config.get("include_ties")))


def rm_models() -> list[str]:
    """The folders listed under 'Score by hand' (for API clients and tests)."""
    return [value for _, value in rm_choices()]


def tick(watched, seen):
    """The live curves, and the list of reward models when a run has just ended."""
    status, *plots, now = watch.tick(watched, seen, list(METRICS), "step", "-")
    models = gr.update(choices=rm_choices()) if watch.finished_now(seen, now) else gr.skip()
    return (status, *plots, now, models)


def default_name() -> str:
    return new_run_name("rm", get_lab().runs.root)


def score_by_hand(folder: str, prompt: str, response: str) -> str:
    from moss_lab.reward import load_reward_model
    from moss_lab.scoring import score

    if not folder:
        raise gr.Error("Pick a reward model (train one above first).")
    if not (prompt or "").strip() or not (response or "").strip():
        raise gr.Error("Type a prompt and a response.")
    prompt = format_prompt(prompt)
    with _RM_LOCK:
        if folder not in _RMS:
            _RMS[folder] = load_reward_model(folder, device="cpu")
        model, tokenizer = _RMS[folder]
        r = score(model, tokenizer, [prompt], [response.strip()])[0].item()
    text = f"Reward-model score: **{r:.3f}**"
    if topic_of(prompt):
        g = gold_score(prompt, response.strip())
        text += (f" · gold score: **{g.total:.2f}** (" +
                 ", ".join(f"{k} {fmt(v, 2)}" for k, v in g.as_dict().items() if k != "total") + ")")
    return text


def build(demo: gr.Blocks) -> dict:
    watched, seen = gr.State(None), gr.State(None)
    summary = gr.Markdown(labels_summary)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            name = gr.Textbox(label="Run name", value=default_name)
            simulated = gr.Number(500, label="Simulated pairs to add", precision=0)
            noise = gr.Slider(0, 3, value=SimulatedAnnotator().noise, step=0.1,
                              label="Simulated annotator noise")
            epochs, lr, batch, seed = [forms.field_input(RewardConfig, RewardConfig(), f, label,
                                                         elem_id=f"rm-{f}")
                                       for f, label in FORM.items()]
            ties = gr.Checkbox(False, label="Include ties (label smoothing 0.5)")
            b_train, b_stop = watch.controls("rm", "Train reward model")
        with gr.Column(scale=3):
            status, plots = watch.curves("rm", METRICS, "step", per_row=len(METRICS),
                                         min_width=200)
    gr.Markdown("### Score by hand")
    with gr.Row():
        rm = gr.Dropdown(rm_choices(), label="Reward model", allow_custom_value=True, scale=2,
                         elem_id="rm-models")
        b_refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
    with gr.Row():
        prompt = gr.Textbox(label="Prompt (a question; 'Human: ... Assistant: ' is added)",
                            value="tell me about cats .")
        response = gr.Textbox(label="Response", value="happy to help . cats purr when they are happy .")
    b_score = gr.Button("Score")
    scored = gr.Markdown()

    b_train.click(launch, [name, simulated, noise, epochs, lr, batch, ties, seed],
                  [watched, status, seen, name], api_name="rm_launch")
    b_stop.click(watch.stop, watched, status, api_visibility="private")
    b_refresh.click(lambda: gr.update(choices=rm_choices()), None, rm, api_visibility="private")
    b_score.click(score_by_hand, [rm, prompt, response], scored, api_name="rm_score")
    timer = gr.Timer(1.0)
    timer.tick(tick, [watched, seen], [status, *plots, seen, rm], show_progress="hidden",
               concurrency_limit=None, api_visibility="private")
    demo.load(lambda: (watch.latest_run("reward"), labels_summary()), None, [watched, summary],
              api_visibility="private").then(form_of, watched, [simulated, noise, epochs, lr,
                                                                batch, seed, ties],
                                             api_visibility="private")
    gr.api(rm_models, api_name="rm_models")
    return {"models": rm, "refresh": lambda: gr.update(choices=rm_choices())}
