"""Class mode's login, over HTTP against a launched app (issue #14): no login, no API; the
right password opens it, a wrong one does not, repeated wrong ones lock the name; the
Class tab is shown to the instructor only; /logout ends the session, and so do a new
password and a removed account.

The page's own load events are private endpoints (no gradio_client): they are called here
the way the browser does, through the queue (queue/join, then the event stream)."""
import json
import socket
from contextlib import closing

import pytest
from app_helpers import free_port, isolated_home

gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore:.*no_silent_downcasting:Warning",
                                        "ignore:The copy keyword:Warning")

LOOKED_UP: list = []  # every host name the process resolved while the app served (below)
PASSWORDS = {"ada": "ada's password", "bob": "bob's password", "dana": "dana's password"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(url, home): the app in class mode on a free port, with its own data home."""
    import gradio as gr

    from moss_lab import accounts as acc
    from moss_lab.app import context, launch

    home = isolated_home(tmp_path_factory.mktemp("class-home"))
    users = home / "users.toml"
    acc.add_user(users, "ada", "instructor", PASSWORDS["ada"])
    acc.add_users(users, {"bob": PASSWORDS["bob"], "dana": PASSWORDS["dana"]}, "student")
    resolve = socket.getaddrinfo

    def spy(host, *args, **kwargs):  # an outside connection starts with a name lookup
        LOOKED_UP.append(host)
        return resolve(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSS_LAB_HOME", str(home))
        mp.setattr(socket, "getaddrinfo", spy)
        context.reset_lab()
        _, url, _ = launch(port=free_port(), users=acc.Accounts.load(users),
                           prevent_thread_lock=True)
        yield url, home
        gr.close_all()
        context.reset_lab()


def logged_in(url: str, name: str, password: str | None = None) -> httpx.Client:
    """An HTTP session that logged in as the login page does (a form, then a cookie);
    the name as typed (full-width, any case) is the account's."""
    client = httpx.Client(base_url=url, timeout=30)
    reply = client.post("login", data={"username": name, "password": password or PASSWORDS[name]})
    assert reply.status_code == 200, reply.text
    return client


def page_load(client: httpx.Client, api_name: str, session: str) -> list:
    """Run one of the page's load events as the browser does; its outputs."""
    deps = client.get("config").json()["dependencies"]
    fn = next(d["id"] for d in deps if d.get("api_name") == api_name)
    joined = client.post("gradio_api/queue/join", json={"data": [], "fn_index": fn,
                                                        "session_hash": session})
    assert joined.status_code == 200, joined.text
    with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session}) as s:
        for line in s.iter_lines():
            message = json.loads(line[5:]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                assert message["success"], message
                return message["output"]["data"]
    raise AssertionError("the event never completed")


def stored_votes(home) -> int:
    import sqlite3

    path = home / "labels.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]


def test_no_login_no_api(app):
    url, home = app
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        assert anonymous.get("config").status_code == 401
        assert anonymous.get("gradio_api/info").status_code == 401
        for api_name in ("start", "vote_left"):
            reply = anonymous.post(f"gradio_api/call/{api_name}", json={"data": ["bob"]})
            assert reply.status_code == 401
        reply = anonymous.post("gradio_api/queue/join",
                               json={"data": ["bob"], "fn_index": 0, "session_hash": "x"})
        assert reply.status_code == 401
    with pytest.raises(Exception):  # the client cannot even read the app's config
        gradio_client.Client(url, verbose=False)
    assert stored_votes(home) == 0


def test_right_password_opens_the_api_and_a_wrong_one_does_not(app):
    url, _ = app
    client = gradio_client.Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
    try:
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert "/vote_left" in endpoints and "/start" in endpoints
    finally:
        client.close()
    with pytest.raises(Exception):
        gradio_client.Client(url, auth=("bob", "not bob's password"), verbose=False)
    with httpx.Client(base_url=url, timeout=30) as session:
        assert session.post("login", data={"username": "bob",
                                           "password": "wrong"}).status_code == 400
        assert session.get("config").status_code == 401  # a failed login gives no cookie


def test_repeated_wrong_passwords_lock_the_name(app):
    from moss_lab.accounts import LOCK_AFTER

    url, _ = app
    with httpx.Client(base_url=url, timeout=30) as session:
        for _ in range(LOCK_AFTER):
            assert session.post("login", data={"username": "dana",
                                               "password": "a guess"}).status_code == 400
        # locked now: the right password is refused too (for LOCK_FIRST_S seconds)
        assert session.post("login", data={"username": "dana",
                                           "password": PASSWORDS["dana"]}).status_code == 400
    logged_in(url, "ada").close()  # other names still log in


def test_class_tab_only_for_the_instructor(app):
    url, _ = app
    ada_typed = logged_in(url, "ＡＤＡ", PASSWORDS["ada"])  # full-width, as a phone may type
    with closing(logged_in(url, "bob")) as bob, closing(ada_typed) as ada:
        who, logout, class_tab = page_load(bob, "show_user", "bob-page")
        assert "Logged in as **bob** (student)" in who["value"] and who["visible"]
        assert logout["visible"] is True
        assert class_tab["visible"] is False
        who, _, class_tab = page_load(ada, "show_user", "ada-page")
        assert "Logged in as **ada** (instructor)" in who["value"]
        assert class_tab["visible"] is True


def test_logout_ends_the_session(app):
    url, _ = app
    with closing(logged_in(url, "bob")) as bob:
        assert bob.get("config").status_code == 200
        logout = next(c for c in bob.get("config").json()["components"]
                      if c.get("props", {}).get("elem_id") == "logout")
        assert logout["props"]["link"] == "logout"  # the button beside "Logged in as"
        bob.get("logout")
        assert bob.get("config").status_code == 401


def test_a_new_password_or_a_removed_account_ends_open_sessions(app):
    import time

    from moss_lab import accounts as acc

    url, home = app
    users = home / "users.toml"
    acc.add_users(users, {"eve": "eve's password", "fay": "fay's password"}, "student")
    time.sleep(1.1)  # the app follows the file within Accounts.refresh_s
    with closing(logged_in(url, "ada")) as ada, \
            closing(logged_in(url, "EVE", "eve's password")) as eve, \
            closing(logged_in(url, "fay", "fay's password")) as fay:
        assert eve.get("config").status_code == 200 and fay.get("config").status_code == 200
        acc.reset_password(users, "eve", "eve's new password")
        acc.remove_user(users, "fay")
        time.sleep(1.1)
        assert ada.get("config").status_code == 200  # any request: the file is read again
        assert eve.get("config").status_code == 401 and fay.get("config").status_code == 401
    logged_in(url, "eve", "eve's new password").close()


def test_no_outside_connection(app):
    """Gradio's analytics and version check (api.gradio.app, huggingface.co) stay off."""
    import time

    time.sleep(1)  # Gradio's version check would run in a thread started at build time
    assert LOOKED_UP and set(LOOKED_UP) <= {"127.0.0.1", "localhost", "::1"}, LOOKED_UP
