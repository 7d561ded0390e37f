"""`moss-lab users`: the accounts of a class (moss_lab.accounts), for `moss-lab app --users`.

    moss-lab users add ada --role instructor        # asks for the password twice
    moss-lab users add bob --password-file pw.txt   # or $MOSS_LAB_PASSWORD
    moss-lab users add-class names.txt --password-out passwords.csv   # a random one each
    moss-lab users reset bob                        # a new password
    moss-lab users list
    moss-lab users remove bob                       # their labels and runs stay

The users file is $MOSS_LAB_HOME/users.toml unless --users FILE says otherwise (beside the
labels and runs it belongs to, whichever folder the command runs in). A password is never a
flag: it would show in the process list and the shell history.
"""
from __future__ import annotations

import argparse
import csv
import getpass
import os
import sys
from pathlib import Path

from moss_lab import accounts as acc

HELP = {
    "add": "add one account (the password from --password-file, $MOSS_LAB_PASSWORD or a prompt)",
    "add-class": "add an account for each name of a file (one a line) with random passwords",
    "reset": "set a new password for an account",
    "list": "the accounts and their roles (and whether the app accepts the file)",
    "remove": "remove an account (their labels and runs stay)",
}


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--users", metavar="FILE", help="the users file (default: "
                        "$MOSS_LAB_HOME/users.toml, i.e. ~/.cache/moss-lab/users.toml)")
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument("--password-file", metavar="F", help="read the password from the "
                          "first line of F (else $MOSS_LAB_PASSWORD, else a prompt)")
    top = argparse.ArgumentParser(prog="moss-lab users", description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", parents=[common, password], help=HELP["add"])
    add.add_argument("name")
    add.add_argument("--role", choices=acc.ROLES, default="student")
    many = sub.add_parser("add-class", parents=[common], help=HELP["add-class"])
    many.add_argument("names", help="a text file, one name a line (blank lines and # skipped)")
    many.add_argument("--password-out", required=True, metavar="CSV",
                      help="where to write name,password (a new file, readable by you only)")
    many.add_argument("--role", choices=acc.ROLES, default="student")
    reset = sub.add_parser("reset", parents=[common, password], help=HELP["reset"])
    reset.add_argument("name")
    sub.add_parser("list", parents=[common], help=HELP["list"])
    remove = sub.add_parser("remove", parents=[common], help=HELP["remove"])
    remove.add_argument("name")
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from moss_lab.paths import data_home

    path = Path(args.users) if args.users else data_home() / "users.toml"
    if args.action == "list":
        return list_users(path)
    if args.action == "add-class":
        return add_class(path, Path(args.names), Path(args.password_out), args.role)
    if args.action == "remove":
        print(f"removed {acc.remove_user(path, args.name)} from {path}")
        return 0
    if args.action == "reset":
        acc.stored_name(path, args.name)  # an unknown name, before asking for a password
    secret = read_password(args.password_file)
    if args.action == "add":
        name = acc.add_user(path, args.name, args.role, secret)
        print(f"added {name} ({args.role}) to {path}\nstart the class with: "
              f"moss-lab app --users {path}")
    else:
        print(f"new password set for {acc.reset_password(path, args.name, secret)} in {path}")
    return 0


def read_password(password_file: str | None) -> str:
    """The password from a file, $MOSS_LAB_PASSWORD, or typed twice at a prompt."""
    if password_file:
        lines = Path(password_file).read_text(encoding="utf-8").splitlines()
        return acc.checked_password(lines[0] if lines else "")
    if os.environ.get("MOSS_LAB_PASSWORD"):
        return acc.checked_password(os.environ["MOSS_LAB_PASSWORD"])
    if not sys.stdin.isatty():
        raise acc.AccountsError("no password: give --password-file F or set "
                                "$MOSS_LAB_PASSWORD (there is no terminal to ask)")
    first = acc.checked_password(getpass.getpass("password: "))
    if getpass.getpass("again: ") != first:
        raise acc.AccountsError("the two passwords differ; nothing was changed")
    return first


def list_users(path: Path) -> int:
    table = acc._users_table(path)
    for name, entry in table.items():
        role = entry.get("role", "?") if isinstance(entry, dict) else "?"
        print(f"{name:24s} {role}")
    try:
        acc.Accounts.load(path)
    except acc.AccountsError as err:
        print(f"moss-lab app would refuse this file: {err}")
        return 1
    print(f"{len(table)} accounts in {path}")
    return 0


def add_class(path: Path, names_file: Path, out: Path, role: str) -> int:
    """Accounts for a class list, with random passwords written to a new CSV (0600)."""
    names = [line.strip() for line in names_file.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise acc.AccountsError(f"{names_file}: no names")
    if out.exists():  # its passwords may be the only copy: never overwrite them
        raise acc.AccountsError(f"{out} exists; choose another --password-out")
    passwords = {name: acc.new_password() for name in names}
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # first: a refused path
    try:                                                           # changes no account
        added = acc.add_users(path, passwords, role)  # all or none
    except BaseException:
        os.close(fd)
        out.unlink()
        raise
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "password"])
        writer.writerows(zip(added, passwords.values()))
    print(f"added {len(added)} {role}s to {path}; their passwords are in {out} "
          "(hand them out, then delete it)")
    return 0
