"""The ARM client: what each answer of the incidents API becomes (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from xdrsync.config import SentinelDestinationConfig, SyncConfig
from xdrsync.destinations.sentinel.arm import (
    API_VERSION,
    ArmClient,
    CreatedMeanwhileError,
    EtagConflictError,
    IncidentMissingError,
    IncidentRejectedError,
    modified_before,
)
from xdrsync.errors import ConfigError, RetriableError, ThrottledError
from xdrsync.graph.pacing import Pacer
from xdrsync.graph.retry import RetryPolicy

ENTRY = SentinelDestinationConfig(
    name="soc",
    type="sentinel",
    tenant_id="00000000-0000-0000-0000-0000000000ff",
    client_id="11111111-1111-1111-1111-111111111111",
    client_secret=SecretStr("not-a-real-secret"),
    subscription_id="22222222-2222-2222-2222-222222222222",
    resource_group="rg-soc",
    workspace="law-soc",
)
BASE = f"https://management.azure.com{ENTRY.workspace_path}"
NAME = "6fa971c1-f915-5994-87fa-8d6f62dce43e"

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTokens:
    def __init__(self) -> None:
        self.invalidated = 0

    def token(self) -> str:
        return f"token-{self.invalidated}"

    def invalidate(self) -> None:
        self.invalidated += 1


class Recorder:
    """Answers requests from a list (the last one repeats) and keeps what was sent."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def _error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


@pytest.fixture
def make() -> Iterator[Callable[..., tuple[ArmClient, Recorder, FakeTokens, list[float]]]]:
    clients: list[ArmClient] = []

    def _make(
        *answers: httpx.Response | Exception, attempts: int = 3
    ) -> tuple[ArmClient, Recorder, FakeTokens, list[float]]:
        recorder = Recorder(*answers)
        tokens = FakeTokens()
        sleeps: list[float] = []
        client = ArmClient(
            ENTRY,
            SyncConfig(),
            http=httpx.Client(transport=httpx.MockTransport(recorder)),
            tokens=tokens,
            pacer=Pacer(6000, sleep=sleeps.append),
            policy=RetryPolicy(max_attempts=attempts),
            sleep=sleeps.append,
            rng=lambda: 0.5,
        )
        clients.append(client)
        return client, recorder, tokens, sleeps

    yield _make
    for client in clients:
        client._http.close()


def _incident(etag: str = '"e1"', **props: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"name": NAME, "etag": etag, "properties": {"title": "T", **props}}
    )


def test_get_returns_the_etag_and_properties(make: Any) -> None:
    client, recorder, _, _ = make(_incident(status="New"))
    etag, props = client.get(NAME)
    assert etag == '"e1"'
    assert props == {"title": "T", "status": "New"}
    sent = recorder.requests[0]
    assert sent.url.path == f"{ENTRY.workspace_path}/incidents/{NAME}"
    assert sent.url.params["api-version"] == API_VERSION == "2025-09-01"
    assert sent.headers["Authorization"] == "Bearer token-0"


def test_a_missing_incident_is_none_but_a_missing_workspace_is_config(make: Any) -> None:
    client, _, _, _ = make(_error(404, "NotFound", "Incident 'x' was not found."))
    assert client.get(NAME) is None
    client, _, _, _ = make(_error(404, "ResourceNotFound", "The Resource 'law-soc' ..."))
    with pytest.raises(ConfigError, match=r"workspace law-soc .*not found"):
        client.get(NAME)


def test_put_sends_the_etag_in_the_body_and_returns_the_new_one(make: Any) -> None:
    stamp = "2026-11-01T12:00:00.1234567Z"
    client, recorder, _, _ = make(_incident(etag='"e2"', lastModifiedTimeUtc=stamp))
    etag, answered = client.put(NAME, {"title": "T"}, '"e1"')
    assert etag == '"e2"' and answered["lastModifiedTimeUtc"] == stamp
    assert recorder.requests[0].method == "PUT"
    assert recorder.body() == {"properties": {"title": "T"}, "etag": '"e1"'}
    client.put(NAME, {"title": "T"}, None)
    assert "etag" not in recorder.body()


def test_a_read_is_older_than_a_write_by_sentinels_own_stamp_to_the_100_ns() -> None:
    write = {"lastModifiedTimeUtc": "2026-11-01T12:00:00.1234567Z"}
    assert modified_before({"lastModifiedTimeUtc": "2026-11-01T12:00:00.1234566Z"}, write)
    assert not modified_before({"lastModifiedTimeUtc": "2026-11-01T12:00:00.1234567Z"}, write)
    assert not modified_before({"lastModifiedTimeUtc": "2026-11-01T13:00:01+01:00"}, write)
    assert modified_before({"lastModifiedTimeUtc": "2026-11-01T12:59:00+01:00"}, write)
    # Without both stamps nothing can be told: the read is taken as it is.
    assert not modified_before({}, write)
    assert not modified_before({"lastModifiedTimeUtc": "soon"}, write)
    assert not modified_before({"lastModifiedTimeUtc": "2026-11-01T11:00:00Z"}, {})


@pytest.mark.parametrize("status", [409, 412])
def test_409_is_an_etag_conflict_and_retriable(make: Any, status: int) -> None:
    client, recorder, _, _ = make(
        _error(status, "Conflict", f"Newer version of resource '{NAME}' exists. Data was not saved")
    )
    with pytest.raises(EtagConflictError, match="changed since it was read") as caught:
        client.put(NAME, {"title": "T"}, '"e0"')
    assert isinstance(caught.value, RetriableError)
    assert len(recorder.requests) == 1  # never resent blindly


def test_400_on_a_write_rejects_that_incident_with_arms_reason(make: Any) -> None:
    client, _, _, _ = make(
        _error(400, "BadRequest", "The 'description' property is 5001 characters long")
    )
    with pytest.raises(IncidentRejectedError) as caught:
        client.put(NAME, {"title": "T"}, None)
    assert "5001 characters long" in caught.value.reason


def test_403_names_the_missing_role(make: Any) -> None:
    client, _, _, _ = make(_error(403, "AuthorizationFailed", "does not have authorization"))
    with pytest.raises(ConfigError, match="Microsoft Sentinel Responder on workspace law-soc"):
        client.put(NAME, {"title": "T"}, None)


def test_401_drops_the_token_once_then_is_config(make: Any) -> None:
    client, recorder, tokens, _ = make(_error(401, "InvalidAuthenticationToken", "expired"))
    with pytest.raises(ConfigError, match="rejected a fresh access token"):
        client.get(NAME)
    assert tokens.invalidated == 1
    assert len(recorder.requests) == 2
    client, recorder, tokens, _ = make(_error(401, "ExpiredAuthenticationToken", "x"), _incident())
    assert client.get(NAME) is not None
    assert recorder.requests[1].headers["Authorization"] == "Bearer token-1"


def test_429_waits_as_asked_then_raises_throttled_with_the_wait(make: Any) -> None:
    throttled = _error(429, "TooManyRequests", "slow down", **{"Retry-After": "7"})
    client, _recorder, _, sleeps = make(throttled, _incident())
    assert client.get(NAME) is not None
    assert 7.0 in sleeps
    assert client.throttled == 1
    client, _, _, _ = make(throttled, attempts=1)
    with pytest.raises(ThrottledError) as caught:
        client.get(NAME)
    assert caught.value.retry_after == 7.0


def test_5xx_and_transport_failures_are_retried_then_retriable(make: Any) -> None:
    client, recorder, _, _ = make(_error(503, "ServiceUnavailable", "busy"), _incident())
    assert client.get(NAME) is not None
    assert len(recorder.requests) == 2
    client, recorder, _, _ = make(_error(500, "InternalServerError", "boom"))
    with pytest.raises(RetriableError, match="after 3 attempt"):
        client.put(NAME, {"title": "T"}, '"e1"')
    assert len(recorder.requests) == 3
    client, _, _, _ = make(httpx.ConnectError("refused"))
    with pytest.raises(RetriableError, match="not sent"):
        client.get(NAME)


def test_a_put_without_an_etag_that_may_have_landed_is_sent_again_only_if_nothing_is_there(
    make: Any,
) -> None:
    """ARM takes a PUT without an etag whatever is stored: resent after its answer was lost
    (or a 5xx), it would replace what an analyst saved on the incident it created meanwhile.
    A GET first: nothing there, it is sent again; the incident there, it is not
    (``CreatedMeanwhileError``: the destination reads it and writes with its etag). A PUT with
    an etag (a save in between makes it a 409) and one that never reached ARM are resent."""
    for failure in (httpx.RemoteProtocolError("reset"), _error(502, "BadGateway", "gateway")):
        client, recorder, _, _ = make(failure, _incident())  # the GET finds the incident
        with pytest.raises(CreatedMeanwhileError):
            client.put(NAME, {"title": "T"}, None)
        assert [r.method for r in recorder.requests] == ["PUT", "GET"]
        client, recorder, _, _ = make(failure, _error(404, "NotFound", "no incident"), _incident())
        client.put(NAME, {"title": "T"}, None)
        assert [r.method for r in recorder.requests] == ["PUT", "GET", "PUT"]
        client, recorder, _, _ = make(failure, _incident())
        client.put(NAME, {"title": "T"}, '"e1"')
        assert [r.method for r in recorder.requests] == ["PUT", "PUT"]
    client, recorder, _, _ = make(httpx.ConnectError("refused"), _incident())
    client.put(NAME, {"title": "T"}, None)
    assert [r.method for r in recorder.requests] == ["PUT", "PUT"]


def test_comments_are_listed_across_pages_and_put_by_name(make: Any) -> None:
    second = f"{BASE}/incidents/{NAME}/comments?api-version={API_VERSION}&$skipToken=2"
    client, recorder, _, _ = make(
        httpx.Response(
            200,
            json={
                "value": [{"name": "c1", "properties": {"message": "one"}}],
                "nextLink": second,
            },
        ),
        httpx.Response(200, json={"value": [{"name": "c2", "properties": {"message": "two"}}]}),
        httpx.Response(201, json={"name": "c3", "properties": {"message": "three"}}),
    )
    comments = client.list_comments(NAME)
    assert [(c.name, c.message) for c in comments] == [("c1", "one"), ("c2", "two")]
    client.put_comment(NAME, "c3", "three")
    assert recorder.requests[-1].url.path.endswith(f"/incidents/{NAME}/comments/c3")
    assert recorder.body() == {"properties": {"message": "three"}}


def test_a_next_link_off_arm_is_not_followed(make: Any) -> None:
    client, recorder, _, _ = make(
        httpx.Response(200, json={"value": [], "nextLink": "https://evil.example/steal"})
    )
    with pytest.raises(RetriableError, match="refusing to follow"):
        client.list_comments(NAME)
    assert all(r.url.host == "management.azure.com" for r in recorder.requests)


def test_check_is_one_cheap_call(make: Any) -> None:
    client, recorder, _, _ = make(httpx.Response(200, json={"value": []}))
    client.check()
    (sent,) = recorder.requests
    assert sent.url.path == f"{ENTRY.workspace_path}/incidents"
    assert sent.url.params["$top"] == "1"
    client, _, _, _ = make(_error(404, "NotFound", "nothing here"))
    with pytest.raises(ConfigError, match="not found"):
        client.check()
    client, _, _, _ = make(_error(403, "AuthorizationFailed", "no"))
    with pytest.raises(ConfigError, match="Microsoft Sentinel Responder"):
        client.check()


def test_a_malformed_answer_is_retried(make: Any) -> None:
    client, recorder, _, _ = make(httpx.Response(200, content=b"{not json"), _incident())
    assert client.get(NAME) is not None
    assert len(recorder.requests) == 2


def test_a_404_for_an_incident_written_before_says_it_is_gone(make: Any) -> None:
    """Deleted in Sentinel: its comments (listed or put) and a PUT with its etag are 404s of
    the incident, told apart from a missing workspace and from creating one."""
    gone = _error(404, "NotFound", f"Incident '{NAME}' was not found.")
    client, _, _, _ = make(gone)
    with pytest.raises(IncidentMissingError, match="gone from Sentinel"):
        client.list_comments(NAME)
    with pytest.raises(IncidentMissingError):
        client.put_comment(NAME, "c1", "note")
    with pytest.raises(IncidentMissingError):
        client.put(NAME, {"title": "T"}, '"e1"')
    assert client.get(NAME) is None
    with pytest.raises(RetriableError) as creating:  # no etag: the incident cannot be missing
        client.put(NAME, {"title": "T"}, None)
    assert not isinstance(creating.value, IncidentMissingError)
    workspace, _, _, _ = make(_error(404, "ResourceNotFound", "workspace not found"))
    with pytest.raises(ConfigError):
        workspace.put_comment(NAME, "c1", "note")


def test_a_body_is_utf8_json_with_a_lone_surrogate_replaced(make: Any) -> None:
    client, recorder, _, _ = make(_incident(), httpx.Response(201, json={"name": "c1"}))
    client.put(NAME, {"title": "Attack \ud800 on host"}, None)
    client.put_comment(NAME, "c1", "note \udfff")
    for index, wanted in (
        (0, {"properties": {"title": "Attack \ufffd on host"}}),
        (1, {"properties": {"message": "note \ufffd"}}),
    ):
        assert recorder.requests[index].headers["Content-Type"] == "application/json"
        assert json.loads(recorder.requests[index].content.decode("utf-8")) == wanted
