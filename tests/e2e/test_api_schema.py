"""The API's contract: the committed OpenAPI document is the code's, and a live server holds
to it. Schemathesis generates requests for every operation from the document (valid and
invalid bodies, parameters and headers) against `offline-ledger serve` on SQLite and on
PostgreSQL, one operation at a time and in sequences that follow the document's links: no
answer is a server error, and every answer matches the document (status, content type, body
schema)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks

from adapters.http.app import api_app
from tests.support import records as r
from tests.support.api_client import Api, new_key
from tests.support.serve import running

DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"
schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))
# The same document walked by its own links only (schemathesis infers more, from names alone,
# which would start every walk from a read instead of the writes that give real ids).
linked = schemathesis.openapi.from_dict(
    json.loads(DOCUMENT.read_text()),
    config=SchemathesisConfig.from_dict(
        {"phases": {"stateful": {"inference": {"algorithms": []}}}}
    ),
)


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


def test_operations_chained_by_their_links_hold_to_the_document(live: tuple[str, str]) -> None:
    """Schemathesis' stateful run: sequences of calls, each following a link of the document
    from the answer before (a reservation, then its release; an allowance, then the device's
    allowance...). No answer is a server error and every one matches the document."""
    base_url, token = live
    answered: Counter[tuple[str, int]] = Counter()

    class Chained(linked.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: schemathesis.Case) -> None:
            if isinstance(case.body, dict):
                known(case.body)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {
                "base_url": base_url,
                "headers": {"Authorization": f"Bearer {token}"},
                "timeout": 120,
            }

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            answered[(case.operation.label, response.status_code)] += 1

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            case.validate_response(
                response,
                excluded_checks=[checks.positive_data_acceptance, checks.negative_data_rejection],
                transport_kwargs=kwargs,
            )

    Chained.run(
        settings=settings(
            max_examples=40,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    # The walks went past their first step: reads answered 200 with the ids writes gave.
    followed = [label for (label, status) in answered if label.startswith("GET") and status == 200]
    assert followed, answered


def known(body: dict[str, Any]) -> None:
    """The generated body's ids and values replaced by what the served ledger knows (its
    location, reader and currency, plausible moments and amounts), where it has those fields:
    so that writes succeed and their links lead to reads of what they wrote."""
    values: dict[str, Any] = {
        "location_id": "tml_1",
        "device_id": "tmr_1",
        "currency": "usd",
        "occurred_at": r.at(5),
        "at": r.at(5),
        "valid_until": "2099-01-01T00:00:00Z",
        "amount": 1_250,
        "amounts": {"usd": 5_000},
    }
    for name, value in values.items():
        if name in body:
            body[name] = value
