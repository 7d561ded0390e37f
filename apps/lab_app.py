"""The moss-lab Gradio app (placeholder until the app issue lands)."""
from __future__ import annotations

import gradio as gr


def build_app() -> gr.Blocks:
    with gr.Blocks(title="moss-lab") as demo:
        gr.Markdown("# moss-lab\nRLHF, hands-on. The lab tabs arrive with the app issue.")
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, share: bool = False, auth=None,
           prevent_thread_lock: bool = False):
    demo = build_app()
    demo.queue()
    return demo.launch(server_name=host, server_port=port, share=share, auth=auth,
                       prevent_thread_lock=prevent_thread_lock)
