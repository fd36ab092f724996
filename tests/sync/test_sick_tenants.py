"""Sick tenants among healthy ones, as an MSSP runs them: a tenant whose Graph hangs, throttles
or refuses us holds up nobody else — not another tenant's edits, not the tenant's own other
stream beyond Graph's wait, not the shutdown — and one that cannot work until the operator
fixes it is tried less and less often. Real emulator, real service, a proxy making tenants
sick (``sick_proxy``); every wait is bounded."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sick_proxy import Call, Sick, SickProxy
from truth import assert_hub_matches_truth

from xdrsync.config import Config, SyncConfig, TwoWayConfig, load_config
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.server import EmulatorServer
from xdrsync.emulator.service import settings_for
from xdrsync.hub import Hub, configured_url
from xdrsync.sync.engine import SyncService, sync_tenant
from xdrsync.sync.lock import WorkspaceLock
from xdrsync.twoway.edits import EditRequest
from xdrsync.twoway.submit import Tenant, submit
from xdrsync.workspace import Workspace, inbound_settings

INCIDENTS = "/v1.0/security/incidents"


@pytest.fixture
def world() -> Iterator[Callable[[int], tuple[EmulatorServer, SickProxy]]]:
    """An emulator with ``n`` tenants and the proxy in front of it."""
    made: list[tuple[EmulatorServer, SickProxy]] = []

    def make(tenants: int) -> tuple[EmulatorServer, SickProxy]:
        server = EmulatorServer(settings_for(seed=23, incidents=8, tenants=tenants)).start()
        proxy = SickProxy(server.base_url)
        made.append((server, proxy))
        return server, proxy

    yield make
    for server, proxy in made:
        proxy.stop()
        server.stop()


def _config(
    server: EmulatorServer,
    proxy: SickProxy,
    folder: Path,
    sync: SyncConfig,
    secrets: dict[str, str] | None = None,
) -> Config:
    """Every tenant behind its own port of the proxy."""
    tenants = server.emulator.settings.tenants
    config = Config.for_emulator(
        server.base_url,
        [
            (t.name, t.tenant_id, t.client_id, (secrets or {}).get(t.name, t.client_secret))
            for t in tenants
        ],
        workspace_path=folder,
        sync=sync,
        rate_limit_per_minute=6000,
    )
    fronted = []
    for tenant in config.tenants:
        url = proxy.front(tenant.name)
        fronted.append(tenant.model_copy(update={"graph_url": url, "authority_url": url}))
    return config.model_copy(
        update={"tenants": tuple(fronted), "two_way": TwoWayConfig(retry_seconds=0.5)}
    )


def _config_file(
    server: EmulatorServer, proxy: SickProxy, folder: Path, sync: dict[str, Any]
) -> Path:
    """``folder``/xdrsync.toml for a process: every tenant behind its own port of the proxy,
    the workspace in ``folder``/ws."""
    path = write_client_config(
        folder, server.base_url, server.emulator.settings.tenants, workspace="ws", sync=sync
    )
    fronts = {t.name: proxy.front(t.name) for t in server.emulator.settings.tenants}
    lines, current = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("name = "):
            current = line.split('"')[1]
        if line.startswith(("graph_url = ", "authority_url = ")):
            line = f'{line.split(" = ")[0]} = "{fronts[current]}"'
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def _wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def _open_incident(hub: Hub, tenant_id: str) -> str:
    for summary in hub.list_incidents(tenant_id, limit=100):
        if summary.status in ("active", "inProgress") and not summary.merged_into:
            return summary.id
    raise AssertionError("no open incident")


def test_a_healthy_tenants_edit_is_pushed_while_another_tenants_graph_hangs(
    world: Any, tmp_path: Path
) -> None:
    server, proxy = world(2)
    sync = SyncConfig(poll_interval_seconds=0.5, max_attempts=2, request_timeout_seconds=8)
    config = _config(server, proxy, tmp_path / "ws", sync)
    healthy, hung = config.tenants
    with Workspace.open(config) as workspace:
        hub = workspace.hub
        for source in workspace.sources():
            assert sync_tenant(hub, source, inbound_settings(config)).ok
        pusher = workspace.pusher()
        proxy.set(hung.name, Sick("hang"))
        # The hung tenant's edit is queued first, as it was when the reviewer saw it.
        edits = _owner_edits(hub, (hung, healthy))
        service = SyncService(
            hub,
            workspace.sources(),
            inbound_settings(config),
            poll_interval=0.5,
            push=pusher.push_due,
            push_interval=0.1,
        ).start()
        try:
            # Within 10 s, where the hung tenant's edit alone holds a pusher 2 x 8 s (a
            # tighter bound only measures how loaded the machine is).
            _wait_for(
                lambda: hub.edits(ids=edits[healthy.name])[0].state == "confirmed",
                10,
                f"{healthy.name}'s edit pushed",
            )
            assert hub.edits(ids=edits[hung.name])[0].state == "pending"
            assert proxy.calls(hung.name, INCIDENTS)  # its push is under way, hung
        finally:
            proxy.stop()  # the hung calls end
            stopped = service.stop(timeout=15)
    assert stopped


def test_after_a_429_the_tenants_other_stream_waits_for_the_retry_after(
    world: Any, tmp_path: Path
) -> None:
    server, proxy = world(1)
    sync = SyncConfig(poll_interval_seconds=0.2, max_attempts=2)
    config = _config(server, proxy, tmp_path / "ws", sync)
    (tenant,) = config.tenants
    # The incidents listing is throttled twice (its two attempts), asking for 2 s each time.
    proxy.set(tenant.name, Sick("429", retry_after=2, times=2, routes=(INCIDENTS,)))
    with Workspace.open(config) as workspace:
        service = SyncService(
            workspace.hub, workspace.sources(), inbound_settings(config), poll_interval=0.2
        ).start()
        try:
            _wait_for(
                lambda: len([c for c in proxy.calls(tenant.name) if c.status == 200]) >= 2,
                15,
                "both streams read after the throttling",
            )
        finally:
            stopped = service.stop(timeout=10)
    calls = proxy.calls(tenant.name)
    last_429 = max(i for i, c in enumerate(calls) if c.status == 429)
    throttled, after = calls[last_429], calls[last_429 + 1]
    # No call of the tenant, whichever stream, before Graph's wait had passed; and the first
    # one then reads the incidents that were throttled.
    assert after.at - throttled.at >= 1.9, _timeline(calls)
    assert after.path == INCIDENTS, _timeline(calls)
    assert stopped


def test_a_long_retry_after_parks_the_tenant_between_cycles(world: Any, tmp_path: Path) -> None:
    server, proxy = world(1)
    config = _config(server, proxy, tmp_path / "ws", SyncConfig(poll_interval_seconds=0.2))
    (tenant,) = config.tenants
    proxy.set(tenant.name, Sick("429", retry_after=120, times=1, routes=(INCIDENTS,)))
    with Workspace.open(config) as workspace:
        hub = workspace.hub
        service = SyncService(
            hub, workspace.sources(), inbound_settings(config), poll_interval=0.2
        ).start()
        try:
            _wait_for(lambda: proxy.calls(tenant.name), 10, "the first call")
            time.sleep(2)  # ten polls
            state = {s.stream: s for s in hub.list_states()}.get("incidents")
        finally:
            began = time.monotonic()
            stopped = service.stop(timeout=10)
            stopping = time.monotonic() - began
    # One call, throttled; none since. The wait is the stream's, shown where state show and
    # the health page read it, not a thread asleep inside a call: the stop is immediate.
    assert [c.status for c in proxy.calls(tenant.name)] == [429]
    assert state is not None and state.last_error and "not read before" in state.last_error
    retry_at = datetime.fromisoformat(state.doc["retry_at"])
    assert 100 < (retry_at - datetime.now(UTC)).total_seconds() <= 120
    assert stopped and stopping < 2


@pytest.mark.parametrize("trouble", ["wrong secret", "403"])
def test_a_tenant_only_the_operator_can_fix_is_tried_less_and_less_often(
    world: Any, tmp_path: Path, trouble: str
) -> None:
    server, proxy = world(1)
    name = server.emulator.settings.tenants[0].name
    secrets = {name: "not-the-secret"} if trouble == "wrong secret" else None
    config = _config(
        server, proxy, tmp_path / "ws", SyncConfig(poll_interval_seconds=0.05), secrets
    )
    (tenant,) = config.tenants
    if trouble == "403":
        proxy.set(name, Sick("403"))
    tried = "/token" if trouble == "wrong secret" else INCIDENTS

    def attempts() -> list[Call]:
        return [c for c in proxy.calls(name, "/") if c.path.endswith(tried)]

    with Workspace.open(config) as workspace:
        hub = workspace.hub
        service = SyncService(
            hub, workspace.sources(), inbound_settings(config), poll_interval=0.05
        ).start()
        try:
            # Five tries: at the poll interval (every 0.05 s) they would take a quarter of a
            # second; doubling from 0.1 s they are 0.1, 0.2, 0.4 and 0.8 s apart, plus the
            # tries' own time (the first sign-in may take a second on a loaded machine).
            _wait_for(lambda: len(attempts()) >= 5, 20, "five tries")
            seen = attempts()[:5]
            state = {s.stream: s for s in hub.list_states()}["incidents"]
            if trouble == "403":  # fixed (the permission granted): the next try works
                proxy.set(name, Sick())
                _wait_for(lambda: hub.get_state(tenant.tenant_id, "alerts"), 5, "synced")
        finally:
            stopped = service.stop(timeout=10)
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert gaps[-1] >= 0.6 and gaps[-1] > 3 * min(gaps), gaps
    assert state.last_error and "next attempt at" in state.last_error
    assert stopped


def test_the_backoff_doubles_from_twice_the_poll_up_to_a_cap() -> None:
    service = SyncService(
        None,  # type: ignore[arg-type]  # never started
        [],
        None,  # type: ignore[arg-type]
        poll_interval=5,
    )
    waits = [service.backoff(n) for n in range(1, 11)]
    assert waits == [10, 20, 40, 80, 160, 320, 640, 900, 900, 900]
    assert service.backoff(10_000) == 900


def test_run_stops_within_seconds_of_sigterm_with_a_hung_and_a_throttled_tenant(
    world: Any, tmp_path: Path
) -> None:
    server, proxy = world(3)
    tenants = server.emulator.settings.tenants
    path = _config_file(server, proxy, tmp_path / "cfg", {"poll_interval_seconds": 0.5})
    config = load_config(path)
    _, hung, throttled = (t.name for t in tenants)
    hub_url = configured_url(config.workspace)
    with _xdrsync(["run", "--config", str(path)], tmp_path / "run.err") as run:
        _wait_for(lambda: "syncing 3 tenant(s)" in (tmp_path / "run.err").read_text(), 60, "run")
        with Hub.open(hub_url) as hub:
            _wait_for(
                lambda: len(_synced(hub)) >= 6,
                60,
                "every tenant's streams synced once",
            )
        proxy.set(hung, Sick("hang"))
        proxy.set(throttled, Sick("429", retry_after=30))
        _wait_for(
            lambda: (
                any(c.status is None for c in proxy.calls(hung))
                and any(c.status == 429 for c in proxy.calls(throttled))
            ),
            30,
            "a hung call and a throttled one",
        )
        began, took = _stopped_by(run, signal.SIGTERM)
    log = (tmp_path / "run.err").read_text()
    assert run.returncode == 0, log[-3000:]
    # The stop's deadline (20 s for every thread together) and the destinations' drain; no
    # longer whatever the tenants do (systemd's default stop timeout is 90 s).
    assert took < 35, log[-3000:]
    calls_after = [c for c in proxy.calls(throttled) if c.at > began + 1]
    assert not calls_after  # no Graph call after SIGTERM
    # Nothing was half written: every tenant's hub is Defender's, and the lock is free.
    with Hub.open(hub_url) as hub:
        for tenant in tenants:
            assert_hub_matches_truth(hub, tenant.tenant_id, _truth(server, tenant.tenant_id))
    WorkspaceLock.for_config(config).acquire().release()


def _run_while_a_tenants_sign_in_hangs(world: Any, tmp_path: Path) -> tuple[Any, Path, Path]:
    """Two tenants; every route of the first, its sign-in too, hangs from the start (an
    Entra outage, a proxy): the healthy tenant, ``xdrsync run``'s config and its log."""
    server, proxy = world(2)
    hung, healthy = server.emulator.settings.tenants
    path = _config_file(
        server,
        proxy,
        tmp_path / "cfg",
        {"poll_interval_seconds": 0.5, "request_timeout_seconds": 60, "max_attempts": 2},
    )
    proxy.set(hung.name, Sick("hang", routes=("/",)))
    return healthy, path, tmp_path / "run.err"


def test_run_syncs_and_signs_in_a_healthy_tenant_while_anothers_sign_in_hangs_at_start(
    world: Any, tmp_path: Path
) -> None:
    """The tenants are signed in for their app's permissions each on its own thread, not
    one after another before the service starts: the healthy tenant is synced at once, and
    its permissions are recorded (the health page shows them, `update` refuses up front by
    them), while the other tenant's sign-in waits for its request timeout."""
    healthy, path, err = _run_while_a_tenants_sign_in_hangs(world, tmp_path)
    hub_url = configured_url(load_config(path).workspace)
    with _xdrsync(["run", "--config", str(path)], err):
        _wait_for(lambda: Path(hub_url.removeprefix("sqlite:///")).exists(), 30, "the hub")
        with Hub.open(hub_url) as hub:
            _wait_for(
                lambda: (
                    {s.stream for s in _synced(hub) if s.tenant_id == healthy.tenant_id}
                    >= {"incidents", "alerts"}
                    and (hub.get_state(healthy.tenant_id, "two_way") or {}).get("roles")
                ),
                20,  # a healthy tenant's first cycle takes about a second
                "the healthy tenant synced and its permissions recorded; "
                + err.read_text()[-1500:],
            )


def test_run_stops_within_40_s_of_sigterm_while_a_tenants_sign_in_hangs_at_start(
    world: Any, tmp_path: Path
) -> None:
    _, path, err = _run_while_a_tenants_sign_in_hangs(world, tmp_path)
    with _xdrsync(["run", "--config", str(path)], err) as run:
        time.sleep(5)  # started, the hung tenant's sign-in under way
        assert run.poll() is None
        _, took = _stopped_by(run, signal.SIGTERM)
    # operations.md: "The service is gone within about 40 s whatever its tenants do".
    assert took < 40, err.read_text()[-1500:]


def test_sync_once_reads_every_healthy_tenant_while_the_first_ones_graph_hangs(
    world: Any, tmp_path: Path
) -> None:
    """`sync --once` for an MSSP: the tenants are read at once, so the first tenant's hung
    Graph holds up none of the others (read one after another, they waited for its request
    timeout and its retries). Ctrl-C then ends the command within seconds though a request
    is still under way, and what was committed is whole."""
    server, proxy = world(3)
    tenants = server.emulator.settings.tenants
    hung, *healthy = tenants
    path = _config_file(
        server, proxy, tmp_path / "cfg", {"request_timeout_seconds": 120, "max_attempts": 2}
    )
    proxy.set(hung.name, Sick("hang"))
    config = load_config(path)
    hub_url = configured_url(config.workspace)
    with _xdrsync(["sync", "--once", "--config", str(path)], tmp_path / "sync.err") as once:
        # Graph is called once the hub is made.
        _wait_for(lambda: all(proxy.calls(t.name) for t in healthy), 60, "the first calls")
        with Hub.open(hub_url) as hub:
            wanted = {(t.tenant_id, stream) for t in healthy for stream in ("incidents", "alerts")}
            _wait_for(
                lambda: wanted <= {(s.tenant_id, s.stream) for s in _synced(hub)},
                60,
                "both healthy tenants' streams synced while the first tenant hangs",
            )
            for tenant in healthy:
                assert_hub_matches_truth(hub, tenant.tenant_id, _truth(server, tenant.tenant_id))
            assert not hub.list_incidents(hung.tenant_id, limit=1)
        assert any(c.status is None for c in proxy.calls(hung.name)), "the first tenant hangs"
        assert once.poll() is None  # still waiting for the hung tenant
        _, took = _stopped_by(once, signal.SIGINT)
    log = (tmp_path / "sync.err").read_text()
    assert once.returncode == 130, log[-3000:]
    assert took < 30, log[-3000:]  # the tenants' 5 s to stop, not the 120 s request timeout
    with Hub.open(hub_url) as hub:
        for tenant in healthy:
            assert_hub_matches_truth(hub, tenant.tenant_id, _truth(server, tenant.tenant_id))
    WorkspaceLock.for_config(config).acquire().release()


def test_an_interrupted_backfill_says_what_it_read_is_kept(world: Any, tmp_path: Path) -> None:
    """Ctrl-C in a backfill while one tenant's Graph hangs: the command says that what it
    read stays in the workspace and how to finish, and what it read is whole."""
    server, proxy = world(2)
    hung, healthy = server.emulator.settings.tenants
    path = _config_file(
        server, proxy, tmp_path / "cfg", {"request_timeout_seconds": 120, "max_attempts": 2}
    )
    proxy.set(hung.name, Sick("hang"))
    hub_url = configured_url(load_config(path).workspace)
    args = ["backfill", "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z"]
    with _xdrsync([*args, "--config", str(path)], tmp_path / "backfill.err") as backfill:
        _wait_for(lambda: proxy.calls(hung.name), 60, "the hung tenant's first call")
        with Hub.open(hub_url) as hub:
            _wait_for(
                lambda: len(hub.list_incidents(healthy.tenant_id, limit=100)) == 8,
                60,
                "the healthy tenant's incidents read",
            )
        assert backfill.poll() is None  # still waiting for the hung tenant
        _stopped_by(backfill, signal.SIGINT)
    said = (tmp_path / "backfill.err").read_text()
    assert backfill.returncode == 130, said[-3000:]
    assert "backfill interrupted: what it read is kept" in said, said[-3000:]
    with Hub.open(hub_url) as hub:
        assert_hub_matches_truth(hub, healthy.tenant_id, _truth(server, healthy.tenant_id))


@contextmanager
def _xdrsync(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``xdrsync ARGS`` as a process, its stderr in ``log``, killed if it outlives the block.
    It gets Ctrl-C as a shell's child does: a test runner's workers may ignore SIGINT, and
    an ignored signal stays ignored across ``exec``."""
    with log.open("w") as said:
        process = subprocess.Popen(
            [sys.executable, "-m", "xdrsync", *args],
            stdout=subprocess.DEVNULL,
            stderr=said,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def _stopped_by(process: subprocess.Popen[bytes], signum: int) -> tuple[float, float]:
    """Send ``signum`` and wait (at most 120 s) for the process to end: when the signal was
    sent (``time.monotonic``) and the seconds the process took to end."""
    began = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=120)
    return began, time.monotonic() - began


def _synced(hub: Hub) -> list[Any]:
    """The streams that have read to a watermark."""
    return [s for s in hub.list_states() if (s.doc or {}).get("watermark")]


def _truth(server: EmulatorServer, tenant_id: str) -> list[dict[str, Any]]:
    reply = httpx.get(
        f"{server.base_url}/_emulator/truth", params={"tenant": tenant_id}, timeout=60
    )
    reply.raise_for_status()
    return list(reply.json()["value"])


def _owner_edits(hub: Hub, tenants: Sequence[Any]) -> dict[str, list[int]]:
    """An owner edit queued on an open incident of each tenant, in order; their ids by name."""
    return {
        t.name: submit(
            hub,
            Tenant(t.name, t.tenant_id, True),
            "incident",
            _open_incident(hub, t.tenant_id),
            EditRequest(owner=f"analyst@{t.name}.example"),
            author="alice",
            origin="test",
        )
        for t in tenants
    }


def _timeline(calls: list[Call]) -> str:
    start = calls[0].at if calls else 0.0
    return "; ".join(f"{c.at - start:.2f}s {c.path} {c.status}" for c in calls)


def test_sync_once_pushes_each_tenants_edits_on_its_own_thread_before_reading_it(
    world: Any, tmp_path: Path
) -> None:
    """operations.md §3: with `sync --once` a hung tenant holds up none of the others, its
    write-back included: each tenant's due edits are pushed on the tenant's own thread, just
    before it is read, so a hung tenant with an edit waiting delays only itself (pushed on
    the main thread, tenant after tenant, it held every other tenant's read for its whole
    retry budget)."""
    server, proxy = world(2)
    hung, healthy = server.emulator.settings.tenants
    path = _config_file(
        server,
        proxy,
        tmp_path / "cfg",
        {"request_timeout_seconds": 5, "request_deadline_seconds": 5, "max_attempts": 2},
    )
    first = subprocess.run(
        [sys.executable, "-m", "xdrsync", "sync", "--once", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    hub_url = configured_url(load_config(path).workspace)
    with Hub.open(hub_url) as hub:
        edits = _owner_edits(hub, (hung, healthy))  # the hung tenant's first, as in the config
    proxy.set(hung.name, Sick("hang"))
    second = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "xdrsync", "sync", "--once", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr  # the hung tenant failed
    with Hub.open(hub_url) as hub:
        assert hub.edits(ids=edits[healthy.name])[0].state == "confirmed"
        assert hub.edits(ids=edits[hung.name])[0].state == "pending"  # retried next time
    # Measured against the hung tenant's own first request of this run (its sign-in, which
    # hangs for the request timeout, 5 s): the healthy tenant's push and read began within
    # it, where pushed tenant after tenant they began only once every attempt of the hung
    # push had ended. (When they began, not ended: a loaded machine may slow them down.)
    (first_hung, *_) = [c for c in proxy.calls(hung.name, "/") if c.at >= second]
    healthy_calls = [c for c in proxy.calls(healthy.name) if c.at >= second]
    pushed = next(c for c in healthy_calls if c.method == "PATCH")
    read = next(c for c in healthy_calls if c.path.endswith("/security/incidents"))
    assert pushed.at < read.at < first_hung.at + 5, (
        f"the healthy tenant was pushed {pushed.at - first_hung.at:.1f} s and read "
        f"{read.at - first_hung.at:.1f} s after the hung tenant's first request began "
        "(which hangs 5 s)"
    )
