"""Accounts for class mode (issue #14): who may log in, with which role, and a check of
their password that resists guessing.

The users file is TOML, one table per person, with a salted scrypt hash (never the
password itself):

    [users.ada]
    role = "instructor"
    password = "scrypt$n=16384,r=8,p=1$<salt, base64>$<hash, base64>"

    moss-lab users add ada --role instructor      # writes it (moss_lab.cli.users)
    accounts = Accounts.load("users.toml")        # AccountsError when anything is wrong
    accounts.check("ada", "the password")         # True / False (see the lock-out below)
    accounts.user("ada")                          # User("ada", "instructor") or None

Names are the annotator names of the label store, so they are normalised the same way
(moss_lab.labels.normalise_name: full-width "ａｄａ" is "ada") and compared without case:
two entries that only differ there are refused, and a login as "Ada" is ada. A name is
also a folder (runs/users/<name>/), so it may hold letters, digits, "_", "-" and "." only.

Guessing: after LOCK_AFTER wrong passwords in a row for one name, that name is locked for
LOCK_FIRST_S seconds, doubling with each further failure up to LOCK_MAX_S; an attempt
during the lock fails without being checked (no hashing, no sleeping: Gradio's login route
would hold its event loop). Beyond GLOBAL_FAILURES_PER_MIN failures in the last minute,
over all names (someone trying many names), every attempt fails until the minute has
passed. A right password resets the name's count. The price: anyone can lock a student out
for a while by typing wrong passwords under their name.

A running app follows the file: `moss-lab users reset/add/remove` take effect within a
second (checked at most once a second, on a login or a request). A removed user's open
page is refused by every handler that asks current_user(). A file that became unusable is
reported on stderr and the accounts before it stay in use.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import tomllib
import weakref
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from moss_lab.files import write_text
from moss_lab.labels import LabelError, checked_name, normalise_name
from moss_lab.runs import OWNER_RE

if TYPE_CHECKING:
    from moss_lab.app.session import User

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # longer input is refused unhashed (scrypt of megabytes costs time)
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # OWASP's minimum for scrypt; ~16 MiB, ~50 ms a check
MAX_COST = {"n": 2**17, "r": 16, "p": 4}  # a hand-edited hash may not ask for more,
MIN_N = 2**10                              # nor be cheap to guess offline
LOCK_AFTER = 5
LOCK_FIRST_S = 5.0
LOCK_MAX_S = 300.0
GLOBAL_FAILURES_PER_MIN = 100
ROLES = ("student", "instructor")  # moss_lab.app.session reads them from here


class AccountsError(ValueError):
    """A users file or an account change that cannot be used; the message says why (and
    never holds a password)."""


# --- passwords -----------------------------------------------------------------------
def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`, as stored in the users file."""
    checked_password(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, **SCRYPT)
    return (f"scrypt$n={SCRYPT['n']},r={SCRYPT['r']},p={SCRYPT['p']}$"
            f"{base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    parsed = parse_hash(stored)
    if parsed is None or not isinstance(password, str) or len(password) > MAX_PASSWORD:
        return False
    cost, salt, digest = parsed
    return hmac.compare_digest(_scrypt(password, salt, **cost, dklen=len(digest)), digest)


def parse_hash(stored) -> tuple[dict, bytes, bytes] | None:
    """(cost, salt, digest) of a stored hash; None when it is not one of ours."""
    match = re.fullmatch(r"scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)",
                         stored if isinstance(stored, str) else "")
    if match is None:
        return None
    cost = dict(zip("nrp", map(int, match.groups()[:3])))
    if not all(1 <= cost[k] <= MAX_COST[k] for k in cost) or cost["n"] < MIN_N \
            or cost["n"] & (cost["n"] - 1):
        return None  # out of bounds, or n not a power of two
    try:
        salt, digest = (base64.b64decode(x, validate=True) for x in match.groups()[3:])
    except ValueError:
        return None
    return (cost, salt, digest) if len(salt) >= 8 and 16 <= len(digest) <= 128 else None


def checked_password(password) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise AccountsError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountsError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def new_password() -> str:
    """A random password to hand out (12 characters, ~72 bits)."""
    return secrets.token_urlsafe(9)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = 64) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=256 * n * r * p + 2**20)


@functools.cache
def _dummy() -> str:
    """A hash to check an unknown name's password against: it costs the same time."""
    return hash_password("not anybody's password")


# --- names ---------------------------------------------------------------------------
def checked_user_name(name) -> str:
    """The name as stored: normalised, 1-64 characters, safe as a folder name."""
    if not normalise_name(name):
        raise AccountsError("a user name cannot be empty")
    try:
        name = checked_name(name)
    except LabelError as err:
        raise AccountsError(str(err).replace("annotator name", "user name")) from None
    if not OWNER_RE.fullmatch(name):  # the run manager's rule for an owner's folder
        raise AccountsError(f"user name {name!r}: use letters, digits, '_', '-' and '.' "
                            "only (it names the user's runs folder)")
    return name


def name_key(name) -> str:
    """What makes two names the same person: normalised and without case."""
    return normalise_name(name).casefold()


# --- the users file ------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password: str  # the stored hash


class Accounts:
    """The accounts of a class, and the login check with its lock-out."""

    refresh_s = 1.0  # how often (at most) the users file is checked for changes

    def __init__(self, accounts: list[Account], path: Path | None = None,
                 clock=time.monotonic):
        self.path = path
        self.clock = clock
        self._by_key = {name_key(a.name): a for a in accounts}
        self._stamp = _stamp(path)
        self._looked = time.monotonic()
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (in a row, locked until)
        self._recent: collections.deque[float] = collections.deque()  # every failure's time
        self._pending: dict[str, int] = {}  # key -> attempts being checked right now
        # called with the keys (name_key) of accounts removed or given a new password when
        # the file is re-read: the app ends their open sessions (lab_app.end_sessions)
        self.on_ended: list = []

    @classmethod
    def load(cls, path: str | Path) -> "Accounts":
        """The accounts of a users file; AccountsError naming the first problem."""
        path = Path(path)
        accounts = [_checked_entry(name, entry) for name, entry in _users_table(path).items()]
        if not accounts:
            raise AccountsError(f"{path}: no users (add one: moss-lab users add NAME "
                                f"--role instructor --users {path})")
        _refuse_twins([a.name for a in accounts], path)
        return cls(accounts, path)

    def follow(self) -> None:
        """Re-read the users file every refresh_s in a daemon thread, not only when someone
        logs in or acts: a removed account's or a reset password's open sessions end within
        ~1 s (on_ended). The thread ends with this object."""
        ref = weakref.ref(self)

        def loop():
            while (accounts := ref()) is not None:
                accounts._fresh()
                every = accounts.refresh_s
                del accounts  # no strong reference while asleep
                time.sleep(every)

        if self.path is not None:
            threading.Thread(target=loop, name="follow-users-file", daemon=True).start()

    @property
    def names(self) -> list[str]:
        return sorted(a.name for a in self._fresh().values())

    @property
    def instructors(self) -> list[str]:
        return sorted(a.name for a in self._fresh().values() if a.role == "instructor")

    def _fresh(self) -> dict[str, Account]:
        """The accounts, re-read when the users file changed (at most once per refresh_s)."""
        if self.path is None or time.monotonic() - self._looked < self.refresh_s:
            return self._by_key
        self._looked = time.monotonic()
        stamp = _stamp(self.path)
        if stamp != self._stamp:
            self._stamp = stamp  # a broken file is reported once, not on every request
            try:
                before, self._by_key = self._by_key, Accounts.load(self.path)._by_key
            except AccountsError as err:
                print(f"moss-lab: the users file changed but cannot be used, keeping the "
                      f"accounts it had before: {err}", file=sys.stderr)
            else:
                ended = {key for key, account in before.items()
                         if key not in self._by_key or
                         self._by_key[key].password != account.password}
                for listener in self.on_ended if ended else ():
                    listener(ended)
        return self._by_key

    def user(self, name) -> User | None:
        """The User of a login name (as typed: normalised, any case), or None."""
        from moss_lab.app.session import User

        account = self._fresh().get(name_key(name)) if isinstance(name, str) else None
        return User(account.name, account.role) if account else None

    def check(self, name, password) -> bool:
        """Is this the user's password? False for a wrong one, an unknown name, or while
        the name (or the whole login) is locked after repeated failures."""
        key = name_key(name) if isinstance(name, str) and len(name) <= 1024 else ""
        with self._lock:
            if self._locked(key, self.clock()):
                return False
            self._pending[key] = self._pending.get(key, 0) + 1
        ok = False
        try:
            account = self._fresh().get(key)
            ok = verify_password(password, account.password if account else _dummy())
            ok = ok and account is not None
        finally:
            with self._lock:
                self._pending[key] -= 1
                if not self._pending[key]:
                    del self._pending[key]
                if ok:
                    self._failures.pop(key, None)
                else:
                    self._failed(key, self.clock())
        return ok

    async def check_async(self, name, password) -> bool:
        """check() in a worker thread: Gradio awaits an async auth function on its event
        loop, which would otherwise stop serving everyone for each ~50 ms hash."""
        return await asyncio.to_thread(self.check, name, password)

    def _locked(self, key: str, now: float) -> bool:
        while self._recent and self._recent[0] <= now - 60:
            self._recent.popleft()
        if len(self._recent) >= GLOBAL_FAILURES_PER_MIN:
            return True
        count, until = self._failures.get(key, (0, 0.0))
        # attempts checked at once (threads) count too: no more guesses than the lock allows
        return now < until or self._pending.get(key, 0) >= max(1, LOCK_AFTER - count)

    def _failed(self, key: str, now: float) -> None:
        self._recent.append(now)
        count = self._failures.get(key, (0, 0.0))[0] + 1
        until = 0.0
        if count >= LOCK_AFTER:
            until = now + min(LOCK_MAX_S, LOCK_FIRST_S * 2 ** min(count - LOCK_AFTER, 20))
        self._failures[key] = (count, until)
        if len(self._failures) > 10_000:  # names made up by a guesser: forget the unlocked
            self._failures = {k: v for k, v in self._failures.items() if v[1] > now}


def _stamp(path: Path | None):
    """What changes when the file is rewritten (the atomic writer makes a new inode)."""
    try:
        info = os.stat(path) if path is not None else None
    except OSError:
        return None
    return info and (info.st_ino, info.st_mtime_ns, info.st_size)


def _users_table(path: Path) -> dict:
    if not path.is_file():
        raise AccountsError(f"users file not found: {path} (make one: moss-lab users add "
                            f"NAME --role instructor --users {path})")
    data = _read(path)
    users = data.get("users", {})
    if not isinstance(users, dict):
        raise AccountsError(f"{path}: 'users' must be a table of [users.NAME] entries")
    return users


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise AccountsError(f"{path} is not valid TOML: {err}") from None


def _checked_entry(name: str, entry) -> Account:
    if not isinstance(entry, dict):
        raise AccountsError(f"user {name!r}: expected a [users.{name}] table with role and "
                            "password")
    if checked_user_name(name) != name:
        raise AccountsError(f"user {name!r}: write the name as "
                            f"{checked_user_name(name)!r} (its normal form)")
    role = entry.get("role")
    if role not in ROLES:
        raise AccountsError(f"user {name!r}: unknown role {role!r} (one of {', '.join(ROLES)})")
    if parse_hash(entry.get("password")) is None:  # the value itself is never shown
        raise AccountsError(f"user {name!r}: the password is not a scrypt hash (plain text "
                            f"is refused); set it with: moss-lab users reset {name}")
    return Account(name, role, entry["password"])


def _refuse_twins(names: list[str], where) -> None:
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name_key(name), name)
        if other != name:
            raise AccountsError(f"{where}: users {other!r} and {name!r} are the same name "
                                "(once normalised and without case)")


# --- changing the file (moss-lab users) -----------------------------------------------
def add_user(path: str | Path, name: str, role: str, password: str) -> str:
    """Add one account; returns the stored name. A name already there is refused."""
    return add_users(path, {name: password}, role)[0]


def add_users(path: str | Path, passwords: dict[str, str], role: str) -> list[str]:
    """Add several accounts in one write (all or none); returns the stored names."""
    if role not in ROLES:
        raise AccountsError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    data = _read(Path(path))
    users = data.setdefault("users", {})
    if not isinstance(users, dict):
        raise AccountsError(f"{path}: 'users' must be a table of [users.NAME] entries")
    added = []
    for name, password in passwords.items():
        name = checked_user_name(name)
        checked_password(password)
        if any(name_key(other) == name_key(name) for other in users):
            raise AccountsError(f"{path}: user {name!r} is already there (same name once "
                                "normalised and without case); nothing was changed")
        users[name] = {"role": role, "password": hash_password(password)}
        added.append(name)
    _write(Path(path), data)
    return added


def reset_password(path: str | Path, name: str, password: str) -> str:
    """Set a new password for an existing account; returns its name."""
    data, stored = _existing(path, name)
    data["users"][stored]["password"] = hash_password(checked_password(password))
    _write(Path(path), data)
    return stored


def remove_user(path: str | Path, name: str) -> str:
    """Remove an account (their labels and runs stay); returns its name."""
    data, stored = _existing(path, name)
    del data["users"][stored]
    _write(Path(path), data)
    return stored


def stored_name(path: str | Path, name: str) -> str:
    """The name of an existing account as the file spells it; AccountsError if none."""
    return _existing(path, name)[1]


def _existing(path, name) -> tuple[dict, str]:
    path = Path(path)
    _users_table(path)  # the file is there, with a table of users
    data = _read(path)
    for stored in data.get("users", {}):
        if name_key(stored) == name_key(name):
            return data, stored
    raise AccountsError(f"no user {normalise_name(name)!r} in {path}")


def _write(path: Path, data: dict) -> None:
    """The whole file, rewritten atomically and readable by its owner only (mkstemp makes
    the temporary file 0600, and the rename keeps that). Comments are not kept."""
    lines = ["# moss-lab class accounts (moss-lab users ...): scrypt hashes, never passwords"]
    lines += [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, entry in data.get("users", {}).items():
        lines += ["", f"[users.{_value(name)}]"]
        lines += [f"{k} = {_value(v)}" for k, v in entry.items()]
    write_text(path, "\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def _value(v) -> str:
    """A TOML value: JSON's strings, numbers and booleans are TOML too."""
    if isinstance(v, (str, bool, int, float)):
        return json.dumps(v)
    raise AccountsError(f"cannot rewrite the users file: a value of type {type(v).__name__}")
