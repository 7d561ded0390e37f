"""Who is asking, and the class's settings (class mode, issue #14).

Single-user mode (no users file) is today's app: nobody logs in, the annotator name is typed
in the Label tab, and the one user may do everything (role "owner"). Class mode
(`moss-lab app --users users.toml`): everybody logs in, the login name *is* the annotator
name, and the role ("student" or "instructor") decides what one may see and do.

    user = current_user(request)   # in a handler that takes `request: gr.Request`
    if not user.is_instructor: ...

The instructor's settings for the class (pair overlap, labelling lock, run limits) live in
<home>/class.json, so that a restart keeps them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import gradio as gr

from moss_lab.accounts import ROLES  # noqa: F401  (the roles' one home: moss_lab.accounts)
from moss_lab.files import read_json, write_json
from moss_lab.paths import data_home


@dataclass(frozen=True)
class User:
    """The person behind a request: name None and role "owner" in single-user mode."""

    name: str | None
    role: str = "owner"

    @property
    def class_mode(self) -> bool:
        return self.role != "owner"

    @property
    def is_instructor(self) -> bool:
        return self.role in ("owner", "instructor")


OWNER = User(None, "owner")


def current_user(request: gr.Request | None) -> User:
    """The logged-in user of this request (OWNER when accounts are off).

    In class mode a request without a login (an API call without auth) is refused with
    gr.Error, so no handler that asks for the user can act for nobody."""
    from .context import get_lab

    accounts = get_lab().accounts
    if accounts is None:
        return OWNER
    name = getattr(request, "username", None) if request is not None else None
    user = accounts.user(name) if name else None
    if user is None:
        raise gr.Error("Log in first: this app has accounts (nothing was done).")
    return user


def annotator_of(user: User) -> str | None:
    """Whose labels a run trains on (a reward model, DPO): the student's own in class mode
    (None: everyone's, for the instructor and in single-user mode)."""
    return user.name if user.class_mode and not user.is_instructor else None


def require_instructor(request: gr.Request | None) -> User:
    """current_user, refused with gr.Error unless it is the instructor (or single-user)."""
    user = current_user(request)
    if not user.is_instructor:
        raise gr.Error("Only the instructor can do this (nothing was done).")
    return user


@dataclass
class ClassSettings:
    """What the instructor sets for the class; kept in <home>/class.json."""

    overlap: int = 2
    """How many different people judge each pair (inter-annotator agreement needs 2+)."""
    labelling_locked: bool = False
    """True: students cannot vote (e.g. during an exam of labels)."""
    max_runs_per_student: int = 1
    """Runs one student may have queued or running at a time."""
    max_running: int = 2
    """Runs the whole class may have running at once (the rest wait in the queue)."""
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ClassSettings":
        path = Path(path) if path is not None else data_home() / "class.json"
        known = {f.name for f in fields(cls)} - {"path"}
        stored = {k: v for k, v in read_json(path, {}).items() if k in known}
        return cls(**stored, path=path)

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        write_json(self.path or data_home() / "class.json", data)
