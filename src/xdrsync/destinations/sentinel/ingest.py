"""Alert and evidence rows → the workspace's custom tables, through the Logs Ingestion API.

Rows have the shapes of the workspace's ``SecurityAlert`` and ``AlertEvidence`` log tables
(the same row builders), made fit for a custom table (microsoft-apis.md §4): the column names
Log Analytics reserves are renamed, datetimes are ISO-8601 text, and every row carries
``XdrSeq`` (the hub change it comes from: a consumer dedupes a retried batch on it),
``XdrTenant`` (the Defender tenant's name) and ``XdrIncidentName`` (the Sentinel incident).

The rows are cut into chunks here, each one upload whose JSON body (``[``, ``]`` and the
separators counted, as the SDK writes it) is at most ``MAX_UPLOAD_BYTES``: the SDK's own
chunker counts the rows alone, so its "1 MiB" chunks of small rows pass the service's 1 MB and
come back 413. The ``azure-monitor-ingestion`` SDK gzips each chunk and retries 429 and 5xx
itself, honouring ``Retry-After``; it runs on azure-core's own HTTP stack (requests),
given our TLS settings and timeouts, since azure-core has no httpx transport. Its tokens come
from our ``TokenProvider`` through a small ``TokenCredential`` adapter. A chunk that still
fails ends the upload: the whole batch is delivered again later, with the same rows and
``XdrSeq``, except those the service already accepted (204) or refused for good, which the
ingestor remembers until the batch is acknowledged: Logs Ingestion keeps every copy it is sent.
A chunk refused for its content (400, 413) is split in halves to find the rows at fault; only
those are rejected. When ``MAX_SPLITS`` extra uploads did not find them, the batch is retried
later and the search goes on from what was found, with a doubled budget; a healthy row is never
rejected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.monitor.ingestion import LogsIngestionClient, LogsUploadError

from xdrsync import jsontext
from xdrsync.config import SentinelDestinationConfig, SyncConfig
from xdrsync.errors import ConfigError, RetriableError, ThrottledError, XdrSyncError
from xdrsync.graph.http import graph_error_detail, requests_proxies
from xdrsync.graph.pacing import check_stop, wait
from xdrsync.graph.retry import parse_retry_after
from xdrsync.logs import clean
from xdrsync.tables.alert_rows import EvidenceJson, alert_evidence_rows, security_alert_row
from xdrsync.tables.encode import iso_z

if TYPE_CHECKING:
    from xdrsync.models import Alert

Row = dict[str, Any]
#: A row of one upload: (stream, its change's ``XdrSeq``, its place among that change's rows
#: in the stream). The rows of a change are made the same way every time, so a retried batch
#: names its rows alike.
RowKey = tuple[str, int, int]

INGESTION_ROLE: Final = "Monitoring Metrics Publisher"
#: Column names Log Analytics reserves in custom tables (§4), and what they become.
RENAMED: Final[Mapping[str, str]] = {
    "TenantId": "DefenderTenantId",
    "Title": "AlertTitle",
    "id": "XdrId",
    "_ResourceId": "XdrResourceId",
    "_SubscriptionId": "XdrSubscriptionId",
    "UniqueId": "XdrUniqueId",
}
#: ``Type`` is the table's own name in Log Analytics (``XdrSecurityAlert_CL``): not sent.
DROPPED: Final = frozenset({"Type"})
#: How many extra uploads the first try of a batch may spend looking for the rows a refused
#: chunk holds; then the batch is retried later, going on from what was found, with twice the
#: budget at each try (a batch of many bad rows still ends within a few tries).
MAX_SPLITS: Final = 32
#: The largest JSON body of one upload: the service refuses more than 1 MB (1,048,576 bytes,
#: decompressed, microsoft-apis.md §4); this leaves room for the difference.
MAX_UPLOAD_BYTES: Final = 1_000_000
#: Logs Ingestion truncates a field value over 64 KB (microsoft-apis.md §4): a JSON column cut
#: there (an alert's ``Entities`` with thousands of evidence items) is no longer JSON, and the
#: row holding it can pass 1 MB and be refused whole. Values are kept under it here, JSON as JSON.
MAX_FIELD_BYTES: Final = 64_000
FIELD_CUT: Final = "the full value is in Defender"
_TOKEN_REUSE_SECONDS: Final = 60  # the SDK asks again after this; msal keeps the real cache


class Tokens(Protocol):
    def token(self) -> str: ...
    def invalidate(self) -> None: ...


# -- rows -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value as JSON the SDK's ``json.dumps`` takes: datetimes as ISO text."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=str)
    return value


def fit_field(text: str) -> str:
    """``text`` within ``MAX_FIELD_BYTES`` of UTF-8: unchanged when it fits; a JSON list or
    object keeps its leading members and ends with ``{"XdrCut": ...}`` (a list) or an
    ``XdrCut`` member (an object), so it stays JSON; other text keeps its head and a marker."""
    if len(text) <= MAX_FIELD_BYTES // 4 or len(text.encode("utf-8", "replace")) <= MAX_FIELD_BYTES:
        return text
    try:
        value = json.loads(text) if text[:1] in ("[", "{") else None
    except (ValueError, RecursionError):  # not JSON, or nested past what Python parses: text
        value = None
    room = MAX_FIELD_BYTES - 200  # the marker's room
    if isinstance(value, list):
        kept: list[Any] = []
        size = 2
        for item in value:
            size += len(jsontext.dumps_utf8(item)) + 1
            if size > room:
                break
            kept.append(item)
        return jsontext.dumps([*kept, {"XdrCut": _left_out(len(kept), len(value))}])
    if isinstance(value, dict):
        members: dict[str, Any] = {}
        size = 2
        for key, item in value.items():
            size += len(jsontext.dumps_utf8({key: item}))
            if size > room:
                break
            members[key] = item
        return jsontext.dumps({**members, "XdrCut": _left_out(len(members), len(value))})
    marker = f" … [cut: {FIELD_CUT}]"
    head = text.encode("utf-8", "replace")[: MAX_FIELD_BYTES - len(marker.encode())]
    return head.decode("utf-8", "ignore") + marker


def _left_out(kept: int, total: int) -> str:
    return f"{total - kept} of {total} left out: {FIELD_CUT}"


def custom_row(row: Mapping[str, Any], *, seq: int, tenant: str, incident: str | None) -> Row:
    """A log-table row made fit for a custom table, with our three columns added; text values
    within what Logs Ingestion keeps whole (``fit_field``)."""
    out: Row = {}
    for name, value in row.items():
        if name in DROPPED:
            continue
        plain = _plain(value)
        # A lone UTF-16 surrogate (a Windows file name may hold one; UTF-8 cannot) is sent as
        # U+FFFD, in text and in dynamic columns alike: a reader stricter than JSON's grammar
        # would refuse the escape, and the row with it.
        if isinstance(plain, str):
            plain = fit_field(jsontext.without_surrogates(plain))
        elif isinstance(plain, dict | list):  # a dynamic column (AdditionalFields): as JSON
            text = jsontext.dumps(plain, replace_surrogates=True)
            fitted = fit_field(text)
            plain = plain if fitted is text and "\ufffd" not in text else json.loads(fitted)
        out[RENAMED.get(name, name)] = plain
    out["XdrSeq"] = seq
    out["XdrTenant"] = tenant
    out["XdrIncidentName"] = incident
    return out


def alert_rows(
    alert: Alert,
    evidence: EvidenceJson | None = None,
    *,
    seq: int,
    time_generated: datetime,
    tenant_id: str,
    tenant: str,
    incident: str | None,
) -> tuple[Row, list[Row]]:
    """(the SecurityAlert-shaped row, the AlertEvidence-shaped rows) of one alert version
    (`evidence`: see `alert_rows.evidence_json`)."""
    alert_row = security_alert_row(
        alert, time_generated=time_generated, tenant_id=tenant_id, evidence=evidence
    )
    evidence_rows = alert_evidence_rows(
        alert, time_generated=time_generated, tenant_id=tenant_id, evidence=evidence
    )
    return (
        custom_row(alert_row, seq=seq, tenant=tenant, incident=incident),
        [custom_row(r, seq=seq, tenant=tenant, incident=incident) for r in evidence_rows],
    )


def upload_chunks(rows: Sequence[Row], limit: int = MAX_UPLOAD_BYTES) -> Iterator[list[Row]]:
    """``rows`` in order, in lists whose JSON array as the SDK sends it (``json.dumps``: each
    row, ``, `` between them, inside ``[`` and ``]``) is at most ``limit`` bytes. A row larger
    than that on its own is a chunk of its own (refused for its size, alone)."""
    chunk: list[Row] = []
    size = 2  # [ and ]
    for row in rows:
        length = len(json.dumps(row).encode("utf-8"))
        if chunk and size + 2 + length > limit:
            yield chunk
            chunk, size = [], 2
        size += length + (2 if chunk else 0)
        chunk.append(row)
    if chunk:
        yield chunk


# -- the SDK's credential -------------------------------------------------------------------


class TokenCredentialAdapter:
    """azure-core's ``TokenCredential`` over our ``TokenProvider`` (its scope is fixed there).

    The token is announced as expiring soon, so azure-core asks again before each request
    and msal's cache (which knows the real expiry) decides when to sign in afresh.
    """

    def __init__(self, tokens: Tokens, clock: Any = time.time) -> None:
        self.tokens = tokens
        self._clock = clock

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self.tokens.token(), int(self._clock()) + _TOKEN_REUSE_SECONDS)

    def close(self) -> None:
        return None


class StoppableTransport(RequestsTransport):  # type: ignore[misc]
    """azure-core's requests transport whose waits between retries (``Retry-After``, backoff)
    are ``pacing.wait``: under ``pacing.stop_on`` (the fan-out's threads, a drain's deadline)
    a stop ends them at once with ``Stopped``, and no retry starts after it."""

    def sleep(self, duration: float) -> None:
        wait(duration)

    def send(self, request: Any, **kwargs: Any) -> Any:
        check_stop()
        return super().send(request, **kwargs)


# -- errors ---------------------------------------------------------------------------------


class RowsRefused(Exception):  # noqa: N818 - not an error of the tree: an answer about rows
    """The service refused a chunk for its content (400, 413); ``reason`` is its text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _detail(error: HttpResponseError) -> tuple[str, str]:
    """(error code, ``status code: message``) from the service's error body, worded as ARM's
    answers are (``graph_error_detail``): a gateway's HTML page in front of the endpoint gives
    its words, never its markup."""
    content, content_type = b"", ""
    response = error.response
    if response is not None:
        try:
            content = (response.text() or "").encode("utf-8")  # gzip already undone
            headers = getattr(response, "headers", None) or {}
            content_type = str(headers.get("Content-Type") or "")
        except Exception:  # a body that cannot be read is just not shown
            content = b""
    try:
        body = json.loads(content) if content.strip() else None
    except (ValueError, RecursionError):
        body = None
    inner = body.get("error") if isinstance(body, dict) else None
    code = str(inner.get("code") or "") if isinstance(inner, dict) else ""
    answer = httpx.Response(
        error.status_code or 0, headers={"Content-Type": content_type}, content=content
    )
    return code, graph_error_detail(answer)


def map_upload_error(
    error: Exception, entry: SentinelDestinationConfig, stream: str, tokens: Tokens | None = None
) -> XdrSyncError | RowsRefused:
    """What a failed chunk means (the SDK already retried what it retries)."""
    where = f"destination {entry.name!r}: upload to stream {stream}"
    if isinstance(error, XdrSyncError):  # our sign-in, raised through the SDK
        return error
    if isinstance(error, HttpResponseError) and error.status_code is not None:
        status = error.status_code
        code, detail = _detail(error)
        if status == 403:
            return ConfigError(
                f"{where} refused ({detail}); give the app registration {entry.client_id} the "
                f"role {INGESTION_ROLE} on the data collection rule {entry.rule_id} (a new role "
                "assignment can take 30 minutes to apply)"
            )
        if status == 404 or code.lower() == "invalidstream":
            return ConfigError(
                f"{where}: {detail}; check rule_id ({entry.rule_id}), ingestion_endpoint and "
                "that the rule declares the stream"
            )
        if status in (400, 413):
            return RowsRefused(detail)
        if status == 401 or isinstance(error, ClientAuthenticationError):
            if tokens is not None:
                tokens.invalidate()  # the next attempt signs in afresh
            return RetriableError(f"{where}: token rejected ({detail}); signing in again")
        if status == 429:
            headers = getattr(error.response, "headers", None) or {}
            wait = parse_retry_after(headers.get("Retry-After"))
            return ThrottledError(f"{where} throttled ({detail})", retry_after=wait)
        return RetriableError(f"{where} failed ({detail})")
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        text = clean(f"{type(error).__name__}: {error}", limit=300)
        return RetriableError(f"{where} failed ({text})")
    text = clean(f"{type(error).__name__}: {error}", limit=300)
    return RetriableError(f"{where} failed ({text})")


class _Abort(Exception):  # noqa: N818 - control flow out of the SDK's chunk loop
    def __init__(self, error: XdrSyncError) -> None:
        super().__init__(str(error))
        self.error = error


# -- the uploader ---------------------------------------------------------------------------


class LogIngestor:
    """Uploads rows to the streams of one data collection rule."""

    def __init__(
        self,
        entry: SentinelDestinationConfig,
        sync: SyncConfig,
        tokens: Tokens,
        *,
        client: LogsIngestionClient | None = None,
    ) -> None:
        if entry.ingestion_endpoint is None or entry.rule_id is None:
            raise ConfigError(f"destination {entry.name!r}: no ingestion_endpoint/rule_id")
        self.entry = entry
        self.tokens = tokens
        self.rule_id = entry.rule_id
        self.endpoint = entry.ingestion_endpoint
        # Only for a plain-http endpoint, which the config accepts on loopback only.
        self._options: dict[str, Any] = (
            {"enforce_https": False} if self.endpoint.startswith("http://") else {}
        )
        self._client = client or LogsIngestionClient(
            self.endpoint,
            TokenCredentialAdapter(tokens),
            credential_scopes=[f"{entry.ingestion_audience}/.default"],
            proxies=requests_proxies(entry, self.endpoint),  # the destination's proxy, if set
            transport=StoppableTransport(
                connection_verify=entry.verify_tls,
                connection_timeout=sync.request_timeout_seconds,
                read_timeout=sync.request_timeout_seconds,
            ),
            # azure-core counts each kind of failure on its own budget (3 each by default):
            # give 5xx answers, dropped connections and cut-off reads the same as the total.
            retry_total=max(0, sync.max_attempts - 1),
            retry_status=max(0, sync.max_attempts - 1),
            retry_connect=max(0, sync.max_attempts - 1),
            retry_read=max(0, sync.max_attempts - 1),
            retry_backoff_max=60,
        )
        self.rows_uploaded = 0
        self.uploads = 0
        self.rows_refused = 0
        self.rows_not_resent = 0  # rows of a retried batch accepted (or refused) before
        # What each row's upload came to, until its batch is acknowledged (``upload``):
        # None accepted (204), text refused for good.
        self._outcome: dict[RowKey, str | None] = {}
        self._batch: int | None = None  # the first change of the batch under way
        self._tries = 0  # earlier tries of that batch

    def upload(self, stream: str, rows: Sequence[Row]) -> dict[int, str]:
        """Upload every row; rows refused for their content come back as ``XdrSeq`` → reason.
        Anything else raises (``ConfigError``, ``RetriableError``) and the batch is retried.

        What each row's upload came to (204, or refused for good) is remembered until
        ``forget_before`` passes its change: when the same batch is delivered again, a row
        already accepted is not sent twice (Logs Ingestion keeps every copy), and a row
        already found at fault is refused again without an upload."""
        refused: dict[int, str] = {}
        pending: list[tuple[RowKey | None, Row]] = []
        ordinals: dict[int, int] = {}
        for row in rows:
            seq = row.get("XdrSeq")
            key: RowKey | None = None
            if isinstance(seq, int) and not isinstance(seq, bool):
                ordinal = ordinals[seq] = ordinals.get(seq, -1) + 1
                key = (stream, seq, ordinal)
                if key in self._outcome:
                    self.rows_not_resent += 1
                    reason = self._outcome[key]
                    if reason is not None:
                        refused.setdefault(seq, reason)
                    continue
            pending.append((key, row))
        budget = [self.split_budget]
        offset = 0
        for chunk in upload_chunks([row for _, row in pending]):
            items = pending[offset : offset + len(chunk)]
            offset += len(chunk)
            self._send(stream, [(key, dict(row)) for key, row in items], refused, budget)
        return refused

    def begin_batch(self, seq: int) -> None:
        """A delivery of the batch starting at change ``seq`` begins. The uploads of changes
        before it are forgotten (acknowledged); a batch tried again keeps what it found, and
        its search for refused rows may spend twice as many uploads as at its last try."""
        self._outcome = {k: v for k, v in self._outcome.items() if k[1] >= seq}
        if seq == self._batch:
            self._tries += 1
        else:
            self._batch, self._tries = seq, 0

    def forget(self) -> None:
        """Forget every upload (``destinations replay``: send them all again)."""
        self._outcome = {}
        self._batch, self._tries = None, 0

    @property
    def split_budget(self) -> int:
        """Extra uploads one stream's upload may spend on refused chunks at this try."""
        return MAX_SPLITS << min(self._tries, 10)

    def _send(
        self,
        stream: str,
        items: list[tuple[RowKey | None, Row]],
        refused: dict[int, str],
        budget: list[int],
    ) -> None:
        own = {id(row): (key, row) for key, row in items}
        failed: list[tuple[list[tuple[RowKey | None, Row]], str]] = []
        strangers: list[bool] = []

        def on_error(problem: LogsUploadError) -> None:
            meaning = map_upload_error(problem.error, self.entry, stream, self.tokens)
            if isinstance(meaning, RowsRefused):
                chunk = [own.get(id(r)) or (None, dict(r)) for r in problem.failed_logs]
                if any(id(r) not in own for r in problem.failed_logs):
                    strangers.append(True)  # which rows failed is not known for sure
                failed.append((chunk, meaning.reason))
                return
            raise _Abort(meaning)

        rows: list[MutableMapping[str, Any]] = [row for _, row in items]
        self.uploads += 1
        try:
            self._client.upload(self.rule_id, stream, rows, on_error=on_error, **self._options)
        except _Abort as abort:
            raise abort.error from None
        failed_rows = {id(row) for chunk, _ in failed for _, row in chunk}
        self.rows_uploaded += len(rows) - len(failed_rows)
        for key, row in items:
            if key is not None and not strangers and id(row) not in failed_rows:
                self._outcome[key] = None  # 204: never sent again for this batch
        for chunk, reason in failed:
            if len(chunk) > 1:
                if budget[0] <= 0:
                    # The rows at fault are not found yet. Refusing the whole chunk would
                    # dead-letter healthy rows: the batch is retried instead, and goes on from
                    # what was found (accepted rows are not sent again, rows at fault are
                    # known), so even a batch of many bad rows ends after a few attempts.
                    raise RetriableError(
                        f"destination {self.entry.name!r}: upload to stream {stream}: "
                        f"{len(chunk)} rows refused ({reason}) and the rows at fault not found "
                        f"within {self.split_budget} extra uploads; the search goes on at the "
                        "next try"
                    )
                budget[0] -= 1
                middle = len(chunk) // 2
                self._send(stream, chunk[:middle], refused, budget)
                self._send(stream, chunk[middle:], refused, budget)
                continue
            self.rows_refused += len(chunk)
            for key, row in chunk:
                seq = row.get("XdrSeq")
                text = f"Logs Ingestion refused the row ({reason})"
                if key is not None:
                    self._outcome[key] = text
                if isinstance(seq, int):
                    refused.setdefault(seq, text)

    def close(self) -> None:
        self._client.close()


__all__ = [
    "DROPPED",
    "INGESTION_ROLE",
    "MAX_UPLOAD_BYTES",
    "RENAMED",
    "LogIngestor",
    "RowsRefused",
    "TokenCredentialAdapter",
    "alert_rows",
    "custom_row",
    "map_upload_error",
    "upload_chunks",
]
