"""API keys: made with a secret shown once, kept as a hash, revoked, and checked."""

from __future__ import annotations

import secrets

import blake3

from . import oplog, rows
from .access import Access
from .errors import Unauthenticated
from .records.accounts import ApiKey, Identity, NewApiKey
from .replica import Replica

API_KEY_PREFIX = "dfk_"
_SECRET_BYTES = 32  # 256 bits of randomness
_SECRET_LENGTH = len(API_KEY_PREFIX) + 43  # base64url of 32 bytes, unpadded


def secret_hash(secret: str) -> str:
    """What the store keeps of a key: a hash. Keys are found by it, never by comparing secrets."""
    return blake3.blake3(secret.encode()).hexdigest()


class Keys:
    """The API keys of one replica's users."""

    def __init__(self, replica: Replica, access: Access) -> None:
        self._replica = replica
        self._access = access
        self._catalog = replica.catalog

    def generate(self, user_id: str, description: str | None) -> NewApiKey:
        """A new key for the user; its secret is in the result and nowhere else, ever."""
        secret = API_KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        key_id = self._replica.new_id("key")
        data = {"user": user_id, "description": description, "secret_hash": secret_hash(secret)}
        with self._catalog.atomic():
            self._replica.record(oplog.KEY_CREATE, key_id, data)
            row = self._catalog.reads.key_row(key_id)
        assert row is not None
        key = rows.api_key(row, None)
        return NewApiKey(**{name: getattr(key, name) for name in key.__slots__}, api_key=secret)

    def revoke(self, key_id: str, user_id: str) -> None:
        """Revoke one of the user's unrevoked keys (else NotFound)."""
        with self._catalog.atomic():
            self._access.key(key_id, user_id)
            self._replica.record(oplog.KEY_REVOKE, key_id, {"user": user_id})

    def list(self, user_id: str) -> list[ApiKey]:
        """The user's keys, revoked ones included, never their secrets."""
        self._replica.counters.flush()  # last use is a buffered count
        return [
            rows.api_key(row, row["last_used_ms"]) for row in self._catalog.reads.keys_of(user_id)
        ]

    def authenticate(self, api_key: object) -> str:
        """The user who owns a valid, unrevoked key; Unauthenticated otherwise."""
        return self.identify(api_key).user_id

    def identify(self, api_key: object) -> Identity:
        """The user and key id of a valid, unrevoked key; Unauthenticated otherwise."""
        if (
            not isinstance(api_key, str)
            or len(api_key) != _SECRET_LENGTH
            or not api_key.startswith(API_KEY_PREFIX)
        ):
            raise Unauthenticated("malformed API key")
        row = self._catalog.reads.key_by_hash(secret_hash(api_key))
        if row is None:
            raise Unauthenticated("unknown API key")
        if row["revoked_hlc"] is not None:
            raise Unauthenticated("this API key has been revoked")
        self._replica.counters.key_used(row["key_id"], self._replica.now_ms())
        return Identity(str(row["user"]), str(row["key_id"]))
