"""Typed Defender XDR operations on Graph ``/security``: what the sync engine calls.

Records are returned as Graph's raw JSON, untouched (parsing is the models' job), except
that an incident read without ``$expand`` gets its ``alerts`` attached, so callers always
receive incidents with alerts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import structlog

from xdrsync.config import SyncConfig, TenantConfig
from xdrsync.errors import (
    AnswerTooLargeError,
    RetriableError,
    ServerBusyError,
    ThrottledError,
    UnreadableError,
)
from xdrsync.graph.client import GraphClient, GraphResponse
from xdrsync.graph.errors import BadRequestError, NotFoundError
from xdrsync.jsontext import UnreadableRecord
from xdrsync.sync.listing import Page, PageQuery, Unordered, stamp_of, whole_scan

log = structlog.get_logger(__name__)

INCIDENTS = "/security/incidents"
ALERTS = "/security/alerts_v2"
EXPAND = "$expand"
# Attempts for a request with $expand=alerts before falling back. The known failure is
# deterministic for a page (it 500s for the same incidents every time), so a full round of
# retries only delays the fallback; three still ride out an unrelated transient 5xx.
EXPAND_ATTEMPTS = 3

# The only fields Graph documents as writable (microsoft-apis.md §2.9).
INCIDENT_WRITABLE = frozenset(
    {"assignedTo", "classification", "determination", "status", "customTags"}
)
ALERT_WRITABLE = frozenset({"assignedTo", "classification", "determination", "status"})


@dataclass(frozen=True)
class ListPage:
    """One page of a listing (satisfies ``sync.listing.Page``)."""

    items: tuple[Any, ...]  # raw elements of ``value``; incidents each carry ``alerts``
    server_date: datetime  # the server's clock when it answered
    more: bool = False  # Graph linked a next page
    full: bool = False  # as many items as $top asked for: maybe more, link or not
    count: int | None = None  # ``@odata.count``, when asked for
    alerts_fallback: bool = False  # True when alerts were read per incident, not by $expand


def listing_params(query: PageQuery, top: int) -> dict[str, str | int]:
    """The query options of one page."""
    params: dict[str, str | int] = {"$filter": query.filter_text, "$top": top}
    if query.ordered:
        # Graph does not document $orderby here, but serves it (peers rely on it); the sync
        # engine checks every page and reads in windows instead if it is not honoured.
        params["$orderby"] = "lastUpdateDateTime asc"
    if query.skip:
        params["$skip"] = query.skip
    if query.count:
        params["$count"] = "true"
    return params


def _page(
    response: GraphResponse, items: tuple[Any, ...], top: int, fallback: bool = False
) -> ListPage:
    """A page of a listing asked for with ``$top=top``. ``full`` tells the listing that a
    page without a next link may still not be the last (``sync.listing``): a link left off
    (by a proxy, a gateway or Graph itself) would otherwise end the read early and move the
    watermark past every record not yet read; the cost is one more request when the last
    page happens to be exactly full."""
    count = response.json.get("@odata.count")
    return ListPage(
        items=items,
        server_date=response.server_date,
        more=response.next_link is not None,
        full=len(items) >= top,
        count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        alerts_fallback=fallback,
    )


def _not_expands_fault(failure: RetriableError) -> bool:
    """Whether a failure is one a read without ``$expand`` would meet as well: Graph
    throttling us (a 429), or a request that never reached Graph (no connection, no sign-in).
    A 5xx, even one that asked for a wait (``ServerBusyError``), may be ``$expand``'s own."""
    if isinstance(failure, ThrottledError):
        return not isinstance(failure, ServerBusyError)
    return failure.unsent


def _each_once(pages: Iterator[Page]) -> list[Any]:
    """The records of overlapping pages, each id once at the newest version read (records
    without an id as they come)."""
    named: dict[str, Any] = {}
    unnamed: list[Any] = []
    for page in pages:
        for item in page.items:
            key = item.get("id") if isinstance(item, Mapping) else None
            if not isinstance(key, str):
                unnamed.append(item)
            elif key not in named or (stamp_of(item) or 0) >= (stamp_of(named[key]) or 0):
                named[key] = item
    return [*named.values(), *unnamed]


def _refuses_order(refused: BadRequestError) -> bool:
    """Whether Graph's 400 is about ``$orderby``: OData's "Query option 'OrderBy' is not
    allowed", or "... cannot be used in the $orderby query option"."""
    return "orderby" in refused.detail.lower()


def _alerts_cut_short(item: Any) -> bool:
    """Whether an expanded incident says its ``alerts`` are only the first of them: OData
    lets a server page an expanded collection (``alerts@odata.nextLink``, or an
    ``alerts@odata.count`` above the list's length). Stored so, the incident would list part
    of its alerts, and the alerts left out would be read by no stream."""
    if not isinstance(item, dict):
        return False
    if item.get("alerts@odata.nextLink"):
        return True
    count, alerts = item.get("alerts@odata.count"), item.get("alerts")
    return type(count) is int and isinstance(alerts, list) and count > len(alerts)


def _by_offset(link: str) -> bool:
    """Whether a next link pages by ``$skip`` (an offset) rather than a server's cursor."""
    return any(name.lower() == "$skip" for name, _ in parse_qsl(urlsplit(link).query))


def _segment(record_id: str) -> str:
    if not record_id:
        raise ValueError("an id is required")
    return quote(record_id, safe="")


def _entity(response: GraphResponse) -> dict[str, Any]:
    """A single-entity answer without its ``@odata.context``, shaped like a list item."""
    return {key: value for key, value in response.json.items() if key != "@odata.context"}


def _check_changes(
    changes: Mapping[str, Any], writable: frozenset[str], what: str
) -> dict[str, Any]:
    unknown = sorted(set(changes) - writable)
    if unknown:
        raise ValueError(
            f"{what} fields {', '.join(unknown)} are not writable through Graph; "
            f"writable: {', '.join(sorted(writable))}"
        )
    if not changes:
        raise ValueError(f"no {what} fields to change")
    tags = changes.get("customTags")
    if "customTags" in changes and (
        not isinstance(tags, list | tuple) or not all(isinstance(tag, str) for tag in tags)
    ):
        raise ValueError("customTags must be a list of strings (it replaces the whole set)")
    return {key: list(value) if key == "customTags" else value for key, value in changes.items()}


class DefenderApi:
    """Incidents and alerts_v2 of one tenant. Satisfies ``sync.inbound.DefenderSource``."""

    def __init__(self, client: GraphClient, sync: SyncConfig) -> None:
        self.client = client
        self.sync = sync
        self._expand_attempts = EXPAND_ATTEMPTS  # 1 after a fallback, until $expand answers
        # Whether listing pages fall back (since $expand last failed, until it answers): the
        # fallback is said once as it starts and once as it ends, as a background job's
        # failure is (``sync.engine``), not every cycle of an outage that keeps failing it.
        self._expand_failing = False
        self._alerts_top = sync.page_size_alerts  # smaller after a page too large to read

    @classmethod
    def connect(cls, tenant: TenantConfig, sync: SyncConfig, **client_options: Any) -> DefenderApi:
        """A ``DefenderApi`` over a new ``GraphClient`` for ``tenant``."""
        return cls(GraphClient(tenant, sync, **client_options), sync)

    def close(self) -> None:
        self.client.close()

    def granted_roles(self) -> frozenset[str]:
        """The application permissions our access token carries (empty when unknown); signs
        in if needed, makes no Graph call."""
        from xdrsync.graph.permissions import token_roles

        return token_roles(self.client.tokens.token())

    # -- listing: one page at a time, as ``sync.listing`` asks (never by next links) -------

    def incidents_page(self, query: PageQuery, *, expand_alerts: bool = True) -> ListPage:
        """One page of incidents, each with its ``alerts``.

        ``$expand=alerts`` is known to fail with 5xx on big tenants (microsoft-apis.md §0.4).
        When a page still fails after retries, the same page is read without ``$expand`` and
        each incident's alerts come from ``/incidents/{id}/alerts``. Later pages try
        ``$expand`` again, but only once each until one answers: the failure may follow
        particular incidents (then the next page succeeds and saves one call per incident,
        and retries are as at first again), or the tenant's size (then it costs one call per
        page, not a round of retries).
        """
        top = self.sync.page_size_incidents
        params = listing_params(query, top)
        if expand_alerts:
            try:
                response = self._listing(
                    INCIDENTS,
                    {**params, EXPAND: "alerts"},
                    query,
                    max_attempts=self._expand_attempts,
                )
                # It answers again: a later blip is retried as at first, not sent to the
                # fallback (a page of calls) at its first failure for the process's life.
                self._expand_attempts = EXPAND_ATTEMPTS
                if self._expand_failing:
                    self._expand_failing = False
                    log.info(
                        "$expand=alerts works again; alerts come with their incidents",
                        tenant=self.client.tenant.name,
                    )
                items = tuple(
                    self._with_alerts(item) if _alerts_cut_short(item) else item
                    for item in response.items
                )
                return _page(response, items, top)
            except RetriableError as failure:
                if _not_expands_fault(failure):
                    raise  # our pace or the network, not $expand
                self._expand_failed(failure)
        response = self._listing(INCIDENTS, params, query)
        if not expand_alerts:
            return _page(response, tuple(response.items), top)
        items = tuple(self._with_alerts(item) for item in response.items)
        return _page(response, items, top, fallback=True)

    def _listing(
        self,
        path: str,
        params: Mapping[str, str | int],
        query: PageQuery,
        max_attempts: int | None = None,
    ) -> GraphResponse:
        """One page of a listing. A 400 refusing ``$orderby`` (Graph documents none for
        these lists, microsoft-apis.md §2.8) says what an order ignored says: read in
        windows (``sync.listing.Unordered``); failing on it would stop the stream for good."""
        try:
            return self.client.get(path, params, max_attempts=max_attempts, collection=True)
        except BadRequestError as refused:
            if query.ordered and _refuses_order(refused):
                raise Unordered(f"Graph refused $orderby on {path}: {refused.detail}") from None
            raise

    def _expand_failed(self, failure: RetriableError) -> None:
        self._expand_attempts = 1
        self.client.record("expand_fallbacks")  # every fallback still counts (stats)
        said = log.debug if self._expand_failing else log.warning
        self._expand_failing = True
        said(
            "$expand=alerts failed; reading alerts per incident",
            tenant=self.client.tenant.name,
            error=str(failure),
        )

    def alerts_page(self, query: PageQuery) -> ListPage:
        """One page of alerts_v2 records (see ``_alerts_page``)."""
        return self._alerts_page(ALERTS, query)

    def _alerts_page(self, path: str, query: PageQuery) -> ListPage:
        """One page of a listing of alerts at ``path``. A page whose answer stays over
        ``max_response_bytes`` (alerts heavy with evidence) is asked for again with half as
        many records, down to one, with one attempt each. The next page starts from the size
        that worked and doubles back to ``page_size_alerts`` page by page: one heavy alert
        does not leave every later page small. Each alert fits, so the stream goes on instead
        of failing at the same place every cycle."""
        top, attempts = self._alerts_top, None
        while True:
            try:
                response = self._listing(
                    path, listing_params(query, top), query, max_attempts=attempts
                )
            except AnswerTooLargeError as failure:
                if top == 1:
                    raise
                top, attempts = top // 2, 1
                self._alerts_top = top
                log.warning(
                    "an alerts page was too large to read; asking for fewer alerts",
                    tenant=self.client.tenant.name,
                    page_size=top,
                    error=str(failure),
                )
                continue
            self._alerts_top = min(self.sync.page_size_alerts, top * 2)
            return _page(response, tuple(response.items), top)

    def incident_alerts(self, incident_id: str) -> list[Any]:
        """Every alert of one incident, from ``/security/incidents/{id}/alerts``.

        One page holds nearly every incident's alerts, and a server's own cursor
        (``$skiptoken``) is followed. Graph's next links page by ``$skip`` instead, which it
        refuses above 500 (microsoft-apis.md §2.8), so the second link of an incident of
        more than 1,000 alerts (the kind whose ``$expand`` fails) fails every time and the
        incidents stream would stop there; an offset also skips an alert when one before it
        leaves meanwhile. So at the first ``$skip`` link the alerts are read whole by time
        boundary instead (``sync.listing.whole_scan``), each kept once at its newest version
        read. So are alerts too heavy with evidence for one answer, in pages sized to fit. A
        listing that cannot be read whole raises: an incident is never stored with part of
        its alerts.
        """
        self.client.record("fallback_alert_reads")
        path = f"{INCIDENTS}/{_segment(incident_id)}/alerts"
        alerts: list[Any] = []
        try:
            for page in self.client.paginate(path):
                alerts.extend(page.items)
                if page.next_link is not None and _by_offset(page.next_link):
                    return self._whole_alerts(path, incident_id)
        except AnswerTooLargeError:
            # Alerts heavy with evidence, more than one answer may hold (the kind of incident
            # whose $expand fails): read in pages sized to fit, as the alerts stream is.
            return self._whole_alerts(path, incident_id)
        return alerts

    def _whole_alerts(self, path: str, incident_id: str) -> list[Any]:
        self.client.record("whole_alert_reads")
        log.info(
            "an incident's alerts page by $skip; reading them by time boundary",
            tenant=self.client.tenant.name,
            incident=incident_id,
        )
        try:
            return _each_once(whole_scan(lambda query: self._alerts_page(path, query)))
        except BadRequestError as refused:  # a filter or option this route does not take
            raise UnreadableError(f"Graph refused to list them by time: {refused}") from None

    def _with_alerts(self, incident: Any) -> Any:
        if not isinstance(incident, dict):
            return incident  # not a record: the sync engine quarantines it
        incident_id = incident.get("id")
        if not isinstance(incident_id, str) or not incident_id:
            return incident  # nothing to fetch by; the models quarantine it
        try:
            alerts = self.incident_alerts(incident_id)
        except NotFoundError:
            # Merged or deleted since it was listed; the next cycle reads its new state.
            alerts = []
        except UnreadableError as why:
            # Its alerts cannot be read whole (more sharing one stamp than $skip reaches, a
            # filter this route refuses): the incident is quarantined with the reason, never
            # stored with part of its alerts, and the stream goes on; it is read again when it
            # next changes, or at the reconcile. Any other failure fails the page, as ever.
            self.client.record("unreadable_incidents")
            reason = f"its alerts cannot be read whole: {type(why).__name__}: {why}"
            return UnreadableRecord(incident, reason[:2000])
        return {**incident, "alerts": alerts}

    # -- single records -------------------------------------------------------------------

    def get_incident(
        self, incident_id: str, *, expand_alerts: bool = True
    ) -> dict[str, Any] | None:
        """One incident (with ``alerts`` when asked), or None if Graph no longer has it."""
        path = f"{INCIDENTS}/{_segment(incident_id)}"
        try:
            if expand_alerts:
                try:
                    expanded = self.client.get(
                        path, {EXPAND: "alerts"}, max_attempts=EXPAND_ATTEMPTS
                    )
                    found = _entity(expanded)
                    return self._with_alerts(found) if _alerts_cut_short(found) else found
                except RetriableError as failure:
                    if _not_expands_fault(failure):
                        raise  # the fallback would fail as well
                self.client.record("expand_fallbacks")
                incident: dict[str, Any] = self._with_alerts(_entity(self.client.get(path)))
                return incident
            return _entity(self.client.get(path))
        except NotFoundError:
            return None

    def patch_incident(self, incident_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH documented writable fields only; returns the updated incident."""
        body = _check_changes(changes, INCIDENT_WRITABLE, "incident")
        response = self.client.patch(f"{INCIDENTS}/{_segment(incident_id)}", body)
        if response.json:
            return _entity(response)
        # Graph documents 200 with the incident; should it ever answer 204, read it back.
        return self.get_incident(incident_id, expand_alerts=False) or {}

    def add_incident_comment(self, incident_id: str, text: str) -> list[dict[str, Any]]:
        """Append a comment; returns the incident's full comment list, as Graph does."""
        return self._comment(f"{INCIDENTS}/{_segment(incident_id)}/comments", text)

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alerts_v2 record, or None if Graph no longer has it."""
        try:
            return _entity(self.client.get(f"{ALERTS}/{_segment(alert_id)}"))
        except NotFoundError:
            return None

    def patch_alert(self, alert_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH documented writable alert fields only; returns the updated alert."""
        body = _check_changes(changes, ALERT_WRITABLE, "alert")
        response = self.client.patch(f"{ALERTS}/{_segment(alert_id)}", body)
        if response.json:
            return _entity(response)
        return self.get_alert(alert_id) or {}

    def add_alert_comment(self, alert_id: str, text: str) -> list[dict[str, Any]]:
        """Append a comment to an alert; returns its full comment list."""
        return self._comment(f"{ALERTS}/{_segment(alert_id)}/comments", text)

    def _comment(self, path: str, text: str) -> list[dict[str, Any]]:
        if not text.strip():
            raise ValueError("a comment needs text")
        response = self.client.post(
            path, {"@odata.type": "microsoft.graph.security.alertComment", "comment": text}
        )
        return response.items


__all__ = [
    "ALERTS",
    "ALERT_WRITABLE",
    "INCIDENTS",
    "INCIDENT_WRITABLE",
    "DefenderApi",
    "ListPage",
    "listing_params",
]
