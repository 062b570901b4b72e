"""Users file (scrypt hashes, roles) and the login guard (rate limit, log)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from training.labeling.errors import UsersFileError
from training.labeling.login_guard import LoginGuard, LoginPolicy
from training.labeling.users import PERMISSIONS, Permission, Role, add_user, check_password, load_users, read_new_password

NOW = "2026-01-01T00:00:00.000000Z"


def test_password_is_stored_as_salted_scrypt_never_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "alice", "reviewer", "correct horse", "Alice Example", NOW)
    add_user(path, "bob", "labeler", "correct horse", None, NOW)
    text = path.read_text()
    assert "correct horse" not in text
    users = load_users(path).users
    assert users["alice"].password.startswith("scrypt$") and users["alice"].password != users["bob"].password  # salted
    assert check_password("correct horse", users["alice"].password)
    assert not check_password("correct horsE", users["alice"].password)
    assert users["bob"].full_name == "bob" and users["alice"].role is Role.REVIEWER
    assert path.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "name, role, password, message",
    [("Alice", "reviewer", "long enough", "not valid"), ("carol", "boss", "long enough", "valid roles are: labeler, reviewer, admin"),
     ("carol", "labeler", "short", "at least 8")],
)  # fmt: skip
def test_bad_user_input_names_the_fix(tmp_path: Path, name: str, role: str, password: str, message: str) -> None:
    with pytest.raises(UsersFileError, match=message):
        add_user(tmp_path / "users.yaml", name, role, password, None, NOW)


def test_duplicate_user_and_misspelt_key_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    add_user(path, "alice", "reviewer", "long enough", None, NOW)
    with pytest.raises(UsersFileError, match="already exists"):
        add_user(path, "alice", "admin", "long enough", None, NOW)
    data = yaml.safe_load(path.read_text())
    data["users"]["alice"]["rol"] = data["users"]["alice"].pop("role")
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UsersFileError, match="unknown key 'users.alice.rol'"):
        load_users(path)


@pytest.mark.parametrize(
    "text, message",
    [("users:\n  alice: {role: admin}\n  alice: {role: labeler}\n", "'alice' appears twice at line 3"),
     ("users: [alice\n", "not valid YAML"), ("", "must hold a mapping"), (b"\xff\xfe", "not UTF-8")],
)  # fmt: skip
def test_a_users_file_that_cannot_be_read_is_one_line_with_the_fix(tmp_path: Path, text: str | bytes, message: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(UsersFileError, match=message) as caught:
        load_users(path)
    assert "\n" not in str(caught.value)


def test_a_users_file_that_is_a_folder_or_missing_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError, match="is a folder"):
        load_users(tmp_path)
    with pytest.raises(UsersFileError, match="does not exist. Create a user first"):
        load_users(tmp_path / "users.yaml")


def test_only_reviewers_sign_and_only_admins_manage_users() -> None:
    assert Permission.SIGN not in PERMISSIONS[Role.LABELER] and Permission.SIGN in PERMISSIONS[Role.REVIEWER]
    assert Permission.SIGN not in PERMISSIONS[Role.ADMIN] and Permission.USERS in PERMISSIONS[Role.ADMIN]


def test_password_is_read_twice_from_stdin() -> None:
    assert read_new_password(io.StringIO("secret-123\nsecret-123\n")) == "secret-123"
    with pytest.raises(UsersFileError, match="differ"):
        read_new_password(io.StringIO("secret-123\nsecret-124\n"))


def test_failed_logins_are_rate_limited_and_logged(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    add_user(users, "alice", "labeler", "long enough", None, NOW)
    clock = [1000.0]
    guard = LoginGuard(users, tmp_path / "access.log", LoginPolicy(max_failures=3, window_s=60, lockout_s=120), clock=lambda: clock[0])
    assert guard.check("alice", "long enough")
    for _ in range(3):
        assert not guard.check("alice", "guess")
    assert not guard.check("alice", "long enough")  # locked: even the right password
    clock[0] += 121
    assert guard.check("alice", "long enough")
    assert not guard.check("mallory", "anything")
    log = (tmp_path / "access.log").read_text()
    assert "'alice'\tfailed; locked for 120 s" in log and "refused: locked" in log and "'mallory'\tfailed: unknown user" in log
