"""`moss-lab app`: start the Gradio lab app (http://127.0.0.1:7860 unless told otherwise)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..configs import parse_args


@dataclass
class App:
    """Start the Gradio lab app: label pairs, train reward models, launch PPO runs."""

    host: str = "127.0.0.1"
    """Address to bind; 0.0.0.0 serves a whole class (then set --auth)."""
    port: int = 7860
    """Port to listen on."""
    share: bool = False
    """Also create a public Gradio link."""
    auth: str | None = None
    """username:password required to open the app (None: $MOSS_LAB_AUTH if set, else open)."""


def main(argv: list[str]) -> int:
    options = parse_args(App, argv, prog="moss-lab app")
    auth, text = None, options.auth or os.environ.get("MOSS_LAB_AUTH")
    if text:
        user, sep, password = text.partition(":")
        if not (user and sep and password):
            print("moss-lab app: --auth must be username:password (both non-empty)")
            return 2
        auth = (user, password)
    from moss_lab.app import launch

    launch(host=options.host, port=options.port, share=options.share, auth=auth)
    return 0
