"""`moss-lab app`: start the Gradio lab app (127.0.0.1:7860 unless told otherwise)."""
from __future__ import annotations

import os


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="create a public Gradio link")
    parser.add_argument("--auth", default=os.environ.get("MOSS_LAB_AUTH"),
                        help="username:password required to open the app")


def main(args) -> int:
    from apps.lab_app import launch

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not (user and sep and password):
            print("moss-lab app: --auth must be username:password (both non-empty)")
            return 2
        auth = (user, password)
    launch(host=args.host, port=args.port, share=args.share, auth=auth)
    return 0
