"""The measured scenarios. Each returns rows for the results table; ``__main__`` runs them."""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    PYTHON,
    Emulator,
    emulator,
    graph_calls,
    run_xdrsync,
    source_env,
    write_config,
)
from xdrsync.emulator.clientconfig import write_client_config
from xdrsync.emulator.tenants import TenantSpec
from xdrsync.graph.pacing import default_burst
from xdrsync.layout import HUB_FILE, KQL_CACHE

SCOPE = "https://graph.microsoft.com/.default"


def _token(emu: Emulator, http: httpx.Client) -> str:
    reply = http.post(
        f"{emu.base_url}/{emu.tenant.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": emu.tenant.client_id,
            "client_secret": emu.tenant.client_secret,
            "scope": SCOPE,
        },
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def page_everything(emu: Emulator, *, expand: bool) -> tuple[int, int, float]:
    """A bare client paging through every incident: (incidents, pages, seconds).

    It follows next links, so the emulator serves keyset links for it (Graph's offset links
    stop at $skip=500); the emulator's offset mode is restored afterwards."""
    with httpx.Client(timeout=120) as http:
        http.post(f"{emu.base_url}/_emulator/paging", content="keyset").raise_for_status()
        try:
            return _follow_links(emu, http, expand=expand)
        finally:
            http.post(f"{emu.base_url}/_emulator/paging", content="offset").raise_for_status()


def _follow_links(emu: Emulator, http: httpx.Client, *, expand: bool) -> tuple[int, int, float]:
    # The header xdrsync sends too: without it the emulator rewrites newer enum members.
    headers = {
        "Authorization": f"Bearer {_token(emu, http)}",
        "Prefer": "include-unknown-enum-members",
    }
    params: dict[str, str] | None = {"$top": "50"}
    if expand and params is not None:
        params["$expand"] = "alerts"
    url: str | None = f"{emu.base_url}/v1.0/security/incidents"
    incidents = pages = 0
    started = time.perf_counter()
    while url:
        body = http.get(url, headers=headers, params=params).json()
        incidents += len(body["value"])
        pages += 1
        url, params = body.get("@odata.nextLink"), None
    return incidents, pages, time.perf_counter() - started


def emulator_throughput(incidents: int) -> list[list[Any]]:
    rows = []
    with emulator("--incidents", str(incidents)) as emu:
        for expand in (False, True):
            page_everything(emu, expand=expand)  # warm the sort caches
            count, pages, seconds = page_everything(emu, expand=expand)
            rows.append(
                [
                    f"{count:,} incidents, $top=50" + (", $expand=alerts" if expand else ""),
                    pages,
                    f"{pages / seconds:,.0f}",
                    f"{count / seconds:,.0f}",
                ]
            )
    return rows


def backfill(
    incidents: int, work: Path, *, source: Path | None = None, label: str = "current"
) -> dict[str, Any]:
    """`xdrsync sync --once` from nothing against an emulator of ``incidents`` (``source``:
    another revision's ``src`` tree, see ``harness.source_tree``)."""
    with emulator("--incidents", str(incidents)) as emu:
        _, _, bare_seconds = page_everything(emu, expand=True)
        before = emu.graph_calls()
        config = write_config(work / f"backfill-{incidents}-{label}", emu, initial_backfill_days=31)
        if source is not None:  # `sync --once` serves no console; older revisions refuse port 0
            _drop_section(config, "console")
        measured = run_xdrsync("sync", "--once", "--config", str(config), source=source)
        if measured.returncode != 0:
            raise RuntimeError(measured.output[-2000:])
        calls = emu.graph_calls() - before
    return {
        "label": label,
        "incidents": incidents,
        "seconds": measured.seconds,
        "rate": incidents / measured.seconds,
        "peak_mib": measured.peak_rss_mib,
        "worker_peak_mib": measured.worker_peak_rss_mib,
        "cpu_per_1000": 1000 * measured.cpu_seconds / incidents,
        "calls": calls,
        "bare_seconds": bare_seconds,
    }


def _drop_section(config: Path, name: str) -> None:
    kept, skipping = [], False
    for line in config.read_text().splitlines():
        if line.startswith("["):
            skipping = line.strip() == f"[{name}]"
        if not skipping:
            kept.append(line)
    config.write_text("\n".join(kept) + "\n")


def budget_under(limit_per_minute: int) -> int:
    """The largest pacing budget whose steady rate plus burst stays below ``limit`` calls in
    any minute (one call of margin for timing jitter): what a user sets to never see a 429."""
    return max(b for b in range(1, limit_per_minute) if b + default_burst(b) < limit_per_minute)


def throttled_backfill(limit_per_minute: int, incidents: int, work: Path) -> dict[str, Any]:
    budget = budget_under(limit_per_minute)
    with emulator("--incidents", str(incidents), "--rate-limit", str(limit_per_minute)) as emu:
        config = write_config(
            work / f"throttled-{limit_per_minute}",
            emu,
            initial_backfill_days=31,
            rate_limit_per_minute=budget,
        )
        measured = run_xdrsync("sync", "--once", "--config", str(config))
        stats = emu.stats()
    if measured.returncode != 0:
        raise RuntimeError(measured.output[-2000:])
    bound = limit_per_minute * 50 / 60  # incidents per second the limit allows
    achieved = incidents / measured.seconds
    return {
        "limit": limit_per_minute,
        "budget": budget,
        "incidents": incidents,
        "seconds": measured.seconds,
        "achieved": achieved,
        "bound": bound,
        "share": achieved / bound,
        "throttled": stats["throttled"],
        "calls": graph_calls(stats),
    }


#: Every Graph answer's delay in the many-tenant scenario: Graph's own list answers with
#: $expand=alerts take about this or more, so a tenant's sync mostly waits on them.
SLOW_GRAPH_SECONDS = 0.3
GRAPH_LIMIT_PER_MINUTE = 150  # Graph's own limit on security calls, per tenant


def many_tenants(
    work: Path,
    *,
    tenants: int,
    incidents: int,
    sources: dict[str, Path | None],
    repeats: int = 3,
) -> dict[str, Any]:
    """`xdrsync sync --once` from nothing over ``tenants`` tenants of ``incidents`` each
    whose every Graph answer takes ``SLOW_GRAPH_SECONDS``, and over the first of them alone,
    for each tree in ``sources`` (None: this one): ``repeats`` turns, the trees in turn within
    each, one emulator for all (no activity, so every run finds the same data). Medians per
    tree; each run's hub must hold every incident the emulator serves those tenants."""
    budget = budget_under(GRAPH_LIMIT_PER_MINUTE)
    specs = [TenantSpec.derived(7, i) for i in range(tenants)]
    args = ["--tenants", str(tenants), "--incidents", str(incidents)]
    args += ["--rate-limit", str(GRAPH_LIMIT_PER_MINUTE)]
    args += ["--faults", f"slow_rate=1,slow_seconds={SLOW_GRAPH_SECONDS}"]
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with emulator(*args) as emu:
        served: dict[str, int] = emu.stats()["incidents"]
        if sorted(served) != sorted(t.tenant_id for t in specs) or any(
            n != incidents for n in served.values()
        ):
            raise RuntimeError(f"the emulator serves {served}, not {tenants} × {incidents}")
        for turn in range(repeats):
            for index, (name, src) in enumerate(sources.items()):
                for count in (tenants, 1):
                    folder = work / f"tenants-{index}-{count}-{turn}"
                    run = _sync_tenants(emu, specs[:count], folder, src, budget, served)
                    samples.setdefault((name, count), []).append(run)
        throttled = emu.stats()["throttled"]
    trees = []
    for name in sources:
        many, alone = (_medians(samples[(name, count)]) for count in (tenants, 1))
        trees.append({"label": name, "many": many, "alone": alone})
    return {
        "tenants": tenants,
        "incidents": incidents,
        "budget": budget,
        "throttled": throttled,
        "repeats": repeats,
        "trees": trees,
    }


def _sync_tenants(
    emu: Emulator,
    tenants: list[TenantSpec],
    folder: Path,
    source: Path | None,
    budget: int,
    served: dict[str, int],
) -> dict[str, Any]:
    config = write_client_config(
        folder,
        emu.base_url,
        tenants,
        sync={"initial_backfill_days": 31},
        rate_limit_per_minute=budget,
    )
    _drop_section(config, "console")  # `sync --once` serves none; older revisions refuse port 0
    before = emu.stats()
    measured = run_xdrsync("sync", "--once", "--config", str(config), source=source)
    after = emu.stats()
    if measured.returncode != 0:
        raise RuntimeError(measured.output[-2000:])
    hub = folder / HUB_FILE
    if not hub.exists():
        raise RuntimeError(f"no hub at {hub} after the sync")
    with sqlite3.connect(hub) as conn:
        stored = dict(conn.execute("SELECT tenant_id, count(*) FROM incident GROUP BY tenant_id"))
    conn.close()
    expected = {t.tenant_id: served[t.tenant_id] for t in tenants}
    if stored != expected:
        raise RuntimeError(f"the hub holds {stored} incidents per tenant, the emulator {expected}")
    return {
        "seconds": measured.seconds,
        "cpu": measured.cpu_seconds,
        "peak_mib": measured.peak_rss_mib,
        "stored": sum(stored.values()),
        "calls": graph_calls(after) - graph_calls(before),
        "throttled": after["throttled"] - before["throttled"],
    }


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    merged = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    merged["each_seconds"] = [r["seconds"] for r in runs]
    return merged


def freshness_and_budget(
    work: Path, *, activity: int, minutes: float, label: str = "default", **sync: Any
) -> dict[str, Any]:
    """`xdrsync run` (default settings, changed by ``sync``) against live activity: how long
    from a change in Defender (its lastUpdateDateTime) until that version is a SecurityIncident
    row, and how many Graph calls that costs, idle and busy."""
    work = work / label
    with emulator("--incidents", "200", "--activity", "0") as idle_emu:
        config = write_config(work / "idle", idle_emu, **sync)
        service = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(20)  # backfill done
        start = idle_emu.graph_calls()
        time.sleep(60)
        idle_calls = idle_emu.graph_calls() - start
        service.terminate()
        service.wait(timeout=60)
    with emulator("--incidents", "200", "--activity", str(activity)) as emu:
        config = write_config(work / "fresh", emu, **sync)
        service = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(20)
        start_calls = emu.graph_calls()
        observed_from = time.time()
        time.sleep(minutes * 60)
        calls = emu.graph_calls() - start_calls
        truth = emu.truth()
        time.sleep(20)  # let the last changes arrive
        service.terminate()
        service.wait(timeout=60)
    rows = _query(
        config, "SecurityIncident | project ProviderIncidentId, LastModifiedTime, TimeGenerated"
    )
    arrived: dict[tuple[str, str], float] = {}
    for incident_id, modified, generated in rows:
        key = (str(incident_id), str(modified))
        stamp = _epoch(generated)
        arrived[key] = min(arrived.get(key, stamp), stamp)
    delays = []
    for incident in truth:
        changed = _epoch(incident["lastUpdateDateTime"])
        if changed < observed_from:
            continue
        match = [
            v
            for (i, m), v in arrived.items()
            if i == incident["id"] and abs(_epoch(m) - changed) < 0.001
        ]
        if match:
            delays.append(min(match) - changed)
    delays.sort()
    changes = max(len(delays), 1)
    return {
        "idle_calls_per_minute": idle_calls,
        "activity_per_minute": activity,
        "calls_per_minute": calls / minutes,
        "changes_observed": len(delays),
        "calls_per_change": calls / changes,
        "p50": statistics.median(delays) if delays else float("nan"),
        "p95": delays[int(0.95 * (len(delays) - 1))] if delays else float("nan"),
        "max": delays[-1] if delays else float("nan"),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_service(
    work: Path, *, tenants: int, label: str, src: Path | None = None, **sync: Any
) -> dict[str, Any]:
    """`xdrsync run` over ``tenants`` tenants with no activity: the CPU the service process
    uses and the Graph calls it makes in a quiet minute, after its first cycles are done
    (``src``: the tree to run, None for this one)."""
    with emulator("--tenants", str(tenants), "--incidents", "50", "--activity", "0") as emu:
        specs = [TenantSpec.derived(7, i) for i in range(tenants)]
        config = write_client_config(
            work / f"idle-{label}", emu.base_url, specs, sync=sync, rate_limit_per_minute=10_000
        )
        service = subprocess.Popen(
            [PYTHON, "-m", "xdrsync", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=source_env(src),
        )
        try:
            time.sleep(30)  # the first cycles (backfill of 50 incidents per tenant) are done
            calls, cpu = emu.graph_calls(), _cpu_seconds(service.pid)
            time.sleep(60)
            calls, cpu = emu.graph_calls() - calls, _cpu_seconds(service.pid) - cpu
        finally:
            service.terminate()
            service.wait(timeout=60)
    cycles = calls / 2  # two reads (incidents, alerts) per quiet cycle of a tenant
    return {
        "tenants": tenants,
        "calls_per_tenant_minute": calls / tenants,
        "cpu_seconds_per_minute": cpu,
        "cpu_ms_per_cycle": 1000 * cpu / max(cycles, 1),
    }


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text).timestamp()


def _query(config: Path, kql: str) -> list[list[Any]]:
    import json

    done = subprocess.run(
        [PYTHON, "-m", "xdrsync", "query", "--config", str(config), "--format", "json", kql],
        capture_output=True,
        text=True,
        check=True,
    )
    records = json.loads(done.stdout)
    return [list(r.values()) for r in records]


#: The query whose start `query_startup` measures.
STARTUP_QUERY = "SecurityIncident | count"


def query_startup(
    work: Path, *, sources: dict[str, Path | None], repeats: int = 7
) -> list[list[Any]]:
    """Whole-process seconds of `xdrsync query "SecurityIncident | count"` on a small
    workspace against a bare `python -c "import duckdb"` (and against duckdb-kql alone
    translating the query, the floor of a first run), medians of ``repeats`` runs taken
    in turns (each revision in ``sources``; None is the current tree): once as the first run
    of that query (no kept translation, see `tables/translations.py`) and once run again.
    Every process may write bytecode, and each command runs once before the timed runs, so
    the modules load from `.pyc` files as an installed package's do."""
    with emulator("--incidents", "200") as emu:
        config = write_config(work / "startup", emu, initial_backfill_days=31)
        synced = run_xdrsync("sync", "--once", "--config", str(config))
        if synced.returncode != 0:
            raise RuntimeError(synced.output[-2000:])
    kept = config.parent / KQL_CACHE
    query = ["-m", "xdrsync", "query", "--config", str(config), STARTUP_QUERY]
    commands: dict[str, tuple[list[str], Path | None, bool]] = {
        'bare `python -c "import duckdb"`': (["-c", "import duckdb"], None, False),
        # The floor of any first run: the KQL library the design names, imported, translating
        # this query once (its ANTLR parser's first parse), with nothing of xdrsync.
        "duckdb-kql alone: import, translate the query once": (
            ["-c", f"import duckdb, duckdb_kql; duckdb_kql.to_sql({STARTUP_QUERY!r})"],
            None,
            False,
        ),
    }
    for name, src in sources.items():
        commands[f"`xdrsync query`, {name}, first run"] = (query, src, True)
        commands[f"`xdrsync query`, {name}, run again"] = (query, src, False)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for turn in range(repeats + 1):
        for name, (args, src, first) in commands.items():
            if first:
                shutil.rmtree(kept, ignore_errors=True)
            env = {**(source_env(src) or os.environ)}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            started = time.perf_counter()
            subprocess.run([PYTHON, *args], capture_output=True, check=True, env=env)
            if turn:  # the first turn only writes the bytecode
                times[name].append(time.perf_counter() - started)
    bare = statistics.median(next(iter(times.values())))
    return [
        [name, f"{statistics.median(t):.3f}", f"{statistics.median(t) / bare:.1f}×"]
        for name, t in times.items()
    ]


def scratch() -> Path:
    """A folder for this run's workspaces, removed when the process exits (a full run's
    backfills leave several GB; runs before this one left them behind)."""
    folder = Path(tempfile.mkdtemp(prefix="xdrsync-bench-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
