"""The moss-lab Gradio app: compare, label, train a reward model, launch PPO, DPO, GRPO,
RLOO and best-of-n runs.

    moss-lab app                      # http://127.0.0.1:7860
    moss-lab app --users users.toml   # class mode: everyone logs in (moss_lab.accounts)

One gr.Blocks with six tabs (moss_lab/app/tab_*.py; in class mode a seventh, Class, for
the instructor), each a thin layer over the library: labels in moss_lab.labels (SQLite),
runs in moss_lab.runs (background threads, one folder per run), training in
moss_lab.reward, moss_lab.ppo and moss_lab.methods. The Train tab offers the method (a
radio): PPO's form (tab_ppo) or another method's (tab_methods). Objects shared by every
user live in moss_lab.app.context; per-user things are gr.State (this tab) or
gr.BrowserState (this browser).
"""
from __future__ import annotations

import html

import gradio as gr

from . import (
    tab_class,
    tab_compare,
    tab_evaluate,
    tab_label,
    tab_methods,
    tab_ppo,
    tab_reward,
    tab_runs,
)
from moss_lab.accounts import LOCK_AFTER, name_key

from .context import get_lab, use_accounts
from .session import current_user

# Class mode: a page whose login ended (`users reset` or `users remove`, a restart)
# gets 401 on every call, which Gradio's page shows as nothing at all: reload it instead,
# which brings the login page. Only a page that shows the app does so (the login page
# itself is answered 401 before a login, and must not reload itself forever).
SESSION_END = """
<script>
(() => {
  const fetchFirst = window.fetch;
  let reloading = false;
  window.fetch = async (...args) => {
    const response = await fetchFirst(...args);
    if (response.status === 401 && !reloading && document.querySelector('#label-left')) {
      reloading = true;
      location.reload();
    }
    return response;
  };
})();
</script>
"""

# Keyboard shortcuts for the Label tab (its votes): the script lives with the tab.
HEAD = tab_label.SHORTCUTS + SESSION_END

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
    # delete_cache: Gradio copies every download into its cache; drop copies older than an hour
    # (Gradio's analytics are off: moss_lab.app sets GRADIO_ANALYTICS_ENABLED for them all)
    with gr.Blocks(title="moss-lab", delete_cache=(3600, 3600)) as demo:
        # the open tab, kept by the browser: a reload comes back to it
        open_tab = gr.BrowserState("label", storage_key="moss-lab-tab")
        gr.Markdown("# moss-lab · RLHF, hands-on\nLabel pairs, train a reward model on your "
                    "labels, fine-tune the policy against it (PPO, DPO, GRPO, RLOO, best-of-n), "
                    "and compare.")
        with gr.Row(equal_height=True):  # class mode: who is logged in, and the way out
            who = gr.Markdown("", elem_id="who", visible=False)
            logout = gr.Button("Log out", link="logout", link_target="_self", size="sm",
                               scale=0, min_width=90, visible=False, elem_id="logout")
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
            # the instructor's view of the class: shown by show_user() below, to them only
            with gr.Tab("Class", id="class", visible=False) as class_tab:
                class_view = tab_class.build()
        demo.load(show_user, None, [who, logout, class_tab], api_visibility="private")
        class_tab.select(*class_view["refresh"], api_visibility="private")
        tab_label.wire_load(demo, label)
        tab_compare.wire_picks(compare, label["annotator"])  # blind picks are votes
        for tab, key in ((compare_tab, "compare"), (label_tab, "label"), (reward_tab, "reward"),
                         (ppo_tab, "ppo"), (runs_tab, "runs"), (evaluate_tab, "evaluate")):
            tab.select(lambda key=key: key, None, open_tab, api_visibility="private")
        demo.load(lambda key: gr.Tabs(selected=key) if key and key != "label" else gr.skip(),
                  open_tab, tabs, api_visibility="private")
        # Runs -> Compare: put a run's checkpoint in Compare's second slot and go there
        def checkpoint_to_compare(name, request: gr.Request):
            return runs["load_checkpoint"](name, request), gr.Tabs(selected="compare")

        runs["to_compare"].click(checkpoint_to_compare, runs["run_1"], [compare["policy_b"], tabs],
                                 api_name="load_checkpoint")
        # tabs are mounted when first shown: re-read the run folders whenever one opens
        runs_tab.select(*runs["refresh"], api_visibility="private").then(
            *runs["restyle"], api_visibility="private")
        compare_tab.select(compare["refresh"], None, [compare["policy_a"], compare["policy_b"]],
                           api_visibility="private")
        reward_tab.select(reward["refresh"], None, reward["models"], api_visibility="private")
        def train_lists(request: gr.Request):
            return (*ppo["refresh"](request), *methods["refresh"](request))

        ppo_tab.select(train_lists, None,
                       [ppo["policy"], ppo["reward"], *methods["lists"]], api_visibility="private")
    return demo


def show_user(request: gr.Request):
    """Class mode: who is logged in, the Log out button (Gradio serves /logout; the link is
    relative, so it works behind a proxy's path prefix too), and the Class tab for the
    instructor only. (Hiding a tab is no protection: tab_class's handlers check the role.)"""
    user = current_user(request)
    if not user.class_mode:
        return (gr.update(visible=False),) * 3
    line = f"Logged in as **{html.escape(user.name)}** ({user.role})"
    return (gr.update(value=line, visible=True), gr.update(visible=True),
            gr.update(visible=user.is_instructor))


LOGIN_MESSAGE = ("Log in with the name and password your instructor gave you. After "
                 f"{LOCK_AFTER} wrong passwords a name is locked for a while.")


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth=None,
           users=None, processes: bool = False, prevent_thread_lock: bool = False):
    """Start the app. auth: one shared (user, password); users: moss_lab.accounts.Accounts
    for class mode (each person logs in; the login name is the annotator name).
    processes: training runs in child processes (moss_lab.runs), so that a run and the
    people voting do not share one GIL (`moss-lab app` does; tests keep threads, where
    their monkeypatches apply)."""
    if users is not None and auth is not None:
        raise ValueError("give either users (class mode) or auth (one shared login)")
    use_accounts(users)  # before the tabs are built: they may ask whether accounts are on
    if users is not None:  # async: hashing runs off Gradio's event loop (Accounts.check_async)
        auth = users.check_async
    if processes:
        get_lab().pool.processes = True  # pairs sampled in a worker process too
        get_lab().runs.processes = True
        get_lab().runs.warm_up()  # the forkserver imports torch now, not at the first Launch
    demo = build_app()
    demo.queue(default_concurrency_limit=4)
    if users is not None:  # before the launch: it blocks unless prevent_thread_lock
        users.on_ended.append(lambda keys: end_sessions(demo.server_app, keys))
        users.follow()
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth,
                       auth_message=LOGIN_MESSAGE if users is not None else None,
                       prevent_thread_lock=prevent_thread_lock, head=HEAD, css=CSS,
                       max_file_size=MAX_UPLOAD, theme=gr.themes.Soft())


def end_sessions(server_app, keys: set[str]) -> None:
    """Log out every open session of these accounts (removed from the users file, or given
    a new password): Gradio keeps a login's token (its cookie) until that page logs out,
    under the name as it was typed."""
    tokens = getattr(server_app, "tokens", None) or {}
    for token, name in list(tokens.items()):
        if name_key(name) in keys:
            tokens.pop(token, None)
