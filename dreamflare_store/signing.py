"""Signed URLs: short-lived links to a content's thumbnail and bytes, for ``<img>`` tags.

A browser's ``<img>`` and ``<video>`` cannot send an ``Authorization`` header, so the
gallery asks (with its key) for URLs that carry their own proof instead::

    /content/<id>/thumbnail?userId=alice&keyId=key_...&expires=1767225600&sig=<hex>

``sig`` is an HMAC-SHA256, under a secret this store made for itself and keeps in its own
catalog (never synced, never an API key), of the path, the user, the key that asked and
the expiry. A URL is good until its expiry, and only while that key is unrevoked: it is
checked on every use, so revoking the key ends every URL made with it. A URL names one
path, so it opens that content's thumbnails (any size, any version) or its bytes, and
nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Sequence
from urllib.parse import quote

from .catalog import Catalog
from .clock import iso_ms
from .errors import Unauthenticated
from .records.accounts import ContentUrls

SECRET_META = "url_secret"


class UrlSigner:
    """Makes and checks signed URLs with this store's own secret."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._secret: bytes | None = None
        self._lock = threading.Lock()

    def _key(self) -> bytes:
        """The store's signing secret, made (and kept in the catalog) on first use."""
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    with self._catalog.atomic():
                        value = self._catalog.db.meta(SECRET_META)
                        if value is None:
                            value = secrets.token_hex(32)
                            self._catalog.db.set_meta(SECRET_META, value)
                    self._secret = bytes.fromhex(value)
        return self._secret

    def signature(self, path: str, user_id: str, key_id: str, expires: int) -> str:
        """The HMAC of one URL: its path, user, key and expiry (seconds since the epoch)."""
        message = "\n".join((path, user_id, key_id, str(expires))).encode()
        return hmac.new(self._key(), message, hashlib.sha256).hexdigest()

    def check(
        self, path: str, user_id: str, key_id: str, expires: str, signature: str, now: float
    ) -> str:
        """The user a signed URL acts for, if it is genuine, unexpired and its key is
        unrevoked; Unauthenticated otherwise."""
        if not expires.isdigit() or len(expires) > 12:
            raise Unauthenticated("the signed URL's expiry is not a time")
        expected = self.signature(path, user_id, key_id, int(expires))
        if not hmac.compare_digest(expected, signature.lower()):
            raise Unauthenticated("the URL's signature is not valid")
        if int(expires) < now:
            raise Unauthenticated("the signed URL has expired")
        row = self._catalog.reads.key_row(key_id)
        if row is None or row["user"] != user_id or row["revoked_hlc"] is not None:
            raise Unauthenticated("the API key that signed this URL has been revoked")
        return user_id

    def urls(
        self, content_ids: Sequence[str], user_id: str, key_id: str, expires: int
    ) -> list[ContentUrls]:
        """Signed URLs of the thumbnail and bytes of each content (already checked as the
        user's to read), answering to ``key_id`` until ``expires`` (seconds)."""
        query = f"userId={quote(user_id, safe='')}&keyId={key_id}&expires={expires}"
        out = []
        for content_id in content_ids:
            urls = []
            for leaf in ("thumbnail", "data"):
                path = f"/content/{content_id}/{leaf}"
                sig = self.signature(path, user_id, key_id, expires)
                urls.append(f"{path}?{query}&sig={sig}")
            out.append(ContentUrls(content_id, urls[0], urls[1], iso_ms(expires * 1000)))
        return out
