"""The Sentinel destination against the Sentinel emulator: hub → ARM and Logs Ingestion."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from xdrsync.config import Config, parse_config
from xdrsync.destinations.runner import DestinationRunner
from xdrsync.destinations.sentinel.destination import SentinelDestination
from xdrsync.destinations.sentinel.mapping import incident_name, own_labels
from xdrsync.destinations.sentinel.readback import SentinelReadback
from xdrsync.emulator.sentinel import SentinelEmulatorServer, settings_for
from xdrsync.errors import ConfigError, RetriableError
from xdrsync.hub import Hub, InboundBatch, default_url
from xdrsync.models import Alert, Incident

TENANT = "00000000-0000-0000-0000-00000000000a"
OTHER = "00000000-0000-0000-0000-00000000000b"


def _alert(alert_id: str, incident_id: str, product: str) -> dict[str, Any]:
    # No first/lastActivityDateTime: the emulator shifts stored activity times by one day
    # (its instant_ticks counts from ordinal 1), which would make every delivery a PUT.
    return {
        "id": alert_id,
        "incidentId": incident_id,
        "status": "new",
        "severity": "high",
        "serviceSource": product,
        "title": f"Alert {alert_id}",
        "createdDateTime": "2026-11-01T10:01:00Z",
        "lastUpdateDateTime": "2026-11-01T10:01:00Z",
        "evidence": [
            {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "10.0.0.1"}
        ],
    }


def _incident(incident_id: str = "41", minute: int = 0, **fields: Any) -> Incident:
    payload: dict[str, Any] = {
        "id": incident_id,
        "displayName": "Multi-stage attack",
        "description": "Ransomware staged on two hosts",
        "severity": "high",
        "status": "active",
        "customTags": ["vip"],
        "assignedTo": "ann@contoso.com",
        "createdDateTime": "2026-11-01T10:00:00Z",
        "lastUpdateDateTime": f"2026-11-01T11:{minute:02d}:00Z",
        "comments": [
            {
                "comment": "isolating host-7",
                "createdByDisplayName": "bob@contoso.com",
                "createdDateTime": "2026-11-01T10:30:00Z",
            }
        ],
        "alerts": [_alert(f"da{incident_id}", incident_id, "microsoftDefenderForEndpoint")],
    }
    payload.update(fields)
    return Incident.from_graph(payload)


class World:
    """One emulator, one hub, and a destination pointed at them."""

    def __init__(self, server: SentinelEmulatorServer, hub: Hub, config: Config) -> None:
        self.server = server
        self.hub = hub
        self.config = config
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        self.destination = SentinelDestination.connect(config.destinations[0], config, hub)
        self.runner = DestinationRunner(hub, self.destination)

    def commit(self, *incidents: Incident, tenant: str = TENANT) -> None:
        self.hub.commit_batch(
            InboundBatch(tenant_id=tenant, stream="incidents", incidents=list(incidents))
        )

    def publish(self) -> int:
        return self.runner.publish(force=True)

    def deliver_again(self) -> int:
        """Lower the cursor to 0: every change is delivered once more."""
        self.runner.replay_from(1)
        return self.publish()

    def truth(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/_emulator/truth").json()
        return body

    def incident(self, incident_id: str = "41", tenant: str = TENANT) -> dict[str, Any]:
        name = incident_name(tenant, incident_id)
        (found,) = [i for i in self.truth()["incidents"] if i["name"] == name]
        return found

    def labels(self, incident_id: str = "41") -> list[str]:
        return [label["labelName"] for label in self.incident(incident_id)["properties"]["labels"]]

    def close(self) -> None:
        self.destination.close()
        self.http.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., World]]:
    opened: list[tuple[SentinelEmulatorServer, Hub, World]] = []

    def _open(*, tenants: tuple[str, ...] = (), **settings: Any) -> World:
        server = SentinelEmulatorServer(settings_for(**settings)).start()
        toml = httpx.get(f"{server.base_url}/_emulator/config", timeout=10).text
        entry = tomllib.loads(toml)["destinations"][0]
        if tenants:
            entry["tenants"] = list(tenants)
        entry["reads_per_minute"] = entry["writes_per_minute"] = (
            100_000  # pacing is not tested here
        )
        config = parse_config(
            {
                "workspace": {"path": tmp_path},
                "tenants": [
                    {
                        "name": "contoso",
                        "tenant_id": TENANT,
                        "client_id": TENANT,
                        "client_secret": "unused",
                    },
                    {
                        "name": "fabrikam",
                        "tenant_id": OTHER,
                        "client_id": OTHER,
                        "client_secret": "unused",
                    },
                ],
                "destinations": [entry],
            }
        )
        hub = Hub.open(default_url(tmp_path / f"hub{len(opened)}"))
        made = World(server, hub, config)
        opened.append((server, hub, made))
        return made

    yield _open
    for server, hub, made in opened:
        made.close()
        hub.close()
        server.stop()


def test_create_then_no_op_then_update(world: Callable[..., World]) -> None:
    w = world()
    w.commit(_incident())
    assert w.publish() == 2  # the incident and its alert
    created = w.incident()
    props = created["properties"]
    assert props["title"] == "Multi-stage attack"
    assert props["description"].startswith("Ransomware staged on two hosts\n\n")
    assert "Defender XDR incident 41 (tenant contoso)" in props["description"]
    assert (props["severity"], props["status"], props["classification"]) == (
        "High",
        "New",
        "Undetermined",
    )
    assert props["owner"]["userPrincipalName"] == "ann@contoso.com"
    assert w.labels() == [
        "contoso",
        "Microsoft Defender Advanced Threat Protection",
        "vip",
        "defender-incident:41",
    ]
    assert w.destination.puts == 1

    assert w.deliver_again() == 2  # the same changes once more: nothing to write
    assert w.destination.puts == 1
    assert w.destination.skipped_unchanged == 1
    assert w.incident()["etag"] == created["etag"]
    assert len(w.incident()["comments"]) == 1  # mirrored once although delivered twice

    w.commit(_incident(minute=5, status="resolved", classification="truePositive"))
    w.publish()
    props = w.incident()["properties"]
    assert (props["status"], props["classification"], props["classificationReason"]) == (
        "Closed",
        "TruePositive",
        "SuspiciousActivity",
    )
    assert w.destination.puts == 2
    assert len(w.truth()["incidents"]) == 1


def test_an_analyst_edit_since_our_write_is_merged_and_their_label_survives(
    world: Callable[..., World],
) -> None:
    w = world()
    w.commit(_incident())
    w.publish()
    name = incident_name(TENANT, "41")
    labels = w.incident()["properties"]["labels"]
    labels.append({"labelName": "escalated-by-tier2", "labelType": "User"})
    reply = w.http.post(f"/_emulator/incidents/{name}", json={"labels": labels})
    assert reply.status_code == 200, reply.text
    w.commit(_incident(minute=5, status="inProgress", customTags=["vip", "phish"]))
    w.publish()
    assert w.destination.conflicts == 1
    props = w.incident()["properties"]
    assert props["status"] == "Active"
    labels = w.labels()
    assert "escalated-by-tier2" in labels
    assert "phish" in labels
    assert len(labels) == len(set(labels))


def test_an_owner_sentinel_knows_by_object_id_keeps_it_through_defenders_next_change(
    world: Callable[..., World],
) -> None:
    """Ann takes the incident in Sentinel (her object id, e-mail and name); Defender already
    names her (by UPN) and then changes the status: the write keeps her owner as Sentinel
    holds it, so the incident stays in her "Assigned to me" view."""
    w = world()
    w.commit(_incident())
    w.publish()
    name = incident_name(TENANT, "41")
    ann = {
        "objectId": "3f49ac52-8132-4f99-ae1f-052e3036e60a",
        "email": "ann@contoso.com",
        "assignedTo": "Ann Analyst",
        "userPrincipalName": "ann@contoso.com",
    }
    reply = w.http.post(f"/_emulator/incidents/{name}", json={"owner": ann})
    assert reply.status_code == 200, reply.text
    w.commit(_incident(minute=5, status="inProgress"))
    w.publish()
    props = w.incident()["properties"]
    assert props["status"] == "Active"
    assert props["owner"] == ann | {"ownerType": "User"}


def test_an_incident_that_keeps_changing_is_retried_later(world: Callable[..., World]) -> None:
    w = world(faults="conflict_rate=1")
    w.commit(_incident())
    w.publish()  # creating needs no etag, so no conflict can meet it
    w.commit(_incident(minute=5, status="inProgress"))
    with pytest.raises(RetriableError, match="409"):
        w.publish()
    assert w.destination.conflicts == 4
    assert w.incident()["properties"]["status"] == "New"  # never written without an etag
    assert w.hub.list_cursors()[0].error is not None


def test_alert_rows_arrive_with_their_change_number(world: Callable[..., World]) -> None:
    w = world()
    w.commit(_incident())
    w.publish()
    seqs = [c.seq for c in w.hub.changes_after(0) if c.entity_type == "alert"]
    logs = w.truth()["logs"]
    (alert,) = logs["Custom-XdrSecurityAlert"]
    (evidence,) = logs["Custom-XdrAlertEvidence"]
    assert alert["XdrSeq"] == evidence["XdrSeq"] == seqs[0]
    assert alert["XdrTenant"] == "contoso"
    assert alert["XdrIncidentName"] == incident_name(TENANT, "41")
    assert alert["SystemAlertId"] == "da41"
    assert evidence["RemoteIP"] == "10.0.0.1"
    assert "TenantId" not in alert
    assert "Type" not in alert
    assert w.destination.rows_uploaded == 2


def test_an_alert_whose_rows_cannot_be_made_is_rejected_alone(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shape no mapper foresaw costs its own alert a dead letter; the other alert of the
    batch is uploaded and the incident written."""
    import xdrsync.destinations.sentinel.destination as sentinel

    real = sentinel.alert_rows

    def fragile(alert: Any, *args: Any, **kwargs: Any) -> Any:
        if alert.id == "da41":
            raise AttributeError("'list' object has no attribute 'get'")
        return real(alert, *args, **kwargs)

    monkeypatch.setattr(sentinel, "alert_rows", fragile)
    w = world()
    w.commit(_incident("41"), _incident("42"))
    w.publish()
    (alert,) = w.truth()["logs"]["Custom-XdrSecurityAlert"]
    assert alert["SystemAlertId"] == "da42"
    (dead,) = w.hub.list_dead_letters(w.destination.name)
    assert "AttributeError" in dead.reason
    assert {w.incident("41")["name"], w.incident("42")["name"]}  # both incidents written


def test_a_merged_incident_closes_its_twin_and_links_the_survivor(
    world: Callable[..., World],
) -> None:
    w = world()
    w.commit(
        _incident("77", displayName="Survivor"),
        _incident(
            "41", status="redirected", redirectIncidentId="77", classification="truePositive"
        ),
    )
    w.publish()
    props = w.incident("41")["properties"]
    assert (props["status"], props["classification"]) == ("Closed", "Undetermined")
    assert "Redirected" in w.labels("41")
    messages = [c["properties"]["message"] for c in w.incident("41")["comments"]]
    assert any(
        "merged this incident into incident 77" in m and incident_name(TENANT, "77") in m
        for m in messages
    )


def test_tenants_stay_apart_and_the_destination_takes_only_its_own(
    world: Callable[..., World],
) -> None:
    w = world(tenants=("contoso",))
    w.commit(_incident())
    w.commit(_incident(), tenant=OTHER)
    w.publish()
    assert [i["name"] for i in w.truth()["incidents"]] == [incident_name(TENANT, "41")]

    both = world()
    both.commit(_incident())
    both.commit(_incident(), tenant=OTHER)
    both.publish()
    names = {i["name"] for i in both.truth()["incidents"]}
    assert names == {incident_name(TENANT, "41"), incident_name(OTHER, "41")}
    other = [label["labelName"] for label in both.incident("41", OTHER)["properties"]["labels"]]
    assert other[0] == "fabrikam"
    assert both.labels()[0] == "contoso"


def test_missing_roles_are_config_errors_that_name_them(world: Callable[..., World]) -> None:
    reader = world(read_only=True)
    reader.commit(_incident())
    with pytest.raises(ConfigError, match="Microsoft Sentinel Responder on workspace"):
        reader.publish()
    assert reader.destination.check()  # reading is allowed: check passes

    no_rows = world(ingest_permission=False)
    no_rows.commit(_incident())
    with pytest.raises(ConfigError, match="Monitoring Metrics Publisher on the data collection"):
        no_rows.publish()


def test_activity_times_round_trip_and_a_redelivery_writes_nothing(
    world: Callable[..., World],
) -> None:
    w = world()
    alert = _alert("da41", "41", "microsoftDefenderForEndpoint")
    alert["firstActivityDateTime"] = "2026-11-01T09:58:00Z"
    alert["lastActivityDateTime"] = "2026-11-01T10:05:00Z"
    w.commit(_incident(alerts=[alert]))
    w.publish()
    props = w.incident()["properties"]
    assert props["firstActivityTimeUtc"].startswith("2026-11-01T09:58:00")
    w.deliver_again()
    assert w.destination.puts == 1


def test_a_lone_surrogate_in_defender_text_neither_blocks_nor_rewrites(
    world: Callable[..., World],
) -> None:
    """Graph's JSON may carry a lone UTF-16 surrogate (``\\ud800``), which UTF-8 cannot hold:
    Sentinel shows U+FFFD in its place, the incidents after it are delivered, and delivering
    the same changes again (even after a write cut short, which reads Sentinel back) writes
    nothing."""
    w = world()
    comment = {
        "comment": "note \ud83d from the field",
        "createdByDisplayName": "bob@contoso.com",
        "createdDateTime": "2026-11-01T10:30:00Z",
    }
    w.commit(
        _incident(
            displayName="Attack \ud800 on host",
            description="desc \udfff end",
            assignedTo="Ann \udc00 Smith",
            customTags=["vip\ud800"],
            comments=[comment],
        )
    )
    w.commit(_incident("42"))
    assert w.publish() == 4
    shown = w.incident()
    props = shown["properties"]
    assert props["title"] == "Attack \ufffd on host"
    assert props["description"].startswith("desc \ufffd end\n\n")
    assert props["owner"]["assignedTo"] == "Ann \ufffd Smith"
    assert "vip\ufffd" in w.labels()
    (message,) = [c["properties"]["message"] for c in shown["comments"]]
    assert message.endswith("note \ufffd from the field")
    assert w.incident("42")["properties"]["title"] == "Multi-stage attack"
    assert w.hub.list_cursors()[0].seq == w.hub.max_seq()

    puts, comments = w.destination.puts, w.destination.comments_put
    w.deliver_again()
    # A write cut short by a crash leaves the copy without an etag: Sentinel is read back.
    name = incident_name(TENANT, "41")
    copy = w.hub.get_remote_copy(w.destination.name, name)
    assert copy is not None
    w.hub.save_remote_copy(w.destination.name, replace(copy, etag=""))
    w.deliver_again()
    assert (w.destination.puts, w.destination.comments_put) == (puts, comments)
    assert w.incident()["etag"] == shown["etag"]


def test_an_incident_deleted_in_sentinel_comes_back_on_its_next_comment(
    world: Callable[..., World],
) -> None:
    """An analyst deletes the twin; Defender then adds a comment (nothing else changed). The
    incident is created again with every comment, and a later, unrelated incident arrives."""
    w = world()
    w.commit(_incident())
    w.publish()
    name = incident_name(TENANT, "41")
    entry = w.destination.entry
    token = w.destination.arm.tokens.token()
    url = f"{entry.arm_url}{entry.workspace_path}/incidents/{name}?api-version=2025-09-01"
    assert w.http.delete(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    comments = [
        {
            "comment": "isolating host-7",
            "createdByDisplayName": "bob@contoso.com",
            "createdDateTime": "2026-11-01T10:30:00Z",
        },
        {
            "comment": "new finding",
            "createdByDisplayName": "bob@contoso.com",
            "createdDateTime": "2026-11-01T11:04:00Z",
        },
    ]
    w.commit(_incident(minute=5, comments=comments))
    w.commit(_incident("42", minute=6))
    w.publish()
    assert w.hub.list_cursors()[0].seq == w.hub.max_seq()
    back = w.incident()
    assert back["properties"]["title"] == "Multi-stage attack"
    assert "vip" in w.labels()
    messages = sorted(c["properties"]["message"].rsplit("\n", 1)[-1] for c in back["comments"])
    assert messages == ["isolating host-7", "new finding"]
    assert w.incident("42")["properties"]["title"] == "Multi-stage attack"
    puts = w.destination.puts
    w.deliver_again()
    assert w.destination.puts == puts
    assert len(w.incident()["comments"]) == 2


def test_a_large_upload_is_cut_into_bodies_the_service_takes(world: Callable[..., World]) -> None:
    """~3 MB of small rows: each upload's body, brackets and separators counted, stays under
    the service's 1 MB, so none is refused (413) and split, and no row is rejected."""
    w = world()
    ingestor = w.destination.ingestor
    assert ingestor is not None
    stream = w.destination.entry.evidence_stream
    rows = [
        {"XdrSeq": seq, "AlertId": f"a{seq:08d}", "EntityType": "Ip", "RemoteIP": "10.0.0.1"}
        for seq in range(30_000)
    ]
    assert ingestor.upload(stream, rows) == {}
    stats = w.http.get("/_emulator/stats").json()
    posts = stats["by_route"]["POST /dataCollectionRules/{rule_id}/streams/{stream}"]
    body = len(json.dumps(rows).encode("utf-8"))
    assert stats["by_status"].get("413", 0) == 0
    assert posts == ingestor.uploads <= -(-body // 1_000_000) + 1
    assert len(w.truth()["logs"][stream]) == len(rows) == ingestor.rows_uploaded


def test_multi_byte_text_is_cut_into_bodies_the_service_takes(
    world: Callable[..., World],
) -> None:
    """The SDK writes non-ASCII text as JSON escapes (an emoji is 12 bytes on the wire, not
    4): the uploads are cut by the body as sent, so none passes 1 MB and none is refused."""
    w = world()
    ingestor = w.destination.ingestor
    assert ingestor is not None
    stream = w.destination.entry.evidence_stream
    rows = [{"XdrSeq": seq, "AlertId": "é😀中" * 1_000 + str(seq)} for seq in range(300)]
    assert ingestor.upload(stream, rows) == {}
    stats = w.http.get("/_emulator/stats").json()
    assert stats["by_status"].get("413", 0) == 0
    assert [r["AlertId"] for r in w.truth()["logs"][stream]] == [r["AlertId"] for r in rows]


def test_an_alert_whose_row_passes_one_megabyte_is_refused_alone(
    world: Callable[..., World],
) -> None:
    """Every value is kept under 64 KB, yet an alert of many long values (escaped on the
    wire) makes a row over 1 MB: it is sent alone, refused (413) and dead-lettered; the
    other alert's rows land, the cursor moves on and the next delivery is not held up."""
    w = world()
    huge = "😀" * 20_000
    big = _alert("big1", "41", "microsoftDefenderForEndpoint")
    big.update(title=huge, description=huge, providerAlertId=huge, detectorId=huge)
    big["evidence"] = [
        {
            "@odata.type": "#microsoft.graph.security.processEvidence",
            "processCommandLine": "😀" * 5_000 + str(n),
            "processId": n,
        }
        for n in range(13)
    ]
    fine = _alert("ok1", "41", "microsoftDefenderForEndpoint")
    w.commit(_incident(alerts=[big, fine]))
    w.publish()
    assert w.hub.list_cursors()[0].seq == w.hub.max_seq()
    (dead,) = w.hub.list_dead_letters(w.destination.name)
    assert dead.entity_id == "big1" and "413" in dead.reason
    alerts = w.truth()["logs"][w.destination.entry.alert_stream]
    assert [row["SystemAlertId"] for row in alerts] == ["ok1"]
    w.commit(_incident("42"))
    w.publish()
    assert w.hub.list_cursors()[0].seq == w.hub.max_seq()
    assert len(w.truth()["logs"][w.destination.entry.alert_stream]) == 2


def test_an_analysts_label_named_like_a_dropped_tag_stays(world: Callable[..., World]) -> None:
    """Defender drops its tag "escalated" (xdrsync takes the label away); later an analyst
    labels the incident "escalated" and with a product name no alert has. Only labels xdrsync
    wrote itself are ever taken away: both stay through every later Defender change, while a
    tag Defender drops now still goes."""
    w = world()
    name = incident_name(TENANT, "41")
    w.commit(_incident(minute=0, customTags=["escalated", "phish"]))
    w.publish()
    w.commit(_incident(minute=1, customTags=["phish"]))
    w.publish()
    assert "escalated" not in w.labels()
    labels = w.incident()["properties"]["labels"] + [
        {"labelName": "escalated", "labelType": "User"},
        {"labelName": "Microsoft Cloud App Security", "labelType": "User"},
    ]
    w.http.post(f"/_emulator/incidents/{name}", json={"labels": labels}).raise_for_status()
    w.commit(_incident(minute=2, customTags=["phish"], severity="medium"))
    w.publish()
    w.commit(_incident(minute=3, customTags=[], severity="low"))
    w.publish()
    shown = w.labels()
    assert {"escalated", "Microsoft Cloud App Security"} <= set(shown)
    assert "phish" not in shown
    assert w.incident()["properties"]["severity"] == "Low"


def test_an_alert_with_thousands_of_evidence_items_still_gets_its_row(
    world: Callable[..., World],
) -> None:
    """3,000 evidence items make an Entities value of about 1.5 MB: the row was refused whole
    (413) and the alert dead-lettered. It is kept under Logs Ingestion's 64 KB per field, as
    JSON, so the row lands beside its 3,000 evidence rows."""
    w = world()
    big = _alert("big1", "41", "microsoftDefenderForEndpoint")
    big["evidence"] = [
        {
            "@odata.type": "#microsoft.graph.security.processEvidence",
            "processCommandLine": "powershell.exe -enc " + "A" * 400 + str(n),
            "processId": n,
            "imageFile": {"fileName": f"p{n}.exe", "filePath": "C:\\x"},
            "createdDateTime": "2026-11-01T10:01:00Z",
            "verdict": "suspicious",
        }
        for n in range(3000)
    ]
    w.commit(_incident(alerts=[big]))
    w.publish()
    logs = w.truth()["logs"]
    (row,) = logs[w.destination.entry.alert_stream]
    assert len(logs[w.destination.entry.evidence_stream]) == 3000
    entities = json.loads(row["Entities"])
    assert "left out" in entities[-1]["XdrCut"] and len(entities) > 10
    assert w.hub.list_dead_letters("sentinel") == []


def test_the_incident_an_alert_left_drops_what_the_alert_gave_it(
    world: Callable[..., World],
) -> None:
    """Defender moves an alert to another incident and does not stamp the one it left: the
    hub's membership change for that one rewrites its Sentinel twin without the alert."""
    w = world()
    office = _alert("dx", "41", "microsoftDefenderForOffice365")
    w.commit(_incident(alerts=[_alert("da41", "41", "microsoftDefenderForEndpoint"), office]))
    w.commit(_incident("42", customTags=[]))
    w.publish()
    only_endpoint = [
        "contoso",
        "Microsoft Defender Advanced Threat Protection",
        "vip",
        "defender-incident:41",
    ]
    assert len(w.labels("41")) == len(only_endpoint) + 1  # Office 365's product too
    moved = {**office, "incidentId": "42", "lastUpdateDateTime": "2026-11-01T11:30:00Z"}
    w.hub.commit_batch(
        InboundBatch(tenant_id=TENANT, stream="alerts", alerts=[Alert.from_graph(moved)])
    )
    w.publish()
    assert w.labels("41") == only_endpoint
    assert any("Office 365" in label for label in w.labels("42"))  # at once, from the alert
    assert w.deliver_again() > 0 and w.labels("41") == only_endpoint


def test_a_creation_whose_answer_was_lost_is_not_sent_again_over_an_analysts_label(
    world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PUT that creates the twin lands, but its answer is lost (a connection reset); an
    analyst labels the new incident before xdrsync tries again. A PUT without an etag is no
    idempotent retry: resent, it would replace the analyst's save, and the label would be
    gone from Sentinel before the read-back ever saw it (so never sent to Defender either).
    The incident is read again instead: the label is kept, and queued for Defender."""
    w = world()
    reader = SentinelReadback(w.destination, w.config, w.hub)
    assert reader.destination is w.destination
    name = incident_name(TENANT, "41")
    http = w.destination.arm._http
    real_stream = http.stream
    cut: list[str] = []

    @contextmanager
    def stream(method: str, url: Any, **options: Any) -> Iterator[httpx.Response]:
        with real_stream(method, url, **options) as response:
            if method == "PUT" and f"/incidents/{name}?" in str(url) and not cut:
                response.read()  # Sentinel created the incident ...
                cut.append(str(url))
                shown = w.incident()
                labels = [
                    *shown["properties"]["labels"],
                    {"labelName": "tier2", "labelType": "User"},
                ]
                body = {"etag": shown["etag"], "properties": {"labels": labels}}
                saved = w.http.post(f"/_emulator/incidents/{name}", json=body)
                assert saved.status_code == 200, saved.text
                # ... and the connection dropped before xdrsync read the answer.
                raise httpx.RemoteProtocolError("peer closed connection")
            yield response

    monkeypatch.setattr(http, "stream", stream)
    w.commit(_incident())
    w.publish()  # read again in the same delivery, not at the runner's next try
    assert cut, "the creating PUT was never sent"
    assert "tier2" in w.labels()
    assert "vip" in w.labels()
    assert w.hub.list_cursors()[0].seq == w.hub.max_seq()
    (edit,) = [e for e in w.hub.edits() if e.field == "customTags"]
    assert edit.wanted["add"] == ["tier2"]
    # The copy still knows which labels xdrsync derived (the next write withdraws only those).
    copy = w.hub.get_remote_copy(w.destination.name, name)
    assert copy is not None
    derived = own_labels(copy.properties)
    assert derived is not None and "vip" in derived and "tier2" not in derived, derived
