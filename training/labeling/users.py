"""The users file: who may log in, with which role, and a salted scrypt hash of each password.

users.yaml (written by `inspection users add`, mode 0600; never holds a password in clear):

    users:
      alice:
        role: reviewer
        full_name: Alice Example
        password: scrypt$16384$8$1$<salt hex>$<hash hex>
        created_utc: 2026-01-01T00:00:00.000000Z
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import Field

from inspection.validation import StrictModel, parse_model
from inspection.yaml_file import read_yaml_mapping
from training.labeling.errors import UsersFileError

# scrypt cost: n=2**14, r=8 costs about 16 MiB and tens of ms per check, which is what makes a
# stolen users file expensive to brute-force while a login stays quick.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
MIN_PASSWORD_CHARS = 8
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")


class Role(StrEnum):
    LABELER = "labeler"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Permission(StrEnum):
    LABEL = "label"
    REVIEW = "review"
    SIGN = "sign"
    USERS = "users"


# Separation of duties: an admin manages accounts (and may label) but does not review or sign.
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.LABELER: frozenset({Permission.LABEL}),
    Role.REVIEWER: frozenset({Permission.LABEL, Permission.REVIEW, Permission.SIGN}),
    Role.ADMIN: frozenset({Permission.LABEL, Permission.USERS}),
}


class UserEntry(StrictModel):
    role: Role
    full_name: str = Field(min_length=1)
    password: str = Field(pattern=r"^scrypt\$\d+\$\d+\$\d+\$[0-9a-f]+\$[0-9a-f]+$")
    created_utc: str


class UsersFile(StrictModel):
    users: dict[str, UserEntry] = Field(default_factory=dict)


def default_users_path() -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "inspection" / "users.yaml"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    _, n, r, p, salt, expected = stored.split("$")
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected) // 2,
        maxmem=256 * 1024 * 1024,
    )  # fmt: skip
    return hmac.compare_digest(digest.hex(), expected)


def load_users(path: Path) -> UsersFile:
    path = Path(path)
    if not path.exists():
        raise UsersFileError(
            f"users file {path} does not exist. Create a user first: inspection users add NAME --role reviewer --users {path}"
        )
    data = read_yaml_mapping(path, "users file", "fix it, or delete it and re-create it with `inspection users add`", UsersFileError)
    return parse_model(UsersFile, data, str(path), UsersFileError)


def add_user(path: Path, name: str, role: str, password: str, full_name: str | None, created_utc: str) -> UserEntry:
    """Add one user to the users file (created when missing); an existing name is refused."""
    path = Path(path)
    if not _NAME_PATTERN.match(name):
        raise UsersFileError(f"user name {name!r} is not valid; use 2-32 characters: lower-case letters, digits, '_', '.', '-', starting with a letter.")
    try:
        role_value = Role(role)
    except ValueError:
        raise UsersFileError(f"role {role!r} is unknown; valid roles are: {', '.join(r.value for r in Role)}.") from None
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsersFileError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD_CHARS}.")
    if full_name is not None and not (full_name.strip() and full_name.isprintable() and len(full_name) <= 100):
        raise UsersFileError("--full-name is printed in every e-signature: give one line of at most 100 printable characters.")
    users = load_users(path) if path.exists() else UsersFile()
    if name in users.users:
        raise UsersFileError(f"user {name!r} already exists in {path}. Choose another name.")
    entry = UserEntry(role=role_value, full_name=full_name or name, password=hash_password(password), created_utc=created_utc)
    updated = UsersFile(users={**users.users, name: entry})
    _write_users(path, updated)
    return entry


def _write_users(path: Path, users: UsersFile) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # 0600 from the start: the hashes are not secrets in clear, but nobody else needs to read them.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(users.model_dump(mode="json"), handle, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsersFileError(f"cannot write users file {path} ({exc.strerror or exc}). Choose a writable --users path.") from None


def read_new_password(stream=None) -> str:
    """The new password, typed twice: from the terminal without echo, or two lines of stdin when it is not a terminal."""
    import getpass
    import sys

    stream = stream or sys.stdin
    if stream.isatty():
        first, second = getpass.getpass("password: "), getpass.getpass("password again: ")
    else:
        first, second = stream.readline().rstrip("\r\n"), stream.readline().rstrip("\r\n")
    if first != second:
        raise UsersFileError("the two passwords differ; nothing was written. Run the command again.")
    return first
