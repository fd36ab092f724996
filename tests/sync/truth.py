"""Comparing the hub with the emulator's ground truth, the way the guarantees are stated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xdrsync.config import Config
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.hub import Hub


def _without_alerts(incident: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in incident.items() if k != "alerts"}


def assert_hub_matches_truth(hub: Hub, tenant_id: str, truth: list[dict[str, Any]]) -> None:
    """Every incident and alert at its latest version, with all evidence and comments;
    nothing extra; merged incidents linked to their survivor."""
    stored_ids = {row.id for row in hub.list_incidents(tenant_id, limit=1_000_000)}
    assert stored_ids == {i["id"] for i in truth}, "the hub holds other incidents than Defender"
    for incident in truth:
        stored = hub.get_incident(tenant_id, incident["id"])
        assert stored is not None, incident["id"]
        graph = stored.to_graph()
        assert _without_alerts(graph) == _without_alerts(incident), (
            f"incident {incident['id']} differs"
        )
        got_alerts = {a["id"]: a for a in graph.get("alerts") or []}
        want_alerts = {a["id"]: a for a in incident.get("alerts") or []}
        assert got_alerts.keys() == want_alerts.keys(), f"alerts of {incident['id']} differ"
        for alert_id, alert in want_alerts.items():
            assert got_alerts[alert_id] == alert, f"alert {alert_id} differs"
        if incident.get("status") == "redirected":
            survivor = incident["redirectIncidentId"]
            assert incident["id"] in hub.get_merged_from(tenant_id, survivor)
    for incident in truth:
        versions = hub.incident_history(tenant_id, incident["id"])
        texts = [(v.version_text, v.content_hash) for v in versions]
        assert len(texts) == len(set(texts)), f"incident {incident['id']} has a version twice"
        assert versions and versions[-1].version_text == _stamp7(incident["lastUpdateDateTime"])
        for alert in incident.get("alerts") or []:
            history = [
                (v.version_text, v.content_hash) for v in hub.alert_history(tenant_id, alert["id"])
            ]
            assert history, f"alert {alert['id']} has no history"
            assert len(history) == len(set(history)), f"alert {alert['id']} has a version twice"
    # Comments, each once, where Defender keeps them (a survivor shows its absorbed ones too).
    for incident in truth:
        own = [
            c
            for c in hub.list_comments(tenant_id, incident["id"])
            if c.incident_id == incident["id"] and c.entity_type == "incident"
        ]
        want = sorted(c.get("comment") or "" for c in incident.get("comments") or [])
        assert sorted(c.comment or "" for c in own) == want, f"comments of {incident['id']}"


def _stamp7(text: str) -> str:
    """Graph's stamp as the hub writes versions (seven fractional digits, Z)."""
    from xdrsync.hub.payload import ticks_from_text, version_text

    ticks = ticks_from_text(text)
    assert ticks is not None
    return str(version_text(ticks))


def write_config(folder: Path, env: Any) -> Path:
    """The env's config as a file, for CLI subprocesses."""
    config: Config = env.config
    return write_client_config(
        folder,
        env.server.base_url,
        env.server.emulator.settings.tenants,
        workspace=config.workspace.path,
        sync=config.sync.model_dump(),
        rate_limit_per_minute=config.tenants[0].rate_limit_per_minute,
    )
