"""Class accounts (issue #14): the users file, password hashes, the login lock-out, and the
`moss-lab users` / `moss-lab app` command lines (no server here: tests/test_app_class_login.py)."""
import os
import stat
import sys
import types

import pytest

from moss_lab import accounts as acc
from moss_lab.accounts import Accounts, AccountsError
from moss_lab.cli import main

PASSWORD = "correct horse"


@pytest.fixture(autouse=True)
def cheap_hashes(request, monkeypatch):
    """New hashes at 1/16 of the real cost (the hash says its cost, so checks follow):
    the lock-out tests hash dozens of times. The tests of the hash keep the real cost."""
    if request.node.name not in ("test_hash_round_trip_and_salt",
                                 "test_expensive_cheap_or_broken_hash_is_not_one"):
        monkeypatch.setattr(acc, "SCRYPT", {"n": 2**10, "r": 8, "p": 1})


@pytest.fixture
def users(tmp_path):
    """A users file with an instructor and a student."""
    path = tmp_path / "users.toml"
    acc.add_user(path, "ada", "instructor", PASSWORD)
    acc.add_user(path, "bob", "student", "bob's password")
    return path


class Clock:
    """A clock the test moves by hand (the lock-out counts seconds)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# --- hashes ---------------------------------------------------------------------------
def test_hash_round_trip_and_salt():
    first, second = acc.hash_password(PASSWORD), acc.hash_password(PASSWORD)
    assert first.startswith("scrypt$n=16384,r=8,p=1$") and PASSWORD not in first
    assert first != second  # a salt per hash: equal passwords do not show
    assert acc.verify_password(PASSWORD, first) and acc.verify_password(PASSWORD, second)
    assert not acc.verify_password("correct horsE", first)
    assert not acc.verify_password(PASSWORD, "correct horse")  # plain text is no hash
    tampered = first[:-6] + ("A" if first[-6] != "A" else "B") + first[-5:]
    assert not acc.verify_password(PASSWORD, tampered)


def test_expensive_cheap_or_broken_hash_is_not_one():
    good = acc.hash_password(PASSWORD)
    assert acc.parse_hash(good) is not None
    assert acc.parse_hash(good.replace("n=16384", "n=1048576")) is None  # too costly
    assert acc.parse_hash(good.replace("n=16384", "n=16383")) is None  # not a power of 2
    assert acc.parse_hash(good.replace("n=16384", "n=2")) is None  # too cheap to resist
    assert acc.parse_hash(good.replace("$", "$!", 1)) is None


def test_roles_agree_with_the_session():
    from moss_lab.app.session import ROLES

    assert acc.ROLES == ROLES


# --- the users file -------------------------------------------------------------------
def test_load_gives_users_with_roles(users):
    accounts = Accounts.load(users)
    assert accounts.names == ["ada", "bob"] and accounts.instructors == ["ada"]
    ada, bob = accounts.user("ada"), accounts.user("bob")
    assert (ada.name, ada.role, ada.is_instructor, ada.class_mode) == ("ada", "instructor",
                                                                      True, True)
    assert (bob.role, bob.is_instructor) == ("student", False)
    assert accounts.user("ＡＤＡ").name == "ada"  # as typed at the login: the same person
    assert accounts.user("eve") is None and accounts.user(None) is None
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_text_password_is_refused_without_showing_it(tmp_path):
    path = write(tmp_path / "u.toml", '[users.ada]\nrole = "instructor"\npassword = "hunter22"\n')
    with pytest.raises(AccountsError, match="'ada': the password is not a scrypt hash") as err:
        Accounts.load(path)
    assert "hunter22" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ('[users.ada]\nrole = "teacher"\npassword = "{h}"\n', "unknown role 'teacher'"),
    ('[users.ada]\nrole = "student"\npassword = "{h}"\n[users."ａｄａ"]\nrole = "student"\n'
     'password = "{h}"\n', "normal form"),
    ('[users.ada]\nrole = "student"\npassword = "{h}"\n[users.Ada]\nrole = "student"\n'
     'password = "{h}"\n', "'ada' and 'Ada' are the same name"),
    ('[users."a/b"]\nrole = "student"\npassword = "{h}"\n', "letters, digits"),
    ('[users."<b>x</b>"]\nrole = "student"\npassword = "{h}"\n', "letters, digits"),
    ('[users.{long}]\nrole = "student"\npassword = "{h}"\n', "too long"),
    ('[users]\n', "no users"),
    ('[users.ada\n', "not valid TOML"),
])
def test_bad_users_files_are_refused(tmp_path, text, message):
    text = text.replace("{h}", acc.hash_password(PASSWORD)).replace("{long}", "a" * 65)
    with pytest.raises(AccountsError, match=message):
        Accounts.load(write(tmp_path / "u.toml", text))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(AccountsError, match="users file not found"):
        Accounts.load(tmp_path / "nope.toml")


def test_add_refuses_a_twin_and_keeps_the_others(users):
    before = users.read_text()
    for twin in ("ada", "ＡＤＡ", "a\u200bda", "Ada"):
        with pytest.raises(AccountsError, match="already there"):
            acc.add_user(users, twin, "student", PASSWORD)
    assert users.read_text() == before
    with pytest.raises(AccountsError, match="at least 8"):
        acc.add_user(users, "carl", "student", "short")
    acc.add_user(users, "carl", "student", "carl's password")
    accounts = Accounts.load(users)
    assert accounts.names == ["ada", "bob", "carl"]
    assert accounts.check("ada", PASSWORD) and accounts.check("carl", "carl's password")


def test_reset_and_remove(users):
    assert acc.reset_password(users, "BOB", "a new password") == "bob"
    accounts = Accounts.load(users)
    assert accounts.check("bob", "a new password") and not accounts.check("bob", "bob's password")
    acc.remove_user(users, "bob")
    assert Accounts.load(users).names == ["ada"]
    with pytest.raises(AccountsError, match="no user 'bob'"):
        acc.remove_user(users, "bob")


def test_a_running_app_follows_the_file(users, capsys):
    accounts = Accounts.load(users)
    accounts.refresh_s = 0  # look at every call (the app: at most once a second)
    acc.reset_password(users, "bob", "a new password")
    acc.add_user(users, "carl", "student", "carl's password")
    assert accounts.check("bob", "a new password") and not accounts.check("bob", "bob's password")
    assert accounts.user("carl").role == "student"
    acc.remove_user(users, "bob")
    assert accounts.user("bob") is None and not accounts.check("bob", "a new password")
    write(users, users.read_text().replace('"student"', '"teacher"'))  # a broken edit
    assert accounts.user("carl").role == "student"  # the accounts before it stay
    assert "cannot be used" in capsys.readouterr().err


# --- the login check --------------------------------------------------------------------
def test_lock_out_after_repeated_failures_and_reset_after_success(users):
    clock = Clock()
    accounts = Accounts.load(users)
    accounts.clock = clock
    for _ in range(acc.LOCK_AFTER - 1):
        assert not accounts.check("bob", "wrong password")
    assert accounts.check("bob", "bob's password")  # a success resets the count
    for _ in range(acc.LOCK_AFTER):
        assert not accounts.check("bob", "wrong password")
    # locked: even the right password fails, for LOCK_FIRST_S seconds
    assert not accounts.check("bob", "bob's password")
    assert not accounts.check("BOB", "bob's password")  # another spelling is the same name
    assert accounts.check("ada", PASSWORD)  # other names are not locked
    clock.now += acc.LOCK_FIRST_S + 0.1
    assert not accounts.check("bob", "wrong again")  # the 6th failure: locked twice as long
    clock.now += acc.LOCK_FIRST_S + 0.1
    assert not accounts.check("bob", "bob's password")
    clock.now += acc.LOCK_FIRST_S
    assert accounts.check("bob", "bob's password")
    assert not accounts.check("bob", "wrong password")  # the count started again
    assert accounts.check("bob", "bob's password")


def test_lock_grows_to_its_maximum(users):
    clock = Clock()
    accounts = Accounts.load(users)
    accounts.clock = clock
    for _ in range(20):
        accounts.check("bob", "wrong password")
        clock.now += acc.LOCK_MAX_S + 1  # each attempt after the lock: checked, failed
    accounts.check("bob", "wrong password")
    clock.now += acc.LOCK_MAX_S - 1
    assert not accounts.check("bob", "bob's password")
    clock.now += 1.5
    assert accounts.check("bob", "bob's password")


def test_concurrent_guesses_get_no_more_tries(users, monkeypatch):
    """20 wrong passwords sent at once (threads, as the server runs them): only LOCK_AFTER
    are checked before the name locks."""
    import threading
    import time

    checked, verify = [], acc.verify_password

    def slow_verify(password, stored):
        checked.append(password)
        time.sleep(0.05)  # all threads arrive while the first ones are being checked
        return verify(password, stored)

    monkeypatch.setattr(acc, "verify_password", slow_verify)
    accounts = Accounts.load(users)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        accounts.check("bob", f"guess {i}"))) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [False] * 20 and len(checked) == acc.LOCK_AFTER


def test_global_cap_on_failures_per_minute(users, monkeypatch):
    monkeypatch.setattr(acc, "GLOBAL_FAILURES_PER_MIN", 6)
    clock = Clock()
    accounts = Accounts.load(users)
    accounts.clock = clock
    for i in range(6):  # a different made-up name each time: no name reaches its lock
        assert not accounts.check(f"guess{i}", "wrong password")
    assert not accounts.check("ada", PASSWORD)  # everyone waits
    clock.now += 61
    assert accounts.check("ada", PASSWORD)


def test_unknown_names_and_odd_input_fail():
    accounts = Accounts([acc.Account("ada", "student", acc.hash_password(PASSWORD))])
    assert not accounts.check("eve", PASSWORD)
    assert not accounts.check(None, PASSWORD) and not accounts.check("ada", None)
    assert not accounts.check("ada", "x" * 10_000)
    assert accounts.check(" ada ", PASSWORD)


# --- the command lines ------------------------------------------------------------------
def test_users_command_add_reset_list_remove(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MOSS_LAB_PASSWORD", raising=False)
    path, secret = tmp_path / "users.toml", write(tmp_path / "pw.txt", "first password\n")
    users = ["--users", str(path)]
    assert main(["users", "add", "ada", "--role", "instructor", "--password-file", str(secret),
                 *users]) == 0
    monkeypatch.setenv("MOSS_LAB_PASSWORD", "bob's password")
    assert main(["users", "add", "bob", *users]) == 0
    assert main(["users", "add", "ＢＯＢ", *users]) == 2
    assert "already there" in capsys.readouterr().err
    assert "first password" not in path.read_text() and "bob's password" not in path.read_text()
    accounts = Accounts.load(path)
    assert accounts.check("ada", "first password") and accounts.check("bob", "bob's password")
    assert accounts.user("bob").role == "student"

    write(secret, "second password\n")
    assert main(["users", "reset", "ada", "--password-file", str(secret), *users]) == 0
    assert Accounts.load(path).check("ada", "second password")
    assert main(["users", "reset", "zed", "--password-file", str(secret), *users]) == 2
    capsys.readouterr()
    assert main(["users", "list", *users]) == 0
    out = capsys.readouterr().out
    assert "ada" in out and "instructor" in out and "2 accounts" in out
    assert main(["users", "remove", "bob", *users]) == 0
    assert Accounts.load(path).names == ["ada"]
    write(secret, "short\n")
    assert main(["users", "reset", "ada", "--password-file", str(secret), *users]) == 2
    assert "at least 8" in capsys.readouterr().err


def test_users_command_default_file_is_in_the_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSS_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("MOSS_LAB_PASSWORD", "a password")
    assert main(["users", "add", "ada", "--role", "instructor"]) == 0
    assert Accounts.load(tmp_path / "users.toml").names == ["ada"]


def test_add_class_writes_random_passwords(tmp_path, capsys):
    path, out = tmp_path / "users.toml", tmp_path / "passwords.csv"
    names = write(tmp_path / "names.txt", "carl\n# a comment\n\ndana\n")
    assert main(["users", "add-class", str(names), "--password-out", str(out),
                 "--users", str(path)]) == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["carl", "dana"] and rows[0][1] != rows[1][1]
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    accounts = Accounts.load(path)
    assert all(accounts.check(name, password) for name, password in rows)
    # again: the passwords file exists (never overwritten), and the names are taken
    assert main(["users", "add-class", str(names), "--password-out", str(out),
                 "--users", str(path)]) == 2
    assert main(["users", "add-class", str(names), "--password-out", str(tmp_path / "b.csv"),
                 "--users", str(path)]) == 2
    assert not (tmp_path / "b.csv").exists()  # nothing added, no passwords file left


@pytest.fixture
def fake_launch(monkeypatch):
    """`moss-lab app` with launch() replaced by a recorder."""
    calls = []
    fake = types.ModuleType("moss_lab.app")
    fake.launch = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "moss_lab.app", fake)
    monkeypatch.delenv("MOSS_LAB_AUTH", raising=False)
    return calls


def test_app_command_refuses_a_password_on_the_command_line(fake_launch, tmp_path, capsys):
    assert main(["app", "--auth", "ada:secret"]) == 2
    assert main(["app", "--auth=ada:secret"]) == 2
    assert "--auth-file" in capsys.readouterr().err
    assert main(["app", "--auth-file", "ada:secret"]) == 2  # the login, not a file
    err = capsys.readouterr().err
    assert "not the login itself" in err and "secret" not in err
    assert fake_launch == []


def test_app_command_shared_login_from_a_file_or_the_environment(fake_launch, tmp_path,
                                                                 monkeypatch):
    login = write(tmp_path / "login.txt", "teacher:a secret\n")
    assert main(["app", "--host", "0.0.0.0", "--port", "8000", "--auth-file", str(login)]) == 0
    assert fake_launch[-1] == {"host": "0.0.0.0", "port": 8000, "share": False,
                               "auth": ("teacher", "a secret"), "users": None, "processes": True}
    monkeypatch.setenv("MOSS_LAB_AUTH", "u:p")
    assert main(["app"]) == 0 and fake_launch[-1]["auth"] == ("u", "p")
    monkeypatch.setenv("MOSS_LAB_AUTH", "nopassword")
    assert main(["app"]) == 2 and len(fake_launch) == 2


def test_app_command_class_mode(fake_launch, users, tmp_path, capsys):
    assert main(["app", "--users", str(users)]) == 0
    accounts = fake_launch[-1]["users"]
    assert isinstance(accounts, Accounts) and fake_launch[-1]["auth"] is None
    assert accounts.check("ada", PASSWORD)
    bad = write(tmp_path / "bad.toml", '[users.ada]\nrole = "instructor"\npassword = "plain"\n')
    assert main(["app", "--users", str(bad)]) == 2
    assert main(["app", "--users", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err
    assert "not a scrypt hash" in err and "users file not found" in err
    assert len(fake_launch) == 1
