"""``Client``: the ``Store`` operations over HTTP, for code that talks to a running server.

>>> from dreamflare_store.client import Client                        # doctest: +SKIP
>>> with Client("http://127.0.0.1:8000", api_key="dfk_...") as store:
...     c = store.upload(file="cat.png", user_id="alice", tags="cat,cute")

The methods have the names, parameters and results of ``Store``'s and raise the same
error classes, so code written against the embedded engine runs against a server by
changing the line that opens it. Each request acts as the API key's user: a ``user_id``
that is not that user is ``PermissionDenied``. Uploads stream from paths and file
objects; downloads stream too (``open_content``, ``download``), and the bytes received
are checked against their hash. Needs httpx (the ``http`` extra).
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar
from urllib.parse import quote, unquote

import blake3

from . import ids, validate
from .errors import DreamflareError, IntegrityError, InvalidArgument, NotFound, RemoteError
from .http.errors import error_from_response
from .http.operations import BY_NAME
from .records import Content, Page, Record, Version
from .records.accounts import (
    Analytics,
    ApiUsage,
    Collaboration,
    ContentUrls,
    Identity,
    NewApiKey,
    StorageUsage,
)
from .records.outcomes import UploadResult
from .records.search import FacetCount, Facets, Generation

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the HTTP client needs httpx: pip install 'dreamflare-store[http]'") from exc

CHUNK = 1 << 20
R = TypeVar("R", bound=Record)
_ID_KINDS = {"contentId": "content", "keyId": "key", "collaborationId": "collaboration"}
_RECORDS: dict[str, type[Record]] = {
    "Content": Content,
    "StorageUsage": StorageUsage,
    "ApiUsage": ApiUsage,
    "NewApiKey": NewApiKey,
    "Analytics": Analytics,
    "Collaboration": Collaboration,
    "Identity": Identity,
    "Generation": Generation,
}
_LISTS: dict[str, type[Record]] = {
    "VersionList": Version,
    "CollaborationList": Collaboration,
    "ContentUrlsList": ContentUrls,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def record_from_dict(cls: type[R], data: dict[str, Any]) -> R:
    """The record whose ``to_dict()`` is ``data`` (JSON lists become the records' tuples)."""
    kwargs: dict[str, Any] = {}
    for field in fields(cls):  # type: ignore[arg-type]
        key = _camel(field.name)
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, list) and "tuple[" in str(field.type):
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


class Client:
    """The ``Store`` operations, over HTTP, against a ``dreamflare serve`` server."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        from . import __version__

        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"dreamflare-store/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def close(self) -> None:
        """Close the connections. Idempotent."""
        self._http.close()

    # -- the documented operations -----------------------------------------------------

    def upload(
        self,
        file: str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes],
        user_id: str,
        description: str | None = None,
        tags: str | list[str] | tuple[str, ...] | None = None,
        content_id: str | None = None,
        filename: str | None = None,
        path: str | None = None,
    ) -> Content:
        """Upload a file (path, bytes or binary file object), streamed; see ``Store.upload``."""
        fields_ = self._wire(
            "upload",
            {
                "user_id": user_id,
                "description": description,
                "content_id": content_id,
                "filename": filename,
                "path": path,
            },
            form=True,
        )
        if tags is not None:
            # A list goes as repeated fields, but one field alone reads as the comma form:
            # check the list here as the store would, so ["a,b"] cannot pass for two tags,
            # and send the empty list (which clears a new version's tags) as "".
            checked = tags if isinstance(tags, str) else list(validate.tags(tags) or ())
            fields_["tags"] = checked or ""
        with _file_part(file) as part:
            data = self._send("upload", data=fields_, files={"file": part})
        return self._result("upload", data)  # type: ignore[no-any-return]

    def upload_many(
        self,
        files: Sequence[str | os.PathLike[str] | bytes],
        user_id: str,
        description: str | None = None,
        tags: str | list[str] | tuple[str, ...] | None = None,
        *,
        paths: Sequence[str | None] | None = None,
        new: bool = False,
    ) -> list[UploadResult]:
        """Upload many files, one request each; a result per file, as ``Store.upload_batch``.

        With ``paths`` (and not ``new``), a file whose path names one of the user's
        contents with the same bytes (hashed here) is ``"unchanged"`` and not sent; with
        other bytes it is sent as a new version (``"versioned"``). Over HTTP the server
        does not say whether bytes were new to it, so ``new_bytes`` stays False.
        """
        validate.user_id(user_id)
        if paths is not None and len(paths) != len(files):
            raise InvalidArgument("give one path (or None) per file")
        by_path: dict[str, Content] = {}
        if paths is not None and not new and any(paths):
            by_path = {item.path: item for item in self._all_contents(user_id) if item.path}
        results: list[UploadResult] = []
        for index, file in enumerate(files):
            source = str(os.fspath(file)) if isinstance(file, str | os.PathLike) else f"#{index}"
            path = paths[index] if paths is not None else None
            known = by_path.get(path) if path else None
            try:
                if known is not None and _digest_of(file) == known.hash:
                    results.append(UploadResult(source, "unchanged", known, False))
                    continue
                made = self.upload(
                    file, user_id, description, tags,
                    content_id=known.content_id if known else None, path=path,
                )  # fmt: skip
            except DreamflareError as exc:
                results.append(UploadResult(source, "failed", None, False, exc))
                continue
            results.append(UploadResult(source, "versioned" if known else "created", made))
        return results

    def _all_contents(self, user_id: str) -> Iterator[Content]:
        """Every live content of the user, a page of 1,000 at a time."""
        offset = 0
        while True:
            page = self.list_content(user_id, limit=validate.MAX_LIMIT, offset=offset)
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def get_content(self, content_id: str, user_id: str) -> Content:
        """One content item, as it is now."""
        return self._call("get_content", content_id=content_id, user_id=user_id)  # type: ignore[no-any-return]

    def delete_content(self, content_id: str, user_id: str) -> None:
        """Delete a content and all its versions (owner only)."""
        self._call("delete_content", content_id=content_id, user_id=user_id)

    def list_content(
        self,
        user_id: str,
        limit: int = 50,
        offset: int = 0,
        tags: str | list[str] | tuple[str, ...] | None = None,
    ) -> Page[Content]:
        """A page of the user's own contents, newest first (with ``tags``: carrying them)."""
        return self._call(  # type: ignore[no-any-return]
            "list_content", user_id=user_id, limit=limit, offset=offset, tags=_tag_list(tags)
        )

    # -- finding renders ------------------------------------------------------------------

    def search_content(
        self,
        user_id: str,
        query: str | None = None,
        *,
        tags: str | list[str] | tuple[str, ...] | None = None,
        model: str | None = None,
        lora: str | None = None,
        sampler: str | None = None,
        seed: str | int | None = None,
        generator: str | None = None,
        mime_type: str | None = None,
        favorite: bool | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Content]:
        """Find contents by prompt words and filters; see ``Store.search_content``."""
        return self._call(  # type: ignore[no-any-return]
            "search_content",
            user_id=user_id,
            query=query,
            tags=_tag_list(tags),
            model=model,
            lora=lora,
            sampler=sampler,
            seed=None if seed is None else str(seed),
            generator=generator,
            mime_type=mime_type,
            favorite=favorite,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            offset=offset,
        )

    def facets(
        self,
        user_id: str,
        query: str | None = None,
        *,
        tags: str | list[str] | tuple[str, ...] | None = None,
        limit: int = 50,
    ) -> Facets:
        """Models, LoRAs, samplers, generators and tags with counts; see ``Store.facets``."""
        return self._call(  # type: ignore[no-any-return]
            "facets", user_id=user_id, query=query, tags=_tag_list(tags), limit=limit
        )

    def set_favorite(self, content_id: str, user_id: str, favorite: bool = True) -> None:
        """Mark (or unmark) a content as one of the user's favorites."""
        self._call("set_favorite", content_id=content_id, user_id=user_id, favorite=favorite)

    def get_generation(
        self, content_id: str, user_id: str, version: int | None = None
    ) -> Generation:
        """The generation record and raw texts of a content's bytes."""
        return self._call(  # type: ignore[no-any-return]
            "get_generation", content_id=content_id, user_id=user_id, version=version
        )

    def update_metadata(
        self,
        content_id: str,
        user_id: str,
        description: str | None = None,
        tags: str | list[str] | tuple[str, ...] | None = None,
    ) -> Content:
        """Set the description and/or tags (``None`` keeps a field); appends a version."""
        return self._call(  # type: ignore[no-any-return]
            "update_metadata",
            content_id=content_id,
            user_id=user_id,
            description=description,
            tags=tags,
        )

    def get_storage_usage(self, user_id: str) -> StorageUsage:
        """The user's storage: contents, versions, current bytes and bytes of all versions."""
        return self._call("get_storage_usage", user_id=user_id)  # type: ignore[no-any-return]

    def get_api_usage(self, user_id: str) -> ApiUsage:
        """API calls the user made: totals, per operation, and per day."""
        return self._call("get_api_usage", user_id=user_id)  # type: ignore[no-any-return]

    def generate_api_key(self, user_id: str, description: str | None = None) -> NewApiKey:
        """A new API key for the user; its secret is in the result and nowhere else."""
        return self._call("generate_api_key", user_id=user_id, description=description)  # type: ignore[no-any-return]

    def revoke_api_key(self, key_id: str, user_id: str) -> None:
        """Revoke one of the user's keys."""
        self._call("revoke_api_key", key_id=key_id, user_id=user_id)

    def get_analytics(self, user_id: str, content_id: str | None = None) -> Analytics:
        """Views, downloads, bytes served and viewers, of one content or of all."""
        return self._call("get_analytics", user_id=user_id, content_id=content_id)  # type: ignore[no-any-return]

    def create_collaboration(
        self,
        user_id: str,
        content_id: str,
        collaborator_id: str,
        permissions: str = "read",
        strip_metadata: bool = False,
    ) -> Collaboration:
        """Share a content the user owns with a collaborator, to ``read`` or ``write``
        (with ``strip_metadata``: without its generation metadata)."""
        return self._call(  # type: ignore[no-any-return]
            "create_collaboration",
            user_id=user_id,
            content_id=content_id,
            collaborator_id=collaborator_id,
            permissions=permissions,
            strip_metadata=strip_metadata or None,
        )

    def list_collaborations(self, user_id: str) -> list[Collaboration]:
        """Collaborations on contents the user owns, and those shared with the user."""
        return self._call("list_collaborations", user_id=user_id)  # type: ignore[no-any-return]

    def update_collaboration(
        self,
        collaboration_id: str,
        user_id: str,
        permissions: str | None = None,
        strip_metadata: bool | None = None,
    ) -> Collaboration:
        """Change a collaborator's permissions and/or metadata setting (owner only)."""
        return self._call(  # type: ignore[no-any-return]
            "update_collaboration",
            collaboration_id=collaboration_id,
            user_id=user_id,
            permissions=permissions,
            strip_metadata=strip_metadata,
        )

    def delete_collaboration(self, collaboration_id: str, user_id: str) -> None:
        """End a collaboration (its owner, or the collaborator leaving)."""
        self._call("delete_collaboration", collaboration_id=collaboration_id, user_id=user_id)

    def get_content_versions(self, content_id: str, user_id: str) -> list[Version]:
        """Every version of a content, oldest first."""
        return self._call("get_content_versions", content_id=content_id, user_id=user_id)  # type: ignore[no-any-return]

    # -- bytes ----------------------------------------------------------------------------

    def open_content(
        self,
        content_id: str,
        user_id: str,
        version: int | None = None,
        strip_metadata: bool = False,
    ) -> BinaryIO:
        """A readable binary file over the bytes, streamed from the server and checked
        against their hash at the end. It has ``size``, ``digest``, ``filename`` and
        ``mime_type``; unlike the store's, it reads forward only (it cannot seek). With
        ``strip_metadata``, the bytes come without their embedded metadata."""
        request = self._request(
            "open_content",
            content_id=content_id,
            user_id=user_id,
            version=version,
            strip_metadata=strip_metadata or None,
        )
        response = self._transport(lambda: self._http.send(request, stream=True))
        if response.status_code >= 400:
            response.read()
            response.close()
            raise _error(response)
        return _RemoteReader(response, content_id)  # type: ignore[return-value]

    def read_content(
        self,
        content_id: str,
        user_id: str,
        version: int | None = None,
        strip_metadata: bool = False,
    ) -> bytes:
        """All the bytes of the content (or of one of its versions), verified."""
        with self.open_content(content_id, user_id, version, strip_metadata) as reader:
            return reader.read()

    def download(
        self,
        content_id: str,
        user_id: str,
        destination: str | os.PathLike[str] | IO[bytes],
        version: int | None = None,
        strip_metadata: bool = False,
    ) -> int:
        """Stream the bytes into a file (a path or a binary file object); returns the size.

        A path is written beside itself first and renamed into place once the bytes are
        complete and verified, so a failed download never leaves a partial file there.
        """
        with self.open_content(content_id, user_id, version, strip_metadata) as reader:
            if not isinstance(destination, str | os.PathLike):
                return _copy(reader, destination)
            target = Path(destination)
            temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
            try:
                with open(temp, "wb") as out:
                    size = _copy(reader, out)
                os.replace(temp, target)
            finally:
                temp.unlink(missing_ok=True)
            return size

    # -- the gallery's operations -------------------------------------------------------

    def thumbnail(
        self, content_id: str, user_id: str, size: int = 256, version: int | None = None
    ) -> bytes:
        """A WebP thumbnail of the content; see ``Store.thumbnail``."""
        request = self._request(
            "open_thumbnail", content_id=content_id, user_id=user_id, size=size, version=version
        )
        response = self._transport(lambda: self._http.send(request))
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    def create_urls(
        self, user_id: str, content_ids: Iterable[str] | str, expires_in: int = 3600
    ) -> list[ContentUrls]:
        """Signed URLs of contents' thumbnails and bytes, answering to this client's key."""
        ids_ = content_ids if isinstance(content_ids, str) else list(content_ids)
        return self._call(  # type: ignore[no-any-return]
            "create_urls", user_id=user_id, content_ids=ids_, expires_in=expires_in
        )

    def whoami(self) -> Identity:
        """The user and key id of this client's API key."""
        return self._call("whoami")  # type: ignore[no-any-return]

    # -- requests -------------------------------------------------------------------------

    def _call(self, name: str, **kwargs: Any) -> Any:
        request = self._request(name, **kwargs)
        response = self._transport(lambda: self._http.send(request))
        return self._result(name, response)

    def _request(self, name: str, **kwargs: Any) -> httpx.Request:
        """The request for operation ``name``: ids in the path, the rest in the query
        (GET, DELETE) or a JSON body (POST, PUT)."""
        op = BY_NAME[name]
        values = self._wire(name, kwargs, form=op.method in ("GET", "DELETE"))
        path = op.path
        for param in op.path_params:
            path = path.replace(f"{{{param}}}", quote(values.pop(param), safe=""))
        if op.method in ("GET", "DELETE"):
            return self._http.build_request(op.method, path, params=values)
        return self._http.build_request(op.method, path, json=values)

    def _wire(self, name: str, kwargs: dict[str, Any], form: bool) -> dict[str, Any]:
        """Keywords to wire names, leaving out ``None``.

        What a URL or form field cannot carry is refused here with the error the store
        would raise: a bad user id, an id no path could hold, a value of the wrong type
        in a form. JSON bodies carry values as they are, and the server judges them.
        """
        op = BY_NAME[name]
        by_arg = {param.arg: param for param in op.params}
        out: dict[str, Any] = {}
        for arg, value in kwargs.items():
            if value is None:
                continue
            wire = by_arg[arg].name
            kind = by_arg[arg].kind
            if kind == "boolean" and isinstance(value, bool) and form:
                value = "true" if value else "false"
            if arg == "user_id":
                validate.user_id(value)  # the store refuses these before counting the call
            elif wire in _ID_KINDS and (
                not isinstance(value, str) or value in ("", ".", "..") or "/" in value
            ):
                ids.check_id(_ID_KINDS[wire], value)  # raises: no path could carry it
            if form and kind == "integer":
                if isinstance(value, bool) or not isinstance(value, int | str):
                    raise InvalidArgument(f"{wire} must be an integer, not {type(value).__name__}")
            elif form and kind == "string" and not isinstance(value, str):
                raise InvalidArgument(f"{wire} must be a string, not {type(value).__name__}")
            elif not form:
                if kind == "tags" and isinstance(value, Iterable) and not isinstance(value, str):
                    value = list(value)
                    if not all(isinstance(tag, str) for tag in value):
                        raise InvalidArgument("each tag must be a string")
                if not isinstance(value, str | int | float | bool | list):
                    raise InvalidArgument(f"{wire} must be a string, not {type(value).__name__}")
            out[wire] = value
        return out

    def _send(self, name: str, **kwargs: Any) -> httpx.Response:
        op = BY_NAME[name]
        return self._transport(lambda: self._http.request(op.method, op.path, **kwargs))

    def _transport(self, send: Any) -> httpx.Response:
        """The one place where httpx's errors become ours."""
        try:
            response: httpx.Response = send()
        except httpx.TransportError as exc:
            raise RemoteError(f"cannot reach {self.base_url}: {exc}", url=self.base_url) from exc
        return response

    def _result(self, name: str, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise _error(response)
        result = BY_NAME[name].result
        if result is None or response.status_code == 204:
            return None
        body = response.json()
        if result == "ContentPage":
            items = tuple(record_from_dict(Content, item) for item in body["items"])
            return Page(items, body["total"], body["limit"], body["offset"])
        if result == "Facets":
            return Facets(
                *(
                    tuple(FacetCount(item["value"], item["count"]) for item in body[kind])
                    for kind in ("models", "loras", "samplers", "generators", "tags")
                )
            )
        if result in _LISTS:
            return [record_from_dict(_LISTS[result], item) for item in body["items"]]
        return record_from_dict(_RECORDS[result], body)


def _tag_list(tags: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Tags as repeated ``tag`` parameters, checked as the store checks them."""
    if tags is None:
        return None
    return list(validate.tags(tags) or ()) or None


def _error(response: httpx.Response) -> DreamflareError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_response(response.status_code, body)


def _digest_of(file: str | os.PathLike[str] | bytes) -> str | None:
    """The BLAKE3 name of a file's bytes, as the store names them (None: unreadable, and
    the upload will say why)."""
    if isinstance(file, bytes | bytearray | memoryview):
        return blake3.blake3(bytes(file)).hexdigest()
    try:
        hasher = blake3.blake3()
        with open(file, "rb") as source:
            while chunk := source.read(CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest()
    except OSError:
        return None


class _file_part:  # noqa: N801 (used as a context manager, like open)
    """The ``file`` part of an upload, opened from what ``Store.upload`` accepts."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self._opened: BinaryIO | None = None

    def __enter__(self) -> tuple[str | None, Any]:
        file = self.file
        if isinstance(file, bytes | bytearray | memoryview):
            return None, bytes(file)
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            if not path.is_file():
                if path.exists():
                    raise InvalidArgument(f"not a regular file: {path}")
                raise NotFound(f"{path}: no such file or folder", path=str(path))
            self._opened = open(path, "rb")  # noqa: SIM115 (closed in __exit__)
            return path.name, self._opened
        if hasattr(file, "read"):
            if isinstance(file, io.TextIOBase):
                raise InvalidArgument("file must be a binary file object (opened with 'rb')")
            name = getattr(file, "name", None)
            # Read on from where the caller left the file, as the store does (httpx
            # would seek a seekable file back to its start).
            return (Path(name).name if isinstance(name, str) else None), _ForwardOnly(file)
        raise InvalidArgument(
            f"file must be a path, bytes or a binary file object, not {type(file).__name__}"
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._opened is not None:
            self._opened.close()


class _ForwardOnly:
    """A file object's ``read`` and nothing else."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._file.read(CHUNK):
            yield chunk


class _RemoteReader(io.RawIOBase):
    """The body of a download as a binary file, hashed as it arrives and checked at the end."""

    def __init__(self, response: httpx.Response, content_id: str) -> None:
        super().__init__()
        self._response = response
        self._chunks = response.iter_bytes(CHUNK)
        self._buffer = memoryview(b"")
        self._hasher = blake3.blake3()
        self._seen = 0
        self._content_id = content_id
        self.size = int(response.headers.get("content-length", "0"))
        self.digest = response.headers.get("etag", "").strip('"')
        self.mime_type = response.headers.get("content-type")
        self.filename = _filename(response.headers.get("content-disposition", ""))

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Make sure bytes are buffered; False at the end (after checking the hash)."""
        if self._buffer:
            return True
        try:
            chunk = next(self._chunks, b"")
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"the download of {self._content_id} broke off: {exc}",
                content_id=self._content_id,
            ) from exc
        if not chunk:
            if self._seen != self.size or self._hasher.hexdigest() != self.digest:
                raise IntegrityError(
                    f"the bytes received for {self._content_id} do not match their hash",
                    content_id=self._content_id,
                )
            return False
        self._hasher.update(chunk)
        self._seen += len(chunk)
        self._buffer = memoryview(chunk)
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._fill():
            return 0
        count = min(len(buffer), len(self._buffer))
        buffer[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count

    def readall(self) -> bytes:
        parts = []
        while self._fill():
            parts.append(bytes(self._buffer))
            self._buffer = memoryview(b"")
        return b"".join(parts)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def _filename(disposition: str) -> str | None:
    """The name in a Content-Disposition header (the UTF-8 ``filename*`` form first)."""
    plain = None
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename*" and value.lower().startswith("utf-8''"):
            return unquote(value[7:])
        if key.lower() == "filename":
            plain = value.strip('"')
    return plain


def _copy(reader: BinaryIO, out: IO[bytes]) -> int:
    size = 0
    while chunk := reader.read(CHUNK):
        out.write(chunk)
        size += len(chunk)
    return size
