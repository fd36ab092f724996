"""The incidents resource: PUT/GET/DELETE, validation, limits, etags, read-only mode, ARM errors."""

from __future__ import annotations

from typing import Any

from sentinel_helpers import incident_body


def test_put_creates_with_201_then_updates_with_200_and_get_returns_it(sentinel: Any) -> None:
    s = sentinel()
    created = s.put_incident("inc-1", description="first", labels=[{"labelName": "xdr"}])
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "inc-1"
    assert body["type"] == "Microsoft.SecurityInsights/Incidents"
    assert body["id"] == (
        f"{s.settings.workspace_path}/providers/Microsoft.SecurityInsights/Incidents/inc-1"
    )
    assert body["etag"].startswith('"') and body["etag"].endswith('"')
    props = body["properties"]
    assert props["title"] == "Suspicious sign-in"
    assert props["incidentNumber"] == 1
    assert props["providerName"] == "Azure Sentinel"
    assert props["labels"] == [{"labelName": "xdr", "labelType": "User"}]
    assert props["createdTimeUtc"] == props["lastModifiedTimeUtc"]
    assert props["incidentUrl"].startswith("https://portal.azure.com/")
    assert props["additionalData"]["commentsCount"] == 0

    updated = s.put_incident("inc-1", title="Renamed", severity="High")
    assert updated.status_code == 200
    again = updated.json()
    assert again["etag"] != body["etag"]
    assert again["properties"]["incidentNumber"] == 1
    assert again["properties"]["createdTimeUtc"] == props["createdTimeUtc"]
    assert again["properties"]["lastModifiedTimeUtc"] > props["lastModifiedTimeUtc"]
    # A PUT replaces: what the second body left out is gone.
    assert "description" not in again["properties"]
    assert again["properties"]["labels"] == []

    fetched = s.arm("GET", "/incidents/inc-1")
    assert fetched.status_code == 200
    assert fetched.json() == again
    assert s.put_incident("inc-2").json()["properties"]["incidentNumber"] == 2


def test_a_stale_etag_is_refused_with_arms_exact_conflict_body(sentinel: Any) -> None:
    s = sentinel()
    first = s.put_incident("inc-1").json()
    second = s.put_incident("inc-1", etag=first["etag"], status="Active")
    assert second.status_code == 200
    stale = s.put_incident("inc-1", etag=first["etag"], status="New")
    assert stale.status_code == 409
    assert stale.json() == {
        "error": {
            "code": "Conflict",
            "message": "Newer version of resource 'inc-1' exists. Data was not saved",
        }
    }
    assert s.arm("GET", "/incidents/inc-1").json()["properties"]["status"] == "Active"
    # An etag for an incident that does not exist is a conflict too.
    ghost = s.put_incident("ghost", etag=first["etag"])
    assert ghost.status_code == 409
    assert s.arm("GET", "/incidents/ghost").status_code == 404


def test_a_put_without_etag_overwrites_whatever_is_stored(sentinel: Any) -> None:
    s = sentinel()
    s.put_incident("inc-1")
    s.control("POST", "/incidents/inc-1", json={"status": "Active"})
    blind = s.put_incident("inc-1", title="Mine")
    assert blind.status_code == 200
    assert blind.json()["properties"]["status"] == "New"
    assert blind.json()["properties"]["title"] == "Mine"


def test_required_properties_and_enums_are_checked(sentinel: Any) -> None:
    s = sentinel()
    for missing in ("title", "severity", "status"):
        body = incident_body()
        del body["properties"][missing]
        reply = s.arm("PUT", "/incidents/x", json=body)
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == "BadRequest"
        assert f"'{missing}'" in reply.json()["error"]["message"]
    for field, value in (
        ("severity", "Critical"),
        ("status", "Resolved"),
        ("classification", "Benign"),
        ("classificationReason", "Because"),
        ("owner", {"ownerType": "Robot"}),
        ("owner", {"objectId": "not-a-guid"}),
        ("firstActivityTimeUtc", "yesterday"),
    ):
        reply = s.put_incident("x", **{field: value})
        assert reply.status_code == 400, (field, value)
    assert s.arm("PUT", "/incidents/x", json={"title": "no properties"}).status_code == 400
    assert s.arm("PUT", "/incidents/x", content=b"{not json").json()["error"]["code"] == (
        "InvalidRequestContent"
    )
    assert s.truth()["incidents"] == []


def test_description_limit_and_closing_without_classification(sentinel: Any) -> None:
    s = sentinel()
    assert s.put_incident("x", description="d" * 5000).status_code == 201
    too_long = s.put_incident("x", description="d" * 5001)
    assert too_long.status_code == 400
    assert "description" in too_long.json()["error"]["message"]
    emoji = s.put_incident("x", description="\U0001f600" * 2501)  # 5,002 UTF-16 code units
    assert emoji.status_code == 400
    unclassified = s.put_incident("x", status="Closed")
    assert unclassified.status_code == 400
    assert "classification" in unclassified.json()["error"]["message"]
    closed = s.put_incident(
        "x",
        status="Closed",
        classification="TruePositive",
        classificationReason="SuspiciousActivity",
        classificationComment="confirmed",
    )
    assert closed.status_code == 200
    assert closed.json()["properties"]["classification"] == "TruePositive"


def test_a_classification_other_than_undetermined_needs_its_reason(sentinel: Any) -> None:
    """Sentinel answers 400 "classification 'BenignPositive' must have classificationReason"
    (seen by a third party closing incidents through the API): closing as a true, false or
    benign positive takes a reason too; Undetermined has none."""
    s = sentinel()
    for classification in ("TruePositive", "FalsePositive", "BenignPositive"):
        refused = s.put_incident("x", status="Closed", classification=classification)
        assert refused.status_code == 400, classification
        assert "classificationReason" in refused.json()["error"]["message"]
    assert s.put_incident("x", status="Closed", classification="Undetermined").status_code == 201


def test_read_only_properties_in_the_body_are_ignored(sentinel: Any) -> None:
    s = sentinel()
    reply = s.put_incident(
        "x",
        incidentNumber=999,
        createdTimeUtc="2001-01-01T00:00:00Z",
        lastModifiedTimeUtc="2001-01-01T00:00:00Z",
        incidentUrl="https://evil.example",
        providerName="Me",
        providerIncidentId="42",
        additionalData={"alertsCount": 99},
        relatedAnalyticRuleIds=["/x"],
        labels=[{"labelName": "auto?", "labelType": "AutoAssigned"}],
        owner={"assignedTo": "Ann", "userPrincipalName": "ann@contoso.com", "ownerType": "User"},
        somethingUnknown=True,
    )
    assert reply.status_code == 201
    props = reply.json()["properties"]
    assert props["incidentNumber"] == 1
    assert not props["createdTimeUtc"].startswith("2001")
    assert props["providerName"] == "Azure Sentinel"
    assert props["providerIncidentId"] == "1"
    assert props["additionalData"]["alertsCount"] == 0
    assert props["relatedAnalyticRuleIds"] == []
    assert props["labels"] == [{"labelName": "auto?", "labelType": "User"}]
    assert props["owner"]["assignedTo"] == "Ann"
    assert "somethingUnknown" not in props


def test_delete_then_get_is_404_and_a_second_delete_is_204(sentinel: Any) -> None:
    s = sentinel()
    s.put_incident("x")
    assert s.arm("DELETE", "/incidents/x").status_code == 200
    assert s.arm("GET", "/incidents/x").status_code == 404
    assert s.arm("DELETE", "/incidents/x").status_code == 204


def test_arm_errors_for_api_version_and_unknown_workspace(sentinel: Any) -> None:
    s = sentinel()
    token = {"Authorization": f"Bearer {s.token()}"}
    missing = s.http.get(f"{s.api}/incidents", headers=token)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    elsewhere = s.api.replace(s.settings.workspace, "other-ws")
    reply = s.arm("GET", f"{elsewhere}/incidents?api-version=2025-09-01")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "ResourceNotFound"
    other_rg = s.api.replace(s.settings.resource_group, "rg-other")
    assert s.arm("GET", f"{other_rg}/incidents?api-version=2025-09-01").status_code == 404
    # Resource names are case-insensitive in ARM.
    upper = s.api.replace(s.settings.workspace, s.settings.workspace.upper())
    assert s.arm("GET", f"{upper}/incidents?api-version=2025-09-01").status_code == 200


def test_a_read_only_app_gets_arms_authorization_failed_on_writes(sentinel: Any) -> None:
    s = sentinel(read_only=True, incidents=1)
    name = s.truth()["incidents"][0]["name"]
    reply = s.put_incident(name)
    assert reply.status_code == 403
    error = reply.json()["error"]
    assert error["code"] == "AuthorizationFailed"
    client = s.settings.client_id
    assert error["message"].startswith(
        f"The client '{client}' with object id '{client}' does not have authorization to "
        "perform action 'Microsoft.SecurityInsights/incidents/write' over scope "
        f"'{s.settings.workspace_path}/providers/Microsoft.SecurityInsights/Incidents/{name}'"
    )
    comment = s.arm("PUT", f"/incidents/{name}/comments/c1", json={"properties": {"message": "m"}})
    assert comment.status_code == 403
    assert "incidents/comments/write" in comment.json()["error"]["message"]
    assert s.arm("DELETE", f"/incidents/{name}").status_code == 403
    assert s.arm("GET", f"/incidents/{name}").status_code == 200
    assert s.control("GET", "/stats").json()["forbidden"] == 3
