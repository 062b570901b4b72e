"""Login checks for the Gradio app: the users file, rate limiting, and a log of every attempt.

Gradio calls `LoginGuard.check(username, password)` for each login form post. After
`max_failures` failed attempts for one user name within `window_s`, that name is locked for
`lockout_s`, even with the right password: a password guesser gets a handful of tries per window.
Unknown user names are rate-limited the same way (so the limit does not reveal which names exist),
and every attempt is written to the access log.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from station.archive import utc_now_iso
from training.labeling.users import UsersFile, check_password, load_users


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int = 5
    window_s: float = 300.0
    lockout_s: float = 300.0


class LoginGuard:
    def __init__(self, users_path: Path, log_path: Path, policy: LoginPolicy = LoginPolicy(), clock: Callable[[], float] = time.monotonic) -> None:
        self.users_path = Path(users_path)
        self.log_path = Path(log_path)
        self.policy = policy
        self._clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def users(self) -> UsersFile:
        # Re-read on every check so that `inspection users add` takes effect without a restart.
        return load_users(self.users_path)

    def check(self, username: str, password: str) -> bool:
        name = username.strip()
        now = self._clock()
        with self._lock:
            if self._locked_until.get(name, 0.0) > now:
                self._log(name, "refused: locked after repeated failures")
                return False
        entry = self.users().users.get(name)
        ok = entry is not None and check_password(password, entry.password)
        with self._lock:
            if ok:
                self._failures.pop(name, None)
                self._log(name, "ok")
                return True
            failures = self._failures[name]
            failures.append(now)
            while failures and failures[0] < now - self.policy.window_s:
                failures.popleft()
            if len(failures) >= self.policy.max_failures:
                self._locked_until[name] = now + self.policy.lockout_s
                failures.clear()
                self._log(name, f"failed; locked for {self.policy.lockout_s:.0f} s")
            else:
                self._log(name, "failed" if entry is not None else "failed: unknown user")
            return False

    def log_refusal(self, name: str, action: str) -> None:
        with self._lock:
            self._log(name, f"refused: may not {action}", event="action")

    def _log(self, name: str, outcome: str, event: str = "login") -> None:
        line = f"{utc_now_iso()}\t{event}\t{name!r}\t{outcome}\n"
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(line)
