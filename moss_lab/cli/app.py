"""`moss-lab app`: start the Gradio lab app (http://127.0.0.1:7860 unless told otherwise).

    moss-lab app                                   # one person, no login
    moss-lab app --users users.toml --host 0.0.0.0 # a class: everyone logs in (moss-lab users)
    moss-lab app --auth-file login.txt             # one shared login (user:password in F)

Passwords never come as flags (the process list shows every argument): the old
`--auth user:pass` is refused with a pointer to --auth-file and $MOSS_LAB_AUTH.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..configs import parse_args


@dataclass
class App:
    """Start the Gradio lab app: label pairs, train reward models, launch PPO runs."""

    host: str = "127.0.0.1"
    """Address to bind; 0.0.0.0 serves a whole class (with --users: docs/class_mode.md)."""
    port: int = 7860
    """Port to listen on."""
    share: bool = False
    """Also create a public Gradio link."""
    users: str | None = None
    """Class mode: a users file (made by moss-lab users, e.g. ~/.cache/moss-lab/users.toml);
    everyone logs in, and the login name is the annotator name."""
    auth_file: str | None = None
    """One shared login instead: a file whose first line is username:password (else
    $MOSS_LAB_AUTH if set; else no login)."""


def main(argv: list[str]) -> int:
    if any(a == "--auth" or a.startswith("--auth=") for a in argv):
        print("moss-lab app: --auth is gone (the password showed in the process list): put "
              "username:password in a file and give --auth-file FILE, or set $MOSS_LAB_AUTH; "
              "for a class, --users FILE (moss-lab users --help)", file=sys.stderr)
        return 2
    options = parse_args(App, argv, prog="moss-lab app")
    try:
        auth = shared_login(options.auth_file)
        users = class_accounts(options.users)
    except ValueError as err:
        print(f"moss-lab app: {err}", file=sys.stderr)
        return 2
    if users is not None and auth is not None:
        print("moss-lab app: give either --users (class mode) or a shared login "
              "(--auth-file / $MOSS_LAB_AUTH), not both", file=sys.stderr)
        return 2
    from moss_lab.app import launch  # (its package turns Gradio's analytics off first)

    # processes: training runs in child processes, so it shares no GIL with the votes
    launch(host=options.host, port=options.port, share=options.share, auth=auth, users=users,
           processes=True)
    return 0


def shared_login(auth_file: str | None) -> tuple[str, str] | None:
    """(user, password) from --auth-file or $MOSS_LAB_AUTH; None when neither is given."""
    if auth_file:
        path = Path(auth_file)
        if not path.is_file():
            if ":" in auth_file:  # a user:password given by mistake: do not echo it
                raise ValueError("--auth-file wants a file that holds username:password, "
                                 "not the login itself (the value is not shown)")
            raise ValueError(f"--auth-file {auth_file!r}: no such file")
        lines = path.read_text(encoding="utf-8").splitlines()
        text, where = (lines[0] if lines else ""), f"the first line of {auth_file}"
    else:
        text, where = os.environ.get("MOSS_LAB_AUTH", ""), "$MOSS_LAB_AUTH"
        if not text:
            return None
    user, sep, password = text.partition(":")
    if not (user and sep and password):
        raise ValueError(f"{where} must be username:password (both non-empty)")
    return user, password


def class_accounts(users_file: str | None):
    """The Accounts of --users (AccountsError, a ValueError, when the file is unusable)."""
    if not users_file:
        return None
    from moss_lab.accounts import Accounts

    accounts = Accounts.load(users_file)
    if not accounts.instructors:
        print(f"moss-lab app: note: {users_file} has no instructor, so nobody sees the Class "
              "tab (moss-lab users add NAME --role instructor)", file=sys.stderr)
    if os.stat(users_file).st_mode & 0o077:
        print(f"moss-lab app: note: others may read {users_file} (hashes only, but "
              f"chmod 600 it)", file=sys.stderr)
    print(f"class mode: {len(accounts.names)} accounts from {users_file}")
    return accounts
