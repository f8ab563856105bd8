"""etcd's simple tokens (`--auth-token simple`, auth/simple_token.go).

A token is "<16 random letters>.<index>" and names one user. It lives in
memory only (a restart, or disabling auth, invalidates every token) and
expires `ttl` seconds after it was last used; each use renews it. Changing
a user's password or deleting the user invalidates its tokens.
"""

import secrets
import string
import threading
import time
from collections.abc import Callable

DEFAULT_TOKEN_TTL = 300.0  # --auth-token-ttl: 5 minutes
TOKEN_PREFIX_LENGTH = 16
_LETTERS = string.ascii_lowercase + string.ascii_uppercase


class SimpleTokens:
    """Live tokens: token -> (user name, expiry).

    Args:
        ttl: seconds a token lives after its last use.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, ttl: float = DEFAULT_TOKEN_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl if ttl > 0 else DEFAULT_TOKEN_TTL
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}

    def assign(self, user: str, index: int) -> str:
        """A new token for `user`; `index` follows the prefix, as etcd's raft index does."""
        prefix = "".join(secrets.choice(_LETTERS) for _ in range(TOKEN_PREFIX_LENGTH))
        token = f"{prefix}.{index}"
        now = self._clock()
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (user, now + self.ttl)
        return token

    def user_of(self, token: str) -> str | None:
        """The user a live token names (renewing it), or None."""
        now = self._clock()
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                return None
            if entry[1] <= now:
                del self._tokens[token]
                return None
            self._tokens[token] = (entry[0], now + self.ttl)
            return entry[0]

    def invalidate_user(self, user: str) -> None:
        """Drop every token of `user`."""
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[0] != user}

    def clear(self) -> None:
        """Drop every token (auth disabled)."""
        with self._lock:
            self._tokens = {}
