"""Who is asking (moss_lab.app.session): single-user mode lets the one user do everything;
class mode needs a login, and the role decides what one may do."""
from types import SimpleNamespace

import gradio as gr
import pytest

from moss_lab.app import context
from moss_lab.app.session import OWNER, ClassSettings, User, current_user, require_instructor


class Accounts:  # the part of moss_lab.accounts.Accounts the session reads
    users = {"ada": "instructor", "bob": "student"}

    def user(self, name):
        role = self.users.get(name)
        return User(name, role) if role else None


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSS_LAB_HOME", str(tmp_path))
    context.reset_lab()
    yield context.get_lab()
    context.reset_lab()


def test_single_user_mode_is_the_owner_who_may_do_everything(lab):
    assert current_user(None) is OWNER and current_user(SimpleNamespace(username=None)) is OWNER
    assert OWNER.is_instructor and not OWNER.class_mode and OWNER.name is None
    assert require_instructor(None) is OWNER


def test_class_mode_needs_a_known_login_and_the_role_decides(lab):
    context.use_accounts(Accounts())
    for request in (None, SimpleNamespace(username=None), SimpleNamespace(username="eve")):
        with pytest.raises(gr.Error, match="Log in"):
            current_user(request)
    bob = current_user(SimpleNamespace(username="bob"))
    assert bob == User("bob", "student") and bob.class_mode and not bob.is_instructor
    with pytest.raises(gr.Error, match="Only the instructor"):
        require_instructor(SimpleNamespace(username="bob"))
    assert require_instructor(SimpleNamespace(username="ada")).name == "ada"


def test_class_settings_survive_a_restart(lab, tmp_path):
    assert lab.settings.overlap == 2 and not lab.settings.labelling_locked
    lab.settings.labelling_locked, lab.settings.overlap = True, 3
    lab.settings.save()
    again = ClassSettings.load(tmp_path / "class.json")
    assert again.labelling_locked and again.overlap == 3 and again.max_runs_per_student == 1
