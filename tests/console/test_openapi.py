"""Schemathesis against the console's OpenAPI document: whatever it sends, the API answers
with no server error, a documented status and a body that fits the document, and refuses
what the document says is invalid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from live import LiveConsole
from schemathesis.checks import positive_data_acceptance
from seeded import seeded_console


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


def test_every_operation_documents_what_it_answers_without_credentials(
    tmp_path: Path,
) -> None:
    """A script without (or with a dead) token gets the 401 the document lists for it."""
    with seeded_console(tmp_path, lambda hub: None) as console:
        document = httpx.get(f"{console.url}/openapi.json").json()
        answered = {}
        for path, operations in document["paths"].items():
            url = console.url + re.sub(r"\{[^}]+\}", "1", path)
            for method, operation in operations.items():
                reply = httpx.request(method, url, json={}, headers={"Origin": console.url})
                answered[f"{method.upper()} {path}"] = (reply.status_code, operation["responses"])
    undocumented = {
        label: status for label, (status, listed) in answered.items() if str(status) not in listed
    }
    assert len(answered) >= 20 and not undocumented, undocumented
