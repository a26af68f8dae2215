"""Property-based fuzzing of a running server from its own OpenAPI document (schemathesis).

Every operation the document describes gets a bounded number of generated requests, valid
and invalid. Whatever they carry, the server must not answer 5xx, and every answer (status,
content type, headers, body) must be one the document describes. Hooks steer most cases to
the API key's own user and to ids that exist, so the fuzzer gets past 403 and 404 into the
operations themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dreamflare_store import Store, __version__
from dreamflare_store.http import openapi
from dreamflare_store.http.testing import LiveServer

USER = "fuzzer"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class Target:
    url: str
    headers: dict[str, str]
    ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with Store(tmp_path_factory.mktemp("fuzz") / "store") as store, LiveServer(store) as server:
        key = store.generate_api_key(USER).api_key
        contents = [store.upload(bytes([i]) * 100, USER, tags="t").content_id for i in range(8)]
        shared = store.upload(b"shared", "owner").content_id
        store.create_collaboration("owner", shared, USER, "read")
        collabs = [
            store.create_collaboration(USER, content, f"friend{i}").collaboration_id
            for i, content in enumerate(contents)
        ]
        spare_keys = [store.generate_api_key(USER).key_id for _ in range(8)]
        ids = {
            "contentId": [*contents, shared],
            "collaborationId": collabs,
            "keyId": spare_keys,  # never the fuzzer's own key: revoking it would end the run
        }
        # Both headers, the same key: the fuzzer fills in either scheme of the document.
        headers = {"Authorization": f"Bearer {key}", "X-API-Key": key}
        TARGET["current"] = Target(server.url, headers, ids)
        yield TARGET["current"]
        del TARGET["current"]
        assert store.verify() == []


def _pick(value: Any, choices: list[str]) -> Any:
    """Most of the time a real id or user, chosen by the generated value (so replays match);
    otherwise the generated value itself."""
    seed = sum(str(value).encode()) if value is not None else 0
    return value if seed % 5 == 0 else choices[seed % len(choices)]


# The document the server serves at /openapi.json (a test below checks they are equal),
# loaded at import time: schemathesis makes one test per operation from it.
DOCUMENT = openapi.document(__version__)
schema = schemathesis.openapi.from_dict(DOCUMENT)
TARGET: dict[str, Target] = {}


@schema.hook("map_case")  # type: ignore[untyped-decorator]
def steer(context: Any, case: Any) -> Any:
    target = TARGET.get("current")
    if target is None:
        return case
    for container in (case.query, case.path_parameters, case.body):
        if not isinstance(container, dict):
            continue
        if "userId" in container:
            container["userId"] = _pick(container["userId"], [USER])
        for name, ids in target.ids.items():
            if name in container:
                container[name] = _pick(container[name], ids)
    if isinstance(case.body, dict) and "file" in case.body:
        # As the document says, the streamed file part comes last (as in S3's POST uploads).
        case.body["file"] = case.body.pop("file")
    return case


def test_the_fuzzed_document_is_the_one_the_server_serves(target: Target) -> None:
    assert httpx.get(target.url + "/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_server_conforms_to_its_own_document(case: Any, target: Target) -> None:
    case.call_and_validate(base_url=target.url, headers=target.headers, checks=CHECKS)
