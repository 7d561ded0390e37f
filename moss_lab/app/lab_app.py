"""The moss-lab Gradio app: compare, label, train a reward model, launch PPO, DPO, GRPO,
RLOO and best-of-n runs.

    moss-lab app                      # http://127.0.0.1:7860
    moss-lab app --port 8000 --auth teacher:secret

One gr.Blocks with six tabs (moss_lab/app/tab_*.py), each a thin layer over the library:
labels in moss_lab.labels (SQLite), runs in moss_lab.runs (background threads, one folder
per run), training in moss_lab.reward, moss_lab.ppo and moss_lab.methods. The Train tab
offers the method (a radio): PPO's form (tab_ppo) or another method's (tab_methods). Objects
shared by every user live in moss_lab.app.context; per-user things are gr.State (this tab)
or gr.BrowserState (this browser).
"""
from __future__ import annotations

import gradio as gr

from . import (
    tab_compare,
    tab_evaluate,
    tab_label,
    tab_methods,
    tab_ppo,
    tab_reward,
    tab_runs,
)
from .context import get_lab

# Keyboard shortcuts for the Label tab (its votes): the script lives with the tab.
HEAD = tab_label.SHORTCUTS

CSS = """
#label-left textarea, #label-right textarea { font-size: 1.05em; }
#label-prompt { font-size: 1.15em; }
/* table headers wrap between words, never inside one ("iterati/on") */
.gradio-container thead th, .gradio-container thead th * {
  word-break: normal !important; overflow-wrap: normal !important; hyphens: none; }
"""

MAX_UPLOAD = "50mb"  # the label store refuses imports over 20 MB with a clear message


def build_app() -> gr.Blocks:
    lab = get_lab()
    lab.pool.start()  # sample the first pairs while the page loads
    with gr.Blocks(title="moss-lab") as demo:
        # the open tab, kept by the browser: a reload comes back to it
        open_tab = gr.BrowserState("label", storage_key="moss-lab-tab")
        gr.Markdown("# moss-lab · RLHF, hands-on\nLabel pairs, train a reward model on your "
                    "labels, fine-tune the policy against it (PPO, DPO, GRPO, RLOO, best-of-n), "
                    "and compare.")
        with gr.Tabs(selected="label") as tabs:
            with gr.Tab("Compare", id="compare") as compare_tab:
                compare = tab_compare.build()
            with gr.Tab("Label", id="label") as label_tab:
                label = tab_label.build()
            with gr.Tab("Reward model", id="reward") as reward_tab:
                reward = tab_reward.build(demo)
            with gr.Tab("Train", id="ppo") as ppo_tab:
                method = gr.Radio(tab_methods.CHOICES, value="PPO", label="Method",
                                  elem_id="train-method")
                note = gr.Markdown(tab_methods.about("PPO"), elem_id="train-about")
                with gr.Column() as ppo_box:
                    ppo = tab_ppo.build(demo)
                methods = tab_methods.build(method, note, ppo_box)
            with gr.Tab("Runs", id="runs") as runs_tab:
                runs = tab_runs.build()
            with gr.Tab("Evaluate", id="evaluate") as evaluate_tab:
                tab_evaluate.build(evaluate_tab)  # win rates, people's pairs, leaderboards
        tab_label.wire_load(demo, label)
        tab_compare.wire_picks(compare, label["annotator"])  # blind picks are votes
        for tab, key in ((compare_tab, "compare"), (label_tab, "label"), (reward_tab, "reward"),
                         (ppo_tab, "ppo"), (runs_tab, "runs"), (evaluate_tab, "evaluate")):
            tab.select(lambda key=key: key, None, open_tab, api_visibility="private")
        demo.load(lambda key: gr.Tabs(selected=key) if key and key != "label" else gr.skip(),
                  open_tab, tabs, api_visibility="private")
        # Runs -> Compare: put a run's checkpoint in Compare's second slot and go there
        runs["to_compare"].click(
            lambda name: (gr.update(choices=tab_ppo.policy_choices(),
                                    value=runs["checkpoint_of"](name)), gr.Tabs(selected="compare")),
            runs["run_1"], [compare["policy_b"], tabs], api_name="load_checkpoint")
        # tabs are mounted when first shown: re-read the run folders whenever one opens
        runs_tab.select(*runs["refresh"], api_visibility="private").then(
            *runs["restyle"], api_visibility="private")
        compare_tab.select(lambda: (gr.update(choices=tab_ppo.policy_choices()),) * 2, None,
                           [compare["policy_a"], compare["policy_b"]], api_visibility="private")
        reward_tab.select(reward["refresh"], None, reward["models"], api_visibility="private")
        ppo_tab.select(lambda: (*ppo["refresh"](), *methods["refresh"]()), None,
                       [ppo["policy"], ppo["reward"], *methods["lists"]], api_visibility="private")
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth=None,
           prevent_thread_lock: bool = False):
    demo = build_app()
    demo.queue(default_concurrency_limit=4)
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth,
                       prevent_thread_lock=prevent_thread_lock, head=HEAD, css=CSS,
                       max_file_size=MAX_UPLOAD, theme=gr.themes.Soft())
