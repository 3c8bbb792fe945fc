"""The API's contract: the committed OpenAPI document is the code's, and a live server holds
to it. Schemathesis generates requests for every operation from the document (valid and
invalid bodies, parameters and headers) against `offline-ledger serve` on SQLite and on
PostgreSQL: no answer is a server error, and every answer matches the document (status,
content type, body schema)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from adapters.http.app import api_app
from tests.support import records as r
from tests.support.api_client import Api, new_key
from tests.support.serve import running

DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"
schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))


def test_the_committed_document_is_the_code_s() -> None:
    code = json.loads(json.dumps(api_app().openapi()))
    assert json.loads(DOCUMENT.read_text()) == code, (
        "docs/openapi.json differs from the API: run `offline-ledger openapi > docs/openapi.json`"
    )


@pytest.fixture
def live(database: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A served ledger with a location and a reader, its base URL and an admin key."""
    with running(database, tmp_path) as server:
        token = new_key(database, "admin")
        api = Api(server.port, token)
        for record in (r.location("tml_1"), r.device()):
            assert api.post("/v1/records", record).status == 200
        assert api.get("/openapi.json").body == json.loads(DOCUMENT.read_text())
        yield f"http://127.0.0.1:{server.port}", token


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_holds_to_the_document(
    case: schemathesis.Case, live: tuple[str, str]
) -> None:
    base_url, token = live
    # A request valid by the schema may still name an unknown location or payment, or an
    # unknown currency: the ledger refuses those (404, 422), as documented.
    excluded = [checks.positive_data_acceptance]
    if case.operation.path == "/v1/records/batch":
        # A batch answers each of its records, an invalid one with its own refusal, as
        # `record_many` does: a batch holding invalid records is answered 200.
        excluded.append(checks.negative_data_rejection)
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=excluded,
        timeout=120,  # a batch on a loaded machine; the server answers 503 past its own wait
    )
