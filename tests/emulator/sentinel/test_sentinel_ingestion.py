"""The Logs Ingestion endpoint, through azure-monitor-ingestion's real client and raw httpx."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import MutableMapping
from typing import Any

import httpx
from azure.core.credentials import AccessToken
from azure.monitor.ingestion import LogsIngestionClient
from sentinel_helpers import Sentinel

ALERTS = "Custom-XdrSecurityAlert"
EVIDENCE = "Custom-XdrAlertEvidence"


class EmulatorCredential:
    """The smallest ``TokenCredential``: client credentials at the emulator's token endpoint."""

    def __init__(self, s: Sentinel) -> None:
        self.s = s
        self.requests = 0

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.requests += 1
        reply = httpx.post(
            f"{self.s.base}/{self.s.settings.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.s.settings.client_id,
                "client_secret": self.s.settings.client_secret,
                "scope": " ".join(scopes),
            },
        )
        reply.raise_for_status()
        body = reply.json()
        return AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))


def test_the_real_client_uploads_rows_that_land_per_stream(sentinel: Any) -> None:
    s = sentinel()
    client = LogsIngestionClient(endpoint=s.base, credential=EmulatorCredential(s))
    alerts: list[MutableMapping[str, Any]] = [
        {
            "SystemAlertId": "da1",
            "AlertName": "Ransomware",
            "TimeGenerated": "2025-01-01T00:00:00Z",
        },
        {"SystemAlertId": "da2", "AlertName": "Phish"},
    ]
    evidence: list[MutableMapping[str, Any]] = [
        {"AlertId": "da1", "EntityType": "Host", "DeviceName": "pc-1"}
    ]
    with client:
        client.upload(s.settings.rule_id, ALERTS, alerts, enforce_https=False)
        client.upload(s.settings.rule_id, EVIDENCE, evidence, enforce_https=False)
        # Over 1 MiB in all: the client splits it into gzip chunks of at most 1 MiB each.
        big: list[MutableMapping[str, Any]] = [
            {"SystemAlertId": f"big{n}", "Description": "x" * 100_000} for n in range(15)
        ]
        client.upload(s.settings.rule_id, ALERTS, big, enforce_https=False)
    logs = s.truth()["logs"]
    assert [row["SystemAlertId"] for row in logs[ALERTS]] == ["da1", "da2"] + [
        f"big{n}" for n in range(15)
    ]
    assert logs[ALERTS][0]["TimeGenerated"] == "2025-01-01T00:00:00Z"
    assert logs[ALERTS][1]["TimeGenerated"].endswith("Z")
    assert logs[EVIDENCE][0]["DeviceName"] == "pc-1"
    routes = s.control("GET", "/stats").json()["by_route"]
    uploads = routes["POST /dataCollectionRules/{rule_id}/streams/{stream}"]
    assert uploads >= 4  # two small uploads and at least two chunks


def test_a_gzip_body_is_accepted(sentinel: Any) -> None:
    s = sentinel()
    rows = json.dumps([{"SystemAlertId": "gz", "AlertName": "compressed"}]).encode()
    reply = s.ingest(ALERTS, gzip.compress(rows), **{"Content-Encoding": "gzip"})
    assert reply.status_code == 204, reply.text
    assert s.truth()["logs"][ALERTS][0]["SystemAlertId"] == "gz"


def test_over_one_megabyte_is_413_compressed_or_not(sentinel: Any) -> None:
    s = sentinel()
    big = json.dumps([{"Blob": "x" * 1_048_576}]).encode()
    raw = s.ingest(ALERTS, big)
    assert raw.status_code == 413
    assert raw.json()["error"]["code"]
    # Small on the wire, over the limit once decompressed.
    packed = gzip.compress(big)
    assert len(packed) < 1_048_576
    assert s.ingest(ALERTS, packed, **{"Content-Encoding": "gzip"}).status_code == 413
    just_fits = json.dumps([{"Blob": "x" * (1_048_576 - 20)}]).encode()
    assert len(just_fits) <= 1_048_576
    assert s.ingest(ALERTS, just_fits).status_code == 204


def test_the_ingestion_rate_limit_answers_429_with_retry_after(sentinel: Any) -> None:
    s = sentinel(ingest_rate_limit_per_minute=2)
    assert s.ingest(ALERTS, b"[]").status_code == 204
    assert s.ingest(ALERTS, b"[]").status_code == 204
    throttled = s.ingest(ALERTS, b"[]")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    # ARM has its own budget.
    assert s.arm("GET", "/incidents").status_code == 200
    assert s.control("GET", "/stats").json()["throttled"] == {"ingestion": 1}


def test_without_monitoring_metrics_publisher_uploads_are_403(sentinel: Any) -> None:
    s = sentinel(ingest_permission=False)
    reply = s.ingest(ALERTS, b"[]")
    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "OperationFailed"
    assert s.settings.rule_id in reply.json()["error"]["message"]


def test_bad_requests_to_the_ingestion_endpoint(sentinel: Any) -> None:
    s = sentinel()
    assert s.ingest(ALERTS, b'{"not": "an array"}').status_code == 400
    assert s.ingest(ALERTS, b"[1, 2]").status_code == 400
    assert s.ingest(ALERTS, b"[{").status_code == 400
    unknown_stream = s.ingest("Custom-Nope", b"[]")
    assert unknown_stream.status_code == 400
    assert unknown_stream.json()["error"]["code"] == "InvalidStream"
    token = {"Authorization": f"Bearer {s.token('https://monitor.azure.com')}"}
    other_rule = s.http.post(
        f"{s.base}/dataCollectionRules/dcr-{'0' * 32}/streams/{ALERTS}",
        params={"api-version": "2023-01-01"},
        content=b"[]",
        headers={**token, "Content-Type": "application/json"},
    )
    assert other_rule.status_code == 404
    no_version = s.http.post(
        f"{s.base}/dataCollectionRules/{s.settings.rule_id}/streams/{ALERTS}",
        content=b"[]",
        headers={**token, "Content-Type": "application/json"},
    )
    assert no_version.status_code == 400
    assert s.truth()["logs"][ALERTS] == []
