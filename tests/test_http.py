"""The HTTP adapter as a plain HTTP client sees it: each documented endpoint, auth, every
parameter form, malformed input, streaming uploads and ranged downloads, the first run of
``serve``, and the memory bound of a 1 GiB upload."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import httpx
import jsonschema
import psutil
import pytest
from helpers import damage_blob, spooled, stored_blobs

from dreamflare_store import DreamflareError, Store, __version__, errors
from dreamflare_store.blobs import hash_bytes
from dreamflare_store.cli.serve import print_welcome
from dreamflare_store.http import create_app, docs
from dreamflare_store.http import errors as http_errors
from dreamflare_store.http.openapi import SCHEMAS
from dreamflare_store.http.operations import BY_NAME, OPERATIONS
from dreamflare_store.http.testing import LiveServer

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5d8b1d30000000049454e44ae426082"
)
MISSING_CONTENT = "cnt_00000000000000000000000000"
UNKNOWN_KEY = "dfk_" + "A" * 43  # well-formed, never issued


@dataclass
class Env:
    store: Store
    url: str
    http: httpx.Client
    keys: dict[str, str]

    def auth(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    def request(self, method: str, path: str, user: str = "alice", **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(user), **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def upload(self, data: bytes = b"hello", user: str = "alice", **fields: str) -> dict[str, Any]:
        response = self.request(
            "POST",
            "/upload",
            user,
            data={"userId": user, **fields},
            files={"file": ("f.bin", data)},
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def nothing_stored(self) -> bool:
        temps = list((self.store.path / "tmp").iterdir())
        blobs = stored_blobs(self.store)
        return not blobs and not temps and self.store.list_content("alice").total == 0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with (
        Store(tmp_path / "store") as store,
        LiveServer(store) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        keys = {user: store.generate_api_key(user).api_key for user in ("alice", "bob")}
        yield Env(store, server.url, http, keys)


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One server for the many requests that must change nothing (or only read)."""
    with (
        Store(tmp_path_factory.mktemp("shared") / "store") as store,
        LiveServer(store) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        keys = {user: store.generate_api_key(user).api_key for user in ("alice", "bob")}
        yield Env(store, server.url, http, keys)


def conforms(body: Any, schema_name: str) -> None:
    """Check a JSON body against its schema in the OpenAPI document."""
    root = {"components": {"schemas": SCHEMAS}, "$ref": f"#/components/schemas/{schema_name}"}
    jsonschema.Draft202012Validator(root).validate(body)


def error_code(response: httpx.Response) -> str:
    conforms(response.json(), "Error")
    return response.json()["error"]["code"]  # type: ignore[no-any-return]


# -- the documented endpoints, one by one ------------------------------------------------------


@dataclass
class World:
    content_id: str
    collaboration_id: str
    key_id: str


def make_world(env: Env) -> World:
    content = env.upload(PNG_1x1, description="cat", tags="a,b")
    collab = env.request(
        "POST",
        "/collaboration/create",
        json={"userId": "alice", "contentId": content["contentId"], "collaboratorId": "bob"},
    ).json()
    key = env.store.generate_api_key("alice", description="spare")
    return World(content["contentId"], collab["collaborationId"], key.key_id)


def documented_request(name: str, w: World) -> tuple[str, str, dict[str, Any]]:
    """A valid request for each operation, exactly in the documented form."""
    user = {"userId": "alice"}
    table: dict[str, tuple[str, str, dict[str, Any]]] = {
        "upload": ("POST", "/upload", {
            "data": {"userId": "alice", "description": "d", "tags": "x,y"},
            "files": {"file": ("dog.png", PNG_1x1)},
        }),
        "get_content": ("GET", f"/content/{w.content_id}", {"params": user}),
        "delete_content": ("DELETE", f"/content/{w.content_id}", {"params": user}),
        "list_content": ("GET", "/content/list", {"params": {**user, "limit": 10, "offset": 0}}),
        "update_metadata": ("PUT", f"/content/{w.content_id}/metadata", {
            "data": {**user, "description": "new", "tags": "c"}
        }),
        "get_storage_usage": ("GET", "/storage/usage", {"params": user}),
        "get_api_usage": ("GET", "/api/usage", {"params": user}),
        "generate_api_key": ("POST", "/api/key/generate", {"data": {**user, "description": "k"}}),
        "revoke_api_key": ("DELETE", f"/api/key/{w.key_id}/revoke", {"params": user}),
        "get_analytics": ("GET", "/analytics", {"params": {**user, "contentId": w.content_id}}),
        "create_collaboration": ("POST", "/collaboration/create", {"data": {
            **user, "contentId": w.content_id, "collaboratorId": "carol", "permissions": "write"
        }}),
        "list_collaborations": ("GET", "/collaboration/list", {"params": user}),
        "update_collaboration": ("PUT", f"/collaboration/{w.collaboration_id}", {
            "data": {**user, "permissions": "write"}
        }),
        "delete_collaboration": (
            "DELETE", f"/collaboration/{w.collaboration_id}", {"params": user}
        ),
        "get_content_versions": ("GET", f"/content/{w.content_id}/versions", {"params": user}),
        "open_content": ("GET", f"/content/{w.content_id}/data", {"params": user}),
        "search_content": ("GET", "/content/search", {
            "params": {**user, "q": "cat", "tag": ["a", "b"]}
        }),
        "facets": ("GET", "/content/facets", {"params": {**user, "q": "cat"}}),
        "set_favorite": ("PUT", f"/content/{w.content_id}/favorite", {
            "data": {**user, "favorite": "true"}
        }),
        "get_generation": ("GET", f"/content/{w.content_id}/generation", {"params": user}),
    }  # fmt: skip
    return table[name]


# The gallery's operations (thumbnails, signed URLs, whoami) are tested in test_gallery.py.
GALLERY_OPS = ("open_thumbnail", "create_urls", "whoami")
DOCUMENTED = [op.name for op in OPERATIONS if op.name not in GALLERY_OPS]


def test_the_fifteen_documented_paths_and_methods_are_served_from_the_root() -> None:
    seed = {
        ("POST", "/upload"), ("GET", "/content/{contentId}"), ("DELETE", "/content/{contentId}"),
        ("GET", "/content/list"), ("PUT", "/content/{contentId}/metadata"),
        ("GET", "/storage/usage"), ("GET", "/api/usage"), ("POST", "/api/key/generate"),
        ("DELETE", "/api/key/{keyId}/revoke"), ("GET", "/analytics"),
        ("POST", "/collaboration/create"), ("GET", "/collaboration/list"),
        ("PUT", "/collaboration/{collaborationId}"), ("DELETE", "/collaboration/{collaborationId}"),
        ("GET", "/content/{contentId}/versions"),
    }  # fmt: skip
    numbered = {(op.method, op.path) for op in OPERATIONS if op.number is not None}
    assert numbered == seed and len([op for op in OPERATIONS if op.number]) == 15


@pytest.mark.parametrize("name", DOCUMENTED)
def test_each_endpoint_answers_as_documented(env: Env, name: str) -> None:
    w = make_world(env)
    method, path, kwargs = documented_request(name, w)
    response = env.request(method, path, **kwargs)
    op = BY_NAME[name]
    assert response.status_code == op.status, response.text
    if op.result is None:
        assert response.content == b""
    elif op.result == "bytes":
        assert response.content == PNG_1x1
    else:
        conforms(response.json(), op.result)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_each_endpoint_checks_the_key_and_the_user(env: Env, name: str) -> None:
    w = make_world(env)
    method, path, kwargs = documented_request(name, w)
    revoked = env.store.generate_api_key("alice")
    env.store.revoke_api_key(revoked.key_id, "alice")
    for headers in (
        {},
        {"Authorization": f"Bearer {UNKNOWN_KEY}"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Basic {env.keys['alice']}"},
        {"Authorization": "Bearer"},
        {"X-API-Key": revoked.api_key},
        {"Authorization": f"Bearer {env.keys['alice']}", "X-API-Key": env.keys["bob"]},
    ):
        response = env.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 401, (headers, response.text)
        assert error_code(response) == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")
    response = env.request(method, path, "bob", **kwargs)  # bob's key, alice's userId
    assert response.status_code == 403 and error_code(response) == "permission_denied"
    for field in ("params", "data"):
        if field in kwargs:
            without = {k: v for k, v in kwargs[field].items() if k != "userId"}
            response = env.request(method, path, **{**kwargs, field: without})
            assert response.status_code == 400 and error_code(response) == "invalid_argument"
            assert "userId" in response.json()["error"]["message"]
    assert env.store.verify() == []


def test_the_key_is_judged_before_the_parameters(shared_env: Env) -> None:
    # Without a body, the key check and the store call share one worker-thread trip; a
    # bad parameter must still not be reported to a caller without a valid key.
    path = f"/content/{MISSING_CONTENT}"
    for params, status in (
        ({"userId": "alice", "bogus": "1"}, 400),
        ({}, 400),
        ({"userId": "bob"}, 403),
        ({"userId": "alice"}, 404),
    ):
        response = shared_env.http.get(path, params=params)
        assert response.status_code == 401 and error_code(response) == "unauthenticated"
        response = shared_env.http.get(path, params=params, headers={"X-API-Key": UNKNOWN_KEY})
        assert response.status_code == 401 and error_code(response) == "unauthenticated"
        response = shared_env.request("GET", path, params=params)
        assert response.status_code == status, response.text


def test_x_api_key_header_works(env: Env) -> None:
    response = env.http.get(
        "/storage/usage", params={"userId": "alice"}, headers={"X-API-Key": env.keys["alice"]}
    )
    assert response.status_code == 200 and response.json()["userId"] == "alice"


def test_a_revoked_key_stops_working_at_once(env: Env) -> None:
    key = env.request("POST", "/api/key/generate", json={"userId": "alice"}).json()
    headers = {"Authorization": f"Bearer {key['apiKey']}"}
    assert env.http.get("/api/usage", params={"userId": "alice"}, headers=headers).is_success
    env.request("DELETE", f"/api/key/{key['keyId']}/revoke", params={"userId": "alice"})
    response = env.http.get("/api/usage", params={"userId": "alice"}, headers=headers)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


# -- parameter forms ------------------------------------------------------------------------


def body_forms(params: dict[str, str]) -> list[dict[str, Any]]:
    """The same parameters as JSON, URL-encoded form, multipart form, and query string."""
    multipart = {name: (None, value) for name, value in params.items()}
    return [
        {"json": params},
        {"data": params},
        {"files": multipart},
        {"params": params},
        {"params": {"userId": params["userId"]},
         "json": {k: v for k, v in params.items() if k != "userId"}},
    ]  # fmt: skip


@pytest.mark.parametrize("form", range(5))
def test_post_and_put_take_json_forms_or_the_query(env: Env, form: int) -> None:
    w = make_world(env)
    put = body_forms({"userId": "alice", "description": f"form {form}", "tags": "p,q"})[form]
    response = env.request("PUT", f"/content/{w.content_id}/metadata", **put)
    assert response.status_code == 200, response.text
    assert (response.json()["description"], response.json()["tags"]) == (f"form {form}", ["p", "q"])
    post = body_forms({"userId": "alice", "contentId": w.content_id, "collaboratorId": "dan"})
    response = env.request("POST", "/collaboration/create", **post[form])
    assert response.status_code == 201 and response.json()["permissions"] == "read"
    update = body_forms({"userId": "alice", "permissions": "write"})[form]
    response = env.request("PUT", f"/collaboration/{w.collaboration_id}", **update)
    assert response.status_code == 200 and response.json()["permissions"] == "write"
    response = env.request("POST", "/api/key/generate", **body_forms({"userId": "alice"})[form])
    assert response.status_code == 201 and response.json()["apiKey"].startswith("dfk_")


def test_tags_as_a_json_list_or_repeated_fields(env: Env) -> None:
    w = make_world(env)
    path = f"/content/{w.content_id}/metadata"
    response = env.request("PUT", path, json={"userId": "alice", "tags": ["x", "y"]})
    assert response.json()["tags"] == ["x", "y"]
    response = env.request("PUT", path, **raw(b"userId=alice&tags=m&tags=n", FORM))
    assert response.json()["tags"] == ["m", "n"]
    response = env.request("PUT", path, json={"userId": "alice", "tags": ["a,b"]})
    assert response.status_code == 400  # a tag with a comma is never two tags
    response = env.request("PUT", path, **raw(b"userId=alice&tags=a,b&tags=c", FORM))
    assert response.status_code == 400  # nor in the repeated form


def test_json_null_means_not_given(env: Env) -> None:
    w = make_world(env)
    path = f"/content/{w.content_id}/metadata"
    response = env.request("PUT", path, json={"userId": "alice", "description": None, "tags": "t"})
    assert response.status_code == 200 and response.json()["description"] == "cat"


def raw(body: bytes, content_type: str | None = "application/json") -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type else {}
    return {"content": body, "headers": headers}


FORM = "application/x-www-form-urlencoded"
ALICE = {"userId": "alice"}
KEYGEN = ("POST", "/api/key/generate")
MISSING_META = f"/content/{MISSING_CONTENT}/metadata"
MALFORMED: list[tuple[str, str, dict[str, Any], int]] = [
    ("GET", "/content/list", {"params": {"userId": "alice", "limit": "abc"}}, 400),
    ("GET", "/content/list", {"params": {"userId": "alice", "limit": "9" * 40}}, 400),
    ("GET", "/content/list", {"params": {"userId": "alice", "limit": "9" * 5000}}, 400),
    ("GET", "/content/list", {"params": {"userId": "alice", "limit": "1e3"}}, 400),
    ("GET", "/content/list", {"params": {"userId": "alice", "limit": "²"}}, 400),
    ("GET", "/content/list", {"params": {"userId": "alice", "limit": ""}}, 400),
    ("GET", "/content/list", {"params": {"userId": "alice", "offset": "-1"}}, 400),
    ("GET", "/content/list", {"params": {"userId": "alice", "Limit": "3"}}, 400),
    ("GET", "/content/list", {"params": [("userId", "alice"), ("userId", "alice")]}, 400),
    ("GET", "/content/list?userId=alice&limit=%FF", {}, 400),
    ("GET", "/content/list?userId=%FF%FE", {}, 400),
    ("GET", "/content/cnt_short", {"params": {"userId": "alice"}}, 400),
    ("GET", "/content/" + "x" * 5000, {"params": {"userId": "alice"}}, 400),
    ("GET", "/content/%00", {"params": {"userId": "alice"}}, 400),
    ("GET", f"/content/{MISSING_CONTENT}", {"params": {"userId": "alice"}}, 404),
    ("GET", "/analytics", {"params": {"userId": "alice", "contentId": "nope"}}, 400),
    ("DELETE", "/api/key/key_123/revoke", {"params": {"userId": "alice"}}, 400),
    ("DELETE", "/collaboration/col_x", {"params": {"userId": "alice"}}, 400),
    (*KEYGEN, raw(b"{not json"), 400),
    (*KEYGEN, raw(b"[1, 2]"), 400),
    (*KEYGEN, raw(b"[" * 100_000), 400),
    (*KEYGEN, raw(b'{"userId": "alice", "userId": "alice"}'), 400),
    (*KEYGEN, {"json": {**ALICE, "description": {"a": 1}}}, 400),
    (*KEYGEN, {"json": {"userId": ["alice"]}}, 400),
    (*KEYGEN, {"json": {"userId": 7}}, 400),
    (*KEYGEN, raw(b"\xff\xfe\x00"), 400),
    (*KEYGEN, raw(b"userId=%FF", FORM), 400),
    (*KEYGEN, raw(b"userId=alice", "text/plain"), 415),
    (*KEYGEN, raw(b"userId=alice", None), 415),
    (*KEYGEN, raw(b"--x\r\n", "multipart/form-data"), 400),
    (*KEYGEN, raw(b"--x\r\nbroken", "multipart/form-data; boundary=x"), 400),
    (*KEYGEN, raw(b"x" * (2 << 20)), 413),
    (*KEYGEN, {"json": {**ALICE, "nope": 1}}, 400),
    ("PUT", MISSING_META, {"json": ALICE}, 400),
    ("PUT", MISSING_META, {"json": {**ALICE, "contentId": MISSING_CONTENT, "tags": "a"}}, 400),
    ("PUT", "/collaboration/col_" + "0" * 26, {"json": {**ALICE, "permissions": "x"}}, 400),
    ("POST", "/collaboration/create", {"json": {**ALICE, "contentId": MISSING_CONTENT}}, 400),
    ("POST", "/upload", {"json": {"userId": "alice"}}, 415),
    ("POST", "/upload", {"content": b"", "headers": {"Content-Type": "multipart/form-data"}}, 400),
    ("DELETE", "/content/list", {"params": {"userId": "alice"}}, 405),
    ("PATCH", "/content/list", {"params": {"userId": "alice"}}, 405),
    ("GET", "/no/such/path", {}, 404),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), MALFORMED)
def test_malformed_requests_get_4xx_in_the_error_shape(
    shared_env: Env, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = shared_env.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    error_code(response)
    assert shared_env.store.list_content("alice").total == 0
    assert shared_env.store.list_api_keys("alice")[1:] == []  # no key was made
    assert shared_env.store.verify() == []


def test_content_list_is_never_taken_for_a_content_id(env: Env) -> None:
    env.upload()
    response = env.request("GET", "/content/list", params={"userId": "alice"})
    assert response.status_code == 200 and response.json()["total"] == 1
    conforms(response.json(), "ContentPage")


def test_every_request_that_reaches_the_store_counts_with_its_bytes(env: Env) -> None:
    content = env.upload(b"x" * 1000)
    cid = content["contentId"]
    env.request("GET", f"/content/{cid}/data", params={"userId": "alice"})
    env.request("GET", f"/content/{cid}/data", params={"userId": "alice"},
                headers={"Range": "bytes=0-99"})  # fmt: skip
    env.request("GET", "/content/list", params={"userId": "alice", "limit": "abc"})
    env.request("GET", f"/content/{MISSING_CONTENT}", params={"userId": "alice"})
    usage = env.request("GET", "/api/usage", params={"userId": "alice"}).json()
    conforms(usage, "ApiUsage")
    assert usage["byOperation"]["upload"] == {
        "calls": 1,
        "errors": 0,
        "bytesIn": 1000,
        "bytesOut": 0,
    }
    assert usage["byOperation"]["open_content"] == {
        "calls": 2, "errors": 0, "bytesIn": 0, "bytesOut": 1100
    }  # fmt: skip
    assert usage["byOperation"]["list_content"]["errors"] == 1
    assert usage["byOperation"]["get_content"]["errors"] == 1
    assert (usage["totalCalls"], usage["errors"]) == (6, 2)  # generate_api_key + the five
    analytics = env.request("GET", "/analytics", params={"userId": "alice", "contentId": cid})
    assert (analytics.json()["downloads"], analytics.json()["bytesServed"]) == (2, 1100)


# -- uploads --------------------------------------------------------------------------------

BOUNDARY = "dreamflare-test-boundary"


def multipart(*parts: tuple[str, bytes, str | None], close: bool = True) -> bytes:
    """A multipart body, parts in the given order: (name, value, filename or None)."""
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value
        out += b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def file_part_head(filename: str) -> bytes:
    """The start of a file part, up to its first byte."""
    disposition = f'form-data; name="file"; filename="{filename}"'
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()


def post_multipart(env: Env, body: bytes, **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return env.request("POST", "/upload", content=body, headers=headers, **kwargs)


def test_upload_streams_fields_then_file(env: Env) -> None:
    body = multipart(
        ("userId", b"alice", None),
        ("description", "café".encode(), None),
        ("tags", b"a", None),
        ("tags", b"b", None),
        ("file", PNG_1x1, "C:\\photos\\été.png"),
    )
    response = post_multipart(env, body)
    assert response.status_code == 201, response.text
    content = response.json()
    conforms(content, "Content")
    assert (content["filename"], content["mimeType"], content["tags"]) == (
        "été.png", "image/png", ["a", "b"]
    )  # fmt: skip
    assert (content["description"], content["width"], content["hash"]) == (
        "café", 1, hash_bytes(PNG_1x1)
    )  # fmt: skip


def test_upload_takes_user_and_content_id_from_the_query_too(env: Env) -> None:
    first = env.upload(b"one")
    body = multipart(("file", b"two", "two.txt"))
    query = {"userId": "alice", "contentId": first["contentId"]}
    response = post_multipart(env, body, params=query)
    assert response.status_code == 201
    # As in Store.upload, a new version keeps the filename unless one is given.
    assert (response.json()["version"], response.json()["filename"]) == (2, "f.bin")
    response = post_multipart(env, body, params={**query, "filename": "new.txt"})
    assert (response.json()["version"], response.json()["filename"]) == (3, "new.txt")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (multipart(("userId", b"alice", None), ("file", b"d", "x"), ("tags", b"\x01", None)),
         "control characters"),
        (multipart(("file", b"data", "x"), ("userId", b"alice", None), ("extra", b"1", None)),
         "unknown parameter"),
        (multipart(("userId", b"alice", None), ("file", b"data", "x"), ("file", b"y", "y")),
         "only one file"),
        (multipart(("userId", b"alice", None), ("file", b"data", "x"), close=False), "ended"),
        (multipart(("userId", b"alice", None)), "no file part"),
        (multipart(("file", b"data", "x")), "userId is required"),
        (multipart(("userId", b"alice", None), ("extra", b"1", None), ("file", b"d", "x")),
         "unknown parameter"),
        (multipart(("userId", b"\xff", None), ("file", b"d", "x")), "UTF-8"),
        (b"--" + BOUNDARY.encode() + b"\r\nNo-Disposition: x\r\n\r\nd\r\n", "Content-Disposition"),
        (b"garbage", "malformed"),
    ],
)  # fmt: skip
def test_a_refused_upload_leaves_nothing_behind(env: Env, body: bytes, message: str) -> None:
    response = post_multipart(env, body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert env.nothing_stored()


def test_an_upload_refused_early_still_gets_its_answer(env: Env) -> None:
    body = multipart(
        ("userId", b"alice", None),
        ("contentId", MISSING_CONTENT.encode(), None),
        ("file", os.urandom(8 << 20), "big.bin"),
    )
    response = post_multipart(env, body)
    assert response.status_code == 404 and error_code(response) == "not_found"
    assert env.nothing_stored()


def test_over_quota_upload_is_413_and_keeps_nothing(env: Env) -> None:
    env.store.set_quota("alice", 1000)
    response = post_multipart(
        env, multipart(("userId", b"alice", None), ("file", b"x" * 2000, "f"))
    )
    assert response.status_code == 413 and error_code(response) == "quota_exceeded"
    assert env.nothing_stored()


def test_a_client_that_disconnects_mid_upload_leaves_nothing(env: Env) -> None:
    head = multipart(("userId", b"alice", None), close=False) + file_part_head("f")
    host, port = env.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            (
                f"POST /upload HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {env.keys['alice']}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {100 << 20}\r\n\r\n"
            ).encode()
            + head
        )
        for _ in range(40):
            sock.sendall(b"z" * 65536)  # 2.5 MiB of the promised 100 MiB, then hang up
        deadline = time.monotonic() + 10
        while not spooled(env.store.path):  # the file part is being spooled
            assert time.monotonic() < deadline
            time.sleep(0.01)
    deadline = time.monotonic() + 10
    while not env.nothing_stored() or spooled(env.store.path):
        assert time.monotonic() < deadline, "the interrupted upload left files behind"
        time.sleep(0.02)
    env.store.flush()
    usage = env.request("GET", "/api/usage", params={"userId": "alice"}).json()
    assert usage["byOperation"]["upload"]["errors"] == 1


# -- downloads --------------------------------------------------------------------------------


def download(
    env: Env, cid: str, headers: dict[str, str] | None = None, user: str = "alice", **params: Any
) -> httpx.Response:
    return env.request("GET", f"/content/{cid}/data", user, params={"userId": user, **params},
                       headers=headers or {})  # fmt: skip


def test_download_headers(env: Env) -> None:
    png = env.upload(PNG_1x1, filename="naïve cat.png")
    response = download(env, png["contentId"])
    assert response.status_code == 200 and response.content == PNG_1x1
    assert response.headers["etag"] == f'"{png["hash"]}"'
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(PNG_1x1))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-disposition"] == (
        "inline; filename=\"na?ve cat.png\"; filename*=UTF-8''na%C3%AFve%20cat.png"
    )
    raw = env.upload(b"<html>", filename='x".html')
    response = download(env, raw["contentId"])
    assert response.headers["content-disposition"].startswith('attachment; filename="x_.html"')
    assert response.headers["x-content-type-options"] == "nosniff"


def test_conditional_and_versioned_downloads(env: Env) -> None:
    first = env.upload(b"version one")
    cid = first["contentId"]
    second = env.request("POST", "/upload", data={"userId": "alice", "contentId": cid},
                         files={"file": ("f", b"version two")}).json()  # fmt: skip
    etag = f'"{second["hash"]}"'
    response = download(env, cid, {"If-None-Match": etag})
    assert response.status_code == 304 and response.content == b""
    assert response.headers["etag"] == etag
    assert download(env, cid, {"If-None-Match": f'W/{etag}, "other"'}).status_code == 304
    assert download(env, cid, {"If-None-Match": "*"}).status_code == 304
    assert download(env, cid, {"If-None-Match": f'"{first["hash"]}"'}).content == b"version two"
    old = download(env, cid, version=1)
    assert old.content == b"version one" and old.headers["etag"] == f'"{first["hash"]}"'
    assert download(env, cid, version=3).status_code == 404
    assert download(env, cid, version=0).status_code == 400
    assert download(env, cid, version="x").status_code == 400


RANGES = [
    ("bytes=0-3", 206, b"0123", "bytes 0-3/10"),
    ("bytes=4-", 206, b"456789", "bytes 4-9/10"),
    ("bytes=-3", 206, b"789", "bytes 7-9/10"),
    ("bytes=-30", 206, b"0123456789", "bytes 0-9/10"),
    ("bytes=8-100", 206, b"89", "bytes 8-9/10"),
    ("bytes=9-9", 206, b"9", "bytes 9-9/10"),
    ("BYTES = 2 - 3", 206, b"23", "bytes 2-3/10"),
    ("bytes=0-1,4-5", 200, b"0123456789", None),  # several ranges: the whole
    ("bytes=5-2", 200, b"0123456789", None),  # invalid: ignored
    ("items=0-3", 200, b"0123456789", None),
    ("bytes=abc", 200, b"0123456789", None),
    ("bytes=10-", 416, None, "bytes */10"),
    ("bytes=-0", 416, None, "bytes */10"),
    ("bytes=" + "9" * 30 + "-", 416, None, "bytes */10"),
]


@pytest.mark.parametrize(("header", "status", "body", "content_range"), RANGES)
def test_range_requests(
    shared_env: Env, header: str, status: int, body: bytes | None, content_range: str | None
) -> None:
    env = shared_env
    cid = env.store.upload(b"0123456789", "bob").content_id
    response = download(env, cid, {"Range": header}, user="bob")
    assert response.status_code == status
    assert response.headers.get("content-range") == content_range
    if body is not None:
        assert response.content == body
        assert response.headers["content-length"] == str(len(body))
    else:
        assert error_code(response) == "range_not_satisfiable"


def test_if_range_with_an_old_etag_sends_everything(env: Env) -> None:
    content = env.upload(b"0123456789")
    fresh = download(
        env, content["contentId"], {"Range": "bytes=0-1", "If-Range": f'"{content["hash"]}"'}
    )
    stale = download(env, content["contentId"], {"Range": "bytes=0-1", "If-Range": '"old"'})
    assert (fresh.status_code, fresh.content) == (206, b"01")
    assert (stale.status_code, stale.content) == (200, b"0123456789")


def test_head_gives_the_headers_only(env: Env) -> None:
    content = env.upload(b"0123456789")
    response = env.request(
        "HEAD", f"/content/{content['contentId']}/data", params={"userId": "alice"}
    )
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == "10"


def test_a_large_download_streams_and_ranges_work_on_it(env: Env) -> None:
    data = os.urandom(5 << 20)
    cid = env.upload(data)["contentId"]
    with env.http.stream("GET", f"/content/{cid}/data", params={"userId": "alice"},
                         headers=env.auth()) as response:  # fmt: skip
        assert response.status_code == 200
        assert b"".join(response.iter_bytes()) == data
    part = download(env, cid, {"Range": f"bytes={3 << 20}-"})
    assert part.status_code == 206 and part.content == data[3 << 20 :]


def test_corrupt_bytes_are_never_served(env: Env) -> None:
    small = env.upload(b"small and precious")
    large = env.upload(os.urandom(3 << 20))
    streamed = env.upload(os.urandom(3 << 20))
    for content in (small, large, streamed):  # a row, then two files
        damage_blob(env.store, content["hash"], "flipped byte")
    response = download(env, small["contentId"])
    assert response.status_code == 500 and error_code(response) == "integrity_error"
    response = download(env, large["contentId"], {"Range": "bytes=0-9"})
    assert response.status_code == 500 and error_code(response) == "integrity_error"
    with pytest.raises(httpx.HTTPError):  # streamed: the connection is cut before the end
        download(env, streamed["contentId"])
    # Found bad, each went to the quarantine: later downloads are refused at once.
    for content in (small, large, streamed):
        assert (env.store.path / "bad" / content["hash"]).is_file()
        response = download(env, content["contentId"])
        assert response.status_code == 500 and error_code(response) == "integrity_error"


# -- the rest of the surface ------------------------------------------------------------------


def test_health_openapi_and_docs(env: Env) -> None:
    assert env.http.get("/health").json() == {"status": "ok", "version": __version__}
    document = env.http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    served = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert {(op.method, op.path) for op in OPERATIONS} | {("GET", "/health")} == served
    docs = env.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_every_reference_of_the_document_resolves() -> None:
    from dreamflare_store.http.openapi import document

    served = document("0")
    names = set(re.findall(r'"#/components/schemas/(\w+)"', json.dumps(served)))
    assert {op.result for op in OPERATIONS} - {None, "bytes"} <= names
    assert names <= served["components"]["schemas"].keys()


def test_the_docs_pages_load_everything_from_the_server_itself(env: Env) -> None:
    """/docs and /redoc work offline: every script, style and document they name is served
    by the adapter, and nothing they name is on another host."""
    host = httpx.URL(env.url).netloc
    for page, script, global_name in (
        ("/docs", "swagger-ui-bundle.js", "SwaggerUIBundle"),
        ("/redoc", "redoc.standalone.js", "Redoc"),
    ):
        response = env.http.get(page)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        text = response.text
        for absolute in re.findall(r"(?:https?:)?//[^\s\"'<>)]+", text):
            assert httpx.URL(absolute, scheme="http").netloc == host, absolute
        named = re.findall(r'(?:src|href|spec-url|data-spec)="([^"]+)"', text)
        # The browser itself is told to load nothing from elsewhere (no CDN, even by
        # a script) and to run no script but the served files.
        policy = dict(
            part.strip().split(" ", 1)
            for part in response.headers["content-security-policy"].split(";")
        )
        assert policy["default-src"] == policy["script-src"] == "'self'"
        assert not re.search(r"https?:|\*", response.headers["content-security-policy"])
        assert any(url.endswith(script) for url in named), named
        assert any(url.endswith("/openapi.json") for url in named), named
        for url in named:
            asset = env.http.get(response.url.join(url))
            assert asset.status_code == 200, url
            assert len(asset.content) > 0
            expected = {".js": "javascript", ".css": "text/css", ".json": "json", ".png": "png"}
            kind = next(v for k, v in expected.items() if url.endswith(k))
            assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
            if url.endswith(script):
                assert global_name.encode() in asset.content
            if url.endswith("/openapi.json"):
                assert asset.json()["openapi"].startswith("3.1")
    unknown = env.http.get("/docs/assets/secret.txt")
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"


def test_without_the_docs_files_the_pages_say_what_to_install(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docs, "asset_root", lambda: None)
    for page in ("/docs", "/redoc"):
        response = env.http.get(page)
        assert response.status_code == 200
        assert "dreamflare-store[http]" in response.text and "/openapi.json" in response.text
    missing = env.http.get("/docs/assets/swagger-ui-bundle.js")
    assert missing.status_code == 404 and error_code(missing) == "not_found"


def test_the_routers_own_refusals_answer_in_the_error_shape(env: Env) -> None:
    missing = env.request("GET", "/no/such/path")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": "no such path"}}
    wrong = env.request("POST", "/analytics", params={"userId": "alice"})
    assert wrong.status_code == 405 and error_code(wrong) == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]
    assert env.store.get_api_usage("alice").total_calls == 1  # the key's creation only


def test_an_uncaught_exception_answers_500_internal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    with Store(tmp_path / "store") as store:
        key = store.generate_api_key("alice").api_key
        monkeypatch.setattr(store, "get_analytics", broken)
        with LiveServer(store) as server:
            response = httpx.get(
                server.url + "/analytics",
                params={"userId": "alice"},
                headers={"Authorization": f"Bearer {key}"},
            )
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal", "message": "internal server error"}}


def test_the_status_table_agrees_with_the_error_classes() -> None:
    classes = [
        cls for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, DreamflareError)
    ]  # fmt: skip
    for cls in classes:
        assert http_errors.status_of(cls("x")) == cls.status
        assert http_errors.CLASSES[cls.code] is cls


def test_the_core_does_not_import_the_web_framework() -> None:
    code = (
        "import sys, dreamflare_store, dreamflare_store.client, dreamflare_store.cli.serve;"
        "print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_without_starlette_create_app_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "starlette"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "starlette", None)
    monkeypatch.delitem(sys.modules, "dreamflare_store.http.app", raising=False)
    with (
        Store(tmp_path / "s") as store,
        pytest.raises(ImportError, match=r"dreamflare-store\[http\]"),
    ):
        create_app(store)


# -- dreamflare serve -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


class ServeProcess:
    """``serve()`` in a child process, with its output read line by line."""

    def __init__(self, store_path: Path, port: int) -> None:
        code = (
            "from dreamflare_store.cli.serve import serve;"
            f" serve({str(store_path)!r}, '127.0.0.1', {port})"
        )
        env = {**os.environ, "DREAMFLARE_USER": "alice", "PYTHONUNBUFFERED": "1"}
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "".join(self.lines)
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("the server did not come up: " + "".join(self.lines))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully; the store closes
        try:
            assert self.proc.wait(timeout=30) == 0, "".join(self.lines)
        finally:
            self._reader.join(timeout=10)
            assert self.proc.stdout is not None
            self.proc.stdout.close()


def test_serve_prints_a_first_key_and_a_working_curl_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ServeProcess(tmp_path / "store", free_port())
    try:
        server.wait_until_up()
        output = "".join(server.lines)
        key = re.search(r"^\s+(dfk_\S+)$", output, re.MULTILINE)
        assert key is not None, output
        curl = next(line.strip() for line in server.lines if "/storage/usage" in line)
        assert curl.startswith("curl ") and key.group(1) in curl
        if shutil.which("curl"):
            result = subprocess.run(curl + " --silent", shell=True, capture_output=True, check=True)
            usage = json.loads(result.stdout)
        else:
            headers = {"Authorization": f"Bearer {key.group(1)}"}
            usage = httpx.get(server.url + "/storage/usage", params=ALICE, headers=headers).json()
        assert usage["userId"] == "alice" and usage["contentCount"] == 0
    finally:
        server.stop()
    monkeypatch.setenv("DREAMFLARE_USER", "alice")
    with Store(tmp_path / "store") as store:  # alice has a key now: no second one is made
        out = io.StringIO()
        assert print_welcome(store, "127.0.0.1", server.url, out) is None
        assert "dfk_" not in out.getvalue() and len(store.list_api_keys("alice")) == 1


def test_serve_makes_no_key_when_listening_beyond_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DREAMFLARE_USER", "alice")
    with Store(tmp_path / "s") as store:
        assert print_welcome(store, "0.0.0.0", "http://127.0.0.1:8000", sys.stdout) is None
        assert store.list_api_keys("alice") == []
        assert "dreamflare key generate --user alice" in capsys.readouterr().out
        secret = print_welcome(store, "::1", "http://[::1]:8000", sys.stdout)
        assert secret is not None and store.authenticate(secret) == "alice"


# -- 1 GiB through a real server, in bounded memory -------------------------------------------

MIB = 1 << 20


@pytest.mark.parametrize(
    "size",
    [256 * MIB, pytest.param(1024 * MIB, marks=pytest.mark.slow, id="1GiB")],
    ids=lambda size: f"{size // MIB}MiB",
)
def test_uploads_and_downloads_stream_in_bounded_memory(tmp_path: Path, size: int) -> None:
    """The server's resident memory grows by less than 100 MiB while it takes in 1 GiB and
    sends it back (and 256 MiB, more than the bound, in the fast run); the test itself
    generates and checks the bytes on the fly."""
    server = ServeProcess(tmp_path / "store", free_port())
    try:
        server.wait_until_up()
        key = re.search(r"^\s+(dfk_\S+)$", "".join(server.lines), re.MULTILINE)
        assert key is not None
        headers = {"Authorization": f"Bearer {key.group(1)}"}
        process = psutil.Process(server.proc.pid)
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as http:
            http.post("/upload", data={"userId": "alice"}, files={"file": ("w", b"warm")})
            baseline = process.memory_info().rss
            peak = Peak(process)
            block = os.urandom(1 << 20)
            expected = blake3.blake3()
            head = multipart(("userId", b"alice", None), close=False) + file_part_head("big")
            tail = f"\r\n--{BOUNDARY}--\r\n".encode()

            def body() -> Iterator[bytes]:
                yield head
                for _ in range(size // len(block)):
                    expected.update(block)
                    yield block
                yield tail

            started = time.monotonic()
            with peak:
                response = http.post(
                    "/upload", content=body(),
                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                             "Content-Length": str(len(head) + size + len(tail))},
                )  # fmt: skip
            assert response.status_code == 201, response.text
            content = response.json()
            assert (content["size"], content["hash"]) == (size, expected.hexdigest())
            upload_growth = peak.value - baseline
            upload_seconds = time.monotonic() - started
            started = time.monotonic()

            received = blake3.blake3()
            received_size = 0
            with peak, http.stream("GET", f"/content/{content['contentId']}/data",
                                   params={"userId": "alice"}) as download_:  # fmt: skip
                for chunk in download_.iter_bytes(1 << 20):
                    received.update(chunk)
                    received_size += len(chunk)
            assert (received_size, received.hexdigest()) == (size, expected.hexdigest())
            download_growth = peak.value - baseline
            download_seconds = time.monotonic() - started
        print(
            f"{size // MIB} MiB: upload {upload_seconds:.1f} s, server RSS"
            f" +{upload_growth // MIB} MiB; download {download_seconds:.1f} s,"
            f" +{download_growth // MIB} MiB"
        )
        assert upload_growth < 100 << 20
        assert download_growth < 100 << 20
    finally:
        server.stop()
        shutil.rmtree(tmp_path / "store", ignore_errors=True)  # do not keep 1 GiB in tmp


class Peak:
    """The highest RSS of a process, sampled every 20 ms while in the ``with`` block."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.value = 0
        self._stop = threading.Event()

    def __enter__(self) -> Peak:
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.value = max(self.value, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
