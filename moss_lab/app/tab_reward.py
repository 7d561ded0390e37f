"""The Reward model tab: train on the stored labels (plus simulated ones), live curves,
and score any prompt/response by hand. Training is moss_lab.reward.train_reward_model,
run by the run manager (moss_lab.runs.reward_job).

Class mode: a student trains on their own labels (the run's config names the annotator),
the run is theirs, and 'Score by hand' offers their own reward models, the instructor's and
the cached toy ones (never a free folder path)."""
from __future__ import annotations

import threading

import gradio as gr

from moss_lab.paths import models_dir
from moss_lab.reward import RewardConfig, split_sizes, warmup_for
from moss_lab.runs import RunError, reward_job, validate_name
from moss_lab.toyworld import SimulatedAnnotator, format_prompt, gold_score, topic_of

from . import forms, watch
from .context import fmt, get_lab, gpu_available
from .session import User, annotator_of, current_user

# short titles, two plots a row: longer ones were cut off at four a row
METRICS = {"loss": "Training loss", "train/accuracy": "Training accuracy",
           "eval/acc_labels": "Held-out acc. vs labels",
           "eval/acc_gold": "Held-out acc. vs gold"}
ACCURACY = ("train/accuracy", "eval/acc_labels", "eval/acc_gold")  # drawn on a fixed 0-1 axis
USEFUL_PAIRS = 200  # below this, warn: little to learn, and a handful of held-out pairs

# the RewardConfig fields on the form (label shown); the others keep their defaults
FORM = {"epochs": "Epochs", "lr": "Learning rate", "batch_size": "Batch size (pairs)",
        "seed": "Seed"}
MAX_SIMULATED = 20000

_RMS: dict = {}  # folder -> (model, tokenizer), loaded once
_RM_LOCK = threading.Lock()


def labels_summary(user: User | None = None) -> str:
    user = user or watch.viewer()
    if user.class_mode and not user.is_instructor:
        n = count_labels(False, user)
        ties = count_labels(True, user) - n
        return (f"**{n}** A/B votes and {ties} ties of yours are stored; a reward model you "
                "train learns from your own labels (ties only when 'include ties' is on). "
                "Top them up with pairs labelled by the simulated annotator.")
    p = get_lab().store.progress()
    return (f"**{p['pairwise']}** A/B votes and {p['by_choice']['tie']} ties are stored; "
            "ties are used only when 'include ties' is on. Top them up with pairs labelled by "
            "the simulated annotator (two samples of the base model per prompt).")


def rm_choices(user: User | None = None) -> list[tuple[str, str]]:
    """The reward models `user` may score with: reward runs (own and the instructor's in
    class mode) and the cached toy reward models."""
    out = [(f"reward run {r.id}", str(r.path / "model"))
           for r in watch.loadable_runs(user or watch.viewer())
           if r.kind == "reward" and (r.path / "model" / "config.json").is_file()]
    for folder in sorted(models_dir().glob("toy-rm-*")):  # the PPO tab's cached toy RM
        if (folder / "config.json").is_file():
            out.append((f"cached {folder.name}", str(folder)))
    return out


def launch(name, simulated, noise, epochs, lr, batch_size, include_ties, seed=None,
           request: gr.Request = None):
    """Queue a reward-model run for the logged-in user (on their own labels in class mode)."""
    user = current_user(request)
    problems = []
    try:
        name = validate_name(name)
    except RunError as err:
        problems.append(str(err))
    values = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
    if seed is not None:  # API clients of the first version sent no seed
        values["seed"] = seed
    fields, unreadable = forms.parse(RewardConfig, values)  # RewardConfig's bounds
    problems += unreadable
    if not unreadable:
        try:
            RewardConfig(**fields)
        except ValueError as err:
            problems.append(str(err))
    simulated, problem = forms.read_number(simulated, "simulated pairs", 0, MAX_SIMULATED)
    if problem:
        problems.append(problem)
    noise, problem = forms.read_number(noise, "annotator noise", 0, 3, whole=False)
    if problem:
        problems.append(problem)
    if problems:
        raise gr.Error("Not launched: " + "; ".join(problems))
    n_labels = count_labels(include_ties, user)
    if n_labels + simulated < USEFUL_PAIRS:
        gr.Warning(f"Only {n_labels + simulated} pairs: too few to learn much, and the "
                   "held-out accuracy will jump. Add simulated pairs.", duration=8)
    config = {"reward": fields, "labels_db": str(get_lab().store.path),
              "include_ties": bool(include_ties), "simulated": simulated, "noise": noise}
    if annotator_of(user):  # moss_lab.runs.reward_job trains on this annotator's labels
        config["annotator"] = annotator_of(user)
    run = watch.submit(user, name, "reward", config, reward_job,
                       "cuda" if gpu_available() else "cpu")
    gr.Info(f"Reward-model run {name} queued.", duration=4)
    return (run, watch.status_line(run, x="step", total_key="-"), None, default_name(user))


def count_labels(include_ties, user: User | None = None) -> int:
    """The stored votes a run would train on (A/B votes, and ties when included): the
    student's own in class mode."""
    user = user or watch.viewer()
    if user.class_mode and not user.is_instructor and not user.name:
        return 0  # nobody (a page value computed without a login)
    return len(get_lab().store.preferences(include_ties=bool(include_ties),
                                           annotator=annotator_of(user)))


def plan_text(simulated: float, include_ties: bool, epochs: float | None = None,
              batch_size: float | None = None, request: gr.Request = None) -> str:
    """What a run with this form would train on: pairs trained on and held out, steps and
    warm-up, and a warning below USEFUL_PAIRS (shown under the form, before a run)."""
    n_labels = count_labels(include_ties, watch.viewer(request))
    n_sim, problem = forms.read_number(simulated, "simulated pairs", 0, MAX_SIMULATED)
    if problem:
        return f"<span id='rm-plan'>{problem}</span>"
    n = n_labels + n_sim
    defaults = RewardConfig()
    n_train, n_eval = split_sizes(n, defaults.eval_fraction)
    text = (f"Training on **{n_train}** pairs, holding out **{n_eval}** "
            f"({n_labels} of your labels + {n_sim} simulated).")
    fields, bad = forms.parse(RewardConfig, {"epochs": epochs, "batch_size": batch_size}) \
        if epochs is not None and batch_size is not None else ({}, ["-"])
    if not bad and n_train:
        config = RewardConfig(**fields)
        total = -(-n_train // config.batch_size) * config.epochs
        text += f" {total} steps, warm-up {warmup_for(total, config)}."
    if n < 2:
        text += "\n\n**Nothing to train on yet:** label some pairs (A or B better) or add simulated pairs."
    elif n < USEFUL_PAIRS:
        text += (f"\n\n**Warning: only {n} pairs.** A reward model learns little from so few, "
                 f"and accuracy on {n_eval} held-out pair{'s' if n_eval != 1 else ''} jumps "
                 f"between 0 and 1 (one pair moves it by {1 / max(n_eval, 1):.0%}). Mix in "
                 f"simulated labels: at least {USEFUL_PAIRS - n_labels} simulated pairs give "
                 f"{USEFUL_PAIRS} in all, 500 or more train a useful model.")
    return f"<span id='rm-plan'>{text}</span>"


def report_text(name: str | None, request: gr.Request = None) -> str:
    """What the watched run trains on, and its final figures as text (held-out accuracy
    against the labels and against gold, and on how many pairs)."""
    if not name:
        return ""
    try:
        info = get_lab().runs.get(name)
    except RunError:
        return ""
    if not watch.may_see(watch.viewer(request), info):
        return ""
    config, final = info.config, (info.final if info.state == "finished" else {})
    n_train = final.get("n_train", config.get("n_train"))
    n_eval = final.get("n_eval", config.get("n_eval"))
    if n_train is None:
        if info.state in ("queued", "running"):
            return "Preparing the pairs (stored labels, then the simulated ones)..."
        return ""
    lines = [f"Run **{name}**: training on **{n_train}** pairs, holding out **{n_eval}**"
             + (f" ({final['n_labels']} labels + {final['n_simulated']} simulated)"
                if "n_labels" in final else "") + "."]
    if final:
        acc_l, acc_g, n_gold = final.get("acc_labels"), final.get("acc_gold"), final.get("n_gold")
        labelled = final.get("n", n_eval)
        lines.append("**Final held-out accuracy:** "
                     + (f"{acc_l:.3f} against the labels ({labelled} pairs)"
                        if acc_l is not None else "no labelled held-out pairs")
                     + " · " + (f"{acc_g:.3f} against gold ({n_gold} pairs with a gold verdict)"
                                if acc_g is not None else "no gold verdict (not toy-world pairs)")
                     + f" · {final.get('steps', '?')} steps in {fmt(final.get('seconds'), 1)} s.")
        if n_eval and n_eval < 50:
            lines.append(f"With {n_eval} held-out pairs one pair moves the accuracy by "
                         f"{1 / n_eval:.0%}: a rough figure.")
    return "\n\n".join(lines)


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


def rm_models(request: gr.Request = None) -> list[str]:
    """The folders listed under 'Score by hand' (for API clients and tests)."""
    return [value for _, value in rm_choices(watch.viewer(request))]


def tick(watched, seen, request: gr.Request = None):
    """The live curves, the run's pairs and final figures, and the list of reward models
    when a run has just ended."""
    status, *plots, now = watch.tick(watched, seen, list(METRICS), "step", "-")
    models = (gr.update(choices=rm_choices(watch.viewer(request)))
              if watch.finished_now(seen, now) else gr.skip())
    report = report_text(watched, request) if now != seen or not watched else gr.skip()
    return (status, *plots, now, models, report)


def default_name(user: User | None = None) -> str:
    return watch.new_name("rm", user or watch.viewer())


def refresh(request: gr.Request = None):
    """The reward models of 'Score by hand' again, for the user of this page."""
    return gr.update(choices=rm_choices(watch.viewer(request)))


def opened(request: gr.Request = None):
    """When the page opens: the user's newest reward run, their labels, their models."""
    user = watch.viewer(request)
    return (watch.latest_run("reward", user), labels_summary(user),
            gr.update(choices=rm_choices(user)), default_name(user))


def score_by_hand(folder: str, prompt: str, response: str, request: gr.Request = None) -> str:
    from moss_lab.reward import load_reward_model
    from moss_lab.scoring import score

    if not folder:
        raise gr.Error("Pick a reward model (train one above first).")
    user = current_user(request)
    folder = watch.checked_model(folder, user, "reward model", rm_choices(user), ())
    if not (prompt or "").strip() or not (response or "").strip():
        raise gr.Error("Type a prompt and a response.")
    prompt = format_prompt(prompt)
    try:
        with _RM_LOCK:
            if folder not in _RMS:
                _RMS[folder] = load_reward_model(folder, device="cpu")
            model, tokenizer = _RMS[folder]
            r = score(model, tokenizer, [prompt], [response.strip()])[0].item()
    except Exception as err:  # a missing or broken model folder: a message, not "Error"
        if user.class_mode:  # no server path in a message to a class
            raise gr.Error(f"Could not score with that reward model ({type(err).__name__}).")
        raise gr.Error(f"Could not score with {folder!r}: {type(err).__name__}: {err}")
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
            simulated = forms.BoundedNumber(500, label="Simulated pairs to add", precision=0,
                                            minimum=0, maximum=MAX_SIMULATED, step=100,
                                            elem_id="rm-simulated")
            noise = gr.Slider(0, 3, value=SimulatedAnnotator().noise, step=0.1,
                              label="Simulated annotator noise")
            epochs, lr, batch, seed = [forms.field_input(RewardConfig, RewardConfig(), f, label,
                                                         elem_id=f"rm-{f}")
                                       for f, label in FORM.items()]
            ties = gr.Checkbox(False, label="Include ties (label smoothing 0.5)")
            plan = gr.Markdown(elem_id="rm-plan-box")
            b_train, b_stop = watch.controls("rm", "Train reward model")
        with gr.Column(scale=3):
            status, plots = watch.curves("rm", METRICS, "step", per_row=2, min_width=240)
            for metric, plot in zip(METRICS, plots):
                if metric in ACCURACY:  # a fixed axis: 0.5 is chance, whatever the points
                    plot.y_lim = [0, 1]
            report = gr.Markdown(elem_id="rm-report")
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
    b_refresh.click(refresh, None, rm, api_visibility="private")
    b_score.click(score_by_hand, [rm, prompt, response], scored, api_name="rm_score")
    timer = gr.Timer(1.0)
    timer.tick(tick, [watched, seen], [status, *plots, seen, rm, report],
               show_progress="hidden", concurrency_limit=None, api_visibility="private")
    plan_inputs = [simulated, ties, epochs, batch]
    for box in plan_inputs:
        box.change(plan_text, plan_inputs, plan, show_progress="hidden",
                   api_visibility="private")
    gr.api(plan_text, api_name="rm_plan")
    gr.api(report_text, api_name="rm_report")
    demo.load(opened, None, [watched, summary, rm, name],
              api_visibility="private").then(form_of, watched, [simulated, noise, epochs, lr,
                                                                batch, seed, ties],
                                             api_visibility="private").then(
        plan_text, plan_inputs, plan, api_visibility="private")
    gr.api(rm_models, api_name="rm_models")
    return {"models": rm, "refresh": refresh}
