"""Schemathesis against the console's OpenAPI document: whatever it sends, the API answers
with no server error, a documented status and a body that fits the document, and refuses
what the document says is invalid."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from live import LiveConsole
from schemathesis.checks import positive_data_acceptance


def test_the_api_keeps_to_its_openapi_document(live_console: LiveConsole) -> None:
    schema = schemathesis.openapi.from_url(f"{live_console.url}/openapi.json")
    checked = []
    for found in schema.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def conforms(case: Any) -> None:
            # A token per call: the document includes revoking tokens, so a case may revoke
            # the very token it was sent with.
            headers = {"Authorization": f"Bearer {live_console.token('responder')}"}
            # Every check but "a schema-valid request is accepted": the document cannot say
            # which classification goes with which determination, or which skip tokens exist.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        conforms()
        checked.append(operation.label)
    assert len(checked) >= 14, checked  # every operation of docs/api.md was exercised
