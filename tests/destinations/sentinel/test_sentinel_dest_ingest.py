"""Alert rows for the Logs Ingestion API, the SDK's errors, and the credential adapter."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.monitor.ingestion import LogsUploadError
from pydantic import SecretStr

from xdrsync.config import SentinelDestinationConfig, SyncConfig
from xdrsync.destinations.sentinel.ingest import (
    LogIngestor,
    RowsRefused,
    TokenCredentialAdapter,
    alert_rows,
    custom_row,
    fit_field,
    map_upload_error,
)
from xdrsync.errors import ConfigError, RetriableError, ThrottledError
from xdrsync.models import Alert

ENTRY = SentinelDestinationConfig(
    name="soc",
    type="sentinel",
    tenant_id="00000000-0000-0000-0000-0000000000ff",
    client_id="11111111-1111-1111-1111-111111111111",
    client_secret=SecretStr("not-a-real-secret"),
    subscription_id="22222222-2222-2222-2222-222222222222",
    resource_group="rg-soc",
    workspace="law-soc",
    ingestion_endpoint="https://dce.eastus-1.ingest.monitor.azure.com",
    rule_id="dcr-0123456789abcdef",
)
TENANT = "00000000-0000-0000-0000-00000000000a"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RESERVED = {"tenantid", "type", "title", "id", "_resourceid", "_subscriptionid", "uniqueid"}
COLUMN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,44}$")

ALERT = Alert.from_graph(
    {
        "id": "da1",
        "incidentId": "41",
        "tenantId": TENANT,
        "status": "new",
        "severity": "high",
        "serviceSource": "microsoftDefenderForEndpoint",
        "title": "Suspicious PowerShell",
        "createdDateTime": "2026-11-01T10:01:00Z",
        "lastUpdateDateTime": "2026-11-01T10:02:00Z",
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.0.0.1"},
            {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.0.0.2"},
        ],
    }
)


def test_rows_keep_the_log_tables_shape_without_reserved_names() -> None:
    alert, evidence = alert_rows(
        ALERT, seq=12, time_generated=NOW, tenant_id=TENANT, tenant="contoso", incident="inc-1"
    )
    assert alert["SystemAlertId"] == "da1"
    assert alert["ProductName"] == "Microsoft Defender Advanced Threat Protection"
    assert alert["DefenderTenantId"] == TENANT
    assert alert["TimeGenerated"] == "2026-11-01T12:00:00.000000Z"
    assert alert["StartTime"] == "2026-11-01T10:01:00.000000Z"
    assert (alert["XdrSeq"], alert["XdrTenant"], alert["XdrIncidentName"]) == (
        12,
        "contoso",
        "inc-1",
    )
    assert [row["RemoteIP"] for row in evidence] == ["10.0.0.1", "10.0.0.2"]
    assert evidence[0]["AlertTitle"] == "Suspicious PowerShell"
    for row in (alert, *evidence):
        assert not {name.lower() for name in row} & RESERVED
        assert all(COLUMN.match(name) for name in row), [n for n in row if not COLUMN.match(n)]
        json.dumps(row)  # what the SDK does with it


def test_custom_row_renames_every_reserved_column() -> None:
    row = custom_row(
        {
            "TenantId": "t",
            "Type": "X",
            "Title": "a",
            "id": 1,
            "_ResourceId": "r",
            "_SubscriptionId": "s",
            "UniqueId": "u",
            "Bag": {"when": NOW},
        },
        seq=1,
        tenant="contoso",
        incident=None,
    )
    assert row == {
        "DefenderTenantId": "t",
        "AlertTitle": "a",
        "XdrId": 1,
        "XdrResourceId": "r",
        "XdrSubscriptionId": "s",
        "XdrUniqueId": "u",
        "Bag": {"when": "2026-11-01T12:00:00.000000Z"},
        "XdrSeq": 1,
        "XdrTenant": "contoso",
        "XdrIncidentName": None,
    }


class FakeResponse:
    def __init__(self, status: int, code: str = "Err", message: str = "no", **headers: str):
        self.status_code = status
        self.reason = "reason"
        self.headers = headers
        self._body = json.dumps({"error": {"code": code, "message": message}})

    def text(self, encoding: str | None = None) -> str:
        return self._body


def _http_error(status: int, code: str = "Err", message: str = "no", **headers: str) -> Any:
    return HttpResponseError(response=FakeResponse(status, code, message, **headers))


class FakeTokens:
    def __init__(self) -> None:
        self.invalidated = 0
        self.calls = 0

    def token(self) -> str:
        self.calls += 1
        return "token"

    def invalidate(self) -> None:
        self.invalidated += 1


def test_403_names_the_role_on_the_rule() -> None:
    error = map_upload_error(_http_error(403, "OperationFailed"), ENTRY, "Custom-XdrSecurityAlert")
    assert isinstance(error, ConfigError)
    assert "Monitoring Metrics Publisher on the data collection rule dcr-0123456789abcdef" in str(
        error
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_http_error(413, "ContentLengthLimitExceeded"), RowsRefused),
        (_http_error(400, "InvalidPayload"), RowsRefused),
        (_http_error(400, "InvalidStream"), ConfigError),
        (_http_error(404, "NotFound"), ConfigError),
        (_http_error(500, "InternalServerError"), RetriableError),
        (_http_error(503, "ServiceUnavailable"), RetriableError),
        (ServiceRequestError("connection refused"), RetriableError),
        (ConfigError("sign-in refused"), ConfigError),
    ],
)
def test_upload_errors(error: Exception, kind: type[Exception]) -> None:
    assert isinstance(map_upload_error(error, ENTRY, "s"), kind)


def test_429_and_401() -> None:
    throttled = map_upload_error(_http_error(429, **{"Retry-After": "12"}), ENTRY, "s")
    assert isinstance(throttled, ThrottledError)
    assert throttled.retry_after == 12.0
    tokens = FakeTokens()
    refused = map_upload_error(_http_error(401), ENTRY, "s", tokens)
    assert isinstance(refused, RetriableError)
    assert tokens.invalidated == 1


def test_the_credential_adapter_hands_over_our_token() -> None:
    tokens = FakeTokens()
    credential = TokenCredentialAdapter(tokens, clock=lambda: 1_000.0)
    token = credential.get_token("https://monitor.azure.com/.default")
    assert token.token == "token"
    assert token.expires_on == 1_060


class FakeClient:
    """The SDK's upload, chunking every ``size`` rows; ``fail`` decides each chunk's fate."""

    def __init__(self, fail: Callable[[list[Mapping[str, Any]]], Exception | None], size: int = 4):
        self.fail = fail
        self.size = size
        self.calls: list[tuple[str, list[Mapping[str, Any]], dict[str, Any]]] = []

    def upload(
        self,
        rule_id: str,
        stream_name: str,
        logs: Sequence[Mapping[str, Any]],
        *,
        on_error: Callable[[LogsUploadError], None],
        **kwargs: Any,
    ) -> None:
        for start in range(0, len(logs), self.size):
            chunk = list(logs[start : start + self.size])
            self.calls.append((stream_name, chunk, kwargs))
            problem = self.fail(chunk)
            if problem is not None:
                on_error(LogsUploadError(error=problem, failed_logs=chunk))

    def close(self) -> None:
        return None


def _rows(count: int) -> list[dict[str, Any]]:
    return [{"XdrSeq": seq, "Value": seq} for seq in range(1, count + 1)]


def test_a_refused_chunk_is_split_until_the_bad_rows_are_found() -> None:
    def fail(chunk: list[Mapping[str, Any]]) -> Exception | None:
        bad = any(row["XdrSeq"] in (3, 7) for row in chunk)
        return _http_error(400, "InvalidPayload", "bad column") if bad else None

    client = FakeClient(fail)
    ingestor = LogIngestor(ENTRY, SyncConfig(), FakeTokens(), client=client)  # type: ignore[arg-type]
    refused = ingestor.upload("Custom-XdrSecurityAlert", _rows(10))
    assert sorted(refused) == [3, 7]
    assert "bad column" in refused[3]
    assert ingestor.rows_uploaded == 8
    assert ingestor.rows_refused == 2


def test_a_retriable_failure_ends_the_upload_so_the_batch_is_retried() -> None:
    def fail(chunk: list[Mapping[str, Any]]) -> Exception | None:
        return _http_error(503) if chunk[0]["XdrSeq"] == 5 else None

    client = FakeClient(fail)
    ingestor = LogIngestor(ENTRY, SyncConfig(), FakeTokens(), client=client)  # type: ignore[arg-type]
    with pytest.raises(RetriableError):
        ingestor.upload("Custom-XdrSecurityAlert", _rows(12))
    assert len(client.calls) == 2  # the third chunk was never sent
    assert "enforce_https" not in client.calls[0][2]


def test_plain_http_is_allowed_for_a_loopback_endpoint_only() -> None:
    local = ENTRY.model_copy(update={"ingestion_endpoint": "http://127.0.0.1:8123"})
    client = FakeClient(lambda chunk: None)
    ingestor = LogIngestor(local, SyncConfig(), FakeTokens(), client=client)  # type: ignore[arg-type]
    ingestor.upload("Custom-XdrSecurityAlert", _rows(1))
    assert client.calls[0][2] == {"enforce_https": False}


def test_the_declared_streams_are_exactly_the_columns_the_rows_carry() -> None:
    from xdrsync.destinations.sentinel.dcr import STREAMS, dcr_template, stream_columns

    alert, evidence = alert_rows(
        ALERT, seq=1, time_generated=NOW, tenant_id=TENANT, tenant="contoso", incident=None
    )
    declared = {stream: [c["name"] for c in stream_columns(stream)] for stream in STREAMS}
    assert list(alert) == declared["Custom-XdrSecurityAlert"]
    assert list(evidence[0]) == declared["Custom-XdrAlertEvidence"]
    template = dcr_template("/subscriptions/s/resourceGroups/r/providers/x/workspaces/w", "eastus")
    flows = template["properties"]["dataFlows"]
    assert [f["outputStream"] for f in flows] == [
        "Custom-XdrSecurityAlert_CL",
        "Custom-XdrAlertEvidence_CL",
    ]
    types = {c["type"] for s in STREAMS for c in stream_columns(s)}
    assert types <= {"string", "int", "long", "real", "boolean", "datetime", "dynamic"}


def test_upload_chunks_count_brackets_and_separators_as_the_sdk_writes_them() -> None:
    from xdrsync.destinations.sentinel.ingest import upload_chunks

    rows = [{"XdrSeq": seq, "Pad": "x" * (seq % 50)} for seq in range(2_000)]
    chunks = list(upload_chunks(rows, limit=10_000))
    assert [row for chunk in chunks for row in chunk] == rows
    sizes = [len(json.dumps(chunk).encode("utf-8")) for chunk in chunks]
    assert max(sizes) <= 10_000
    assert min(sizes[:-1]) > 10_000 - 100  # packed: the next row would not have fitted
    (alone,) = list(upload_chunks([{"XdrSeq": 1, "Pad": "x" * 20_000}], limit=10_000))
    assert len(alone) == 1  # too large on its own: sent alone, refused alone


def test_a_field_over_64_kb_is_cut_where_it_stays_json() -> None:
    """Logs Ingestion truncates a field over 64 KB: an Entities list cut there is broken JSON
    in the workspace. xdrsync keeps each value under it, JSON as JSON, with a visible cut."""
    entities = [{"Type": "process", "CommandLine": "x" * 400, "Id": n} for n in range(3000)]
    row = custom_row(
        {
            "Entities": json.dumps(entities),
            "ExtendedProperties": json.dumps({f"k{n}": "v" * 100 for n in range(2000)}),
            "Description": "é" * 70_000,
            "AlertName": "short",
            "AdditionalFields": {"FileName": "a.exe", "ProcessCommandLine": "c" * 100_000},
        },
        seq=7,
        tenant="contoso",
        incident=None,
    )
    for name in ("Entities", "ExtendedProperties", "Description"):
        assert len(row[name].encode("utf-8")) <= 64_000, name
    kept = json.loads(row["Entities"])
    assert kept[:-1] == entities[: len(kept) - 1] and len(kept) > 100
    assert kept[-1]["XdrCut"].startswith(f"{3000 - len(kept) + 1} of 3000 left out")
    extended = json.loads(row["ExtendedProperties"])
    assert "left out" in extended["XdrCut"] and extended["k0"] == "v" * 100
    assert row["Description"].endswith("[cut: the full value is in Defender]")
    assert row["AlertName"] == "short"
    extra = row["AdditionalFields"]  # a dynamic column stays an object, cut as JSON too
    assert isinstance(extra, dict) and len(json.dumps(extra).encode()) <= 64_000
    assert extra["FileName"] == "a.exe" and "left out" in extra["XdrCut"]
    assert fit_field("[1, 2]") == "[1, 2]"  # what fits is left exactly as it was


def test_a_long_value_that_looks_like_deeply_nested_json_is_cut_as_text() -> None:
    """An attacker's command line of 2,000 `[` then text (92 KB) made the JSON parse of the
    cut raise RecursionError: the batch failed at every try, and no later change reached
    Sentinel. It is cut as text, with the marker, like any other."""
    poison = "[" * 2_000 + "中" * 30_000
    cut = fit_field(poison)
    assert cut.startswith("[" * 2_000) and cut.endswith("[cut: the full value is in Defender]")
    assert len(cut.encode("utf-8")) <= 64_000


def test_a_lone_surrogate_is_sent_as_u_fffd_in_every_column() -> None:
    """A Windows file name may hold a lone UTF-16 surrogate, which UTF-8 cannot: text and
    dynamic columns alike go out with U+FFFD in its place, never the `\\udc80` escape a
    strict reader refuses (nor the `?` a cut made of it)."""
    name = "report\udc80.docx"
    row = custom_row(
        {
            "FileName": name,
            "ProcessCommandLine": "\udc80" + "x" * 70_000,
            "AdditionalFields": {"FileName": name},
        },
        seq=1,
        tenant="contoso",
        incident=None,
    )
    assert "\\udc80" not in json.dumps([row])  # what the SDK posts
    assert row["FileName"] == "report\ufffd.docx"
    assert row["ProcessCommandLine"].startswith("\ufffd")
    assert row["AdditionalFields"] == {"FileName": "report\ufffd.docx"}
