"""A two-way sync process that kills itself with SIGKILL at an exact point (chaos test helper).

    python twoway_crasher.py CONFIG POINT N CYCLES JOURNAL

opens the workspace of CONFIG and runs up to CYCLES cycles of one inbound cycle per tenant
followed by ``Workspace.pusher().push_due()``. POINT is where it dies, on the N-th time it gets
there:

* ``sent``: right after ``Hub.mark_sent`` returns — the outbox says a write goes out, and the
  PATCH or comment POST has not been sent;
* ``answered``: at the start of ``Hub.settle_edits`` when it settles the outcome of a write —
  Defender has answered the PATCH or POST, and the hub has not recorded it;
  ``answered-patch`` and ``answered-comment`` count only PATCHes, or only comment POSTs;
* ``none``: never (a clean run, which also fills the workspace tables once).

Just before dying it appends one JSON line to JOURNAL (what was written, for the test's
report). Exit codes: killed by SIGKILL when the point was reached; 3 when CYCLES ended first;
0 after a clean run.

    python twoway_crasher.py --serve LOG

is the same, forked from one process that imported xdrsync once (an import costs a second):
each line read on stdin is a JSON list of the arguments above; the process forks, the child
runs them with its output appended to LOG, and the exit code (-9 for SIGKILL) is written back
as one line on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xdrsync.config import load_config
from xdrsync.hub import Hub
from xdrsync.hub.records import Settlement, Written
from xdrsync.sync.engine import sync_tenant
from xdrsync.workspace import Workspace, inbound_settings

#: The decisions the pusher settles right after Defender answered one of its writes.
AFTER_A_WRITE = {
    "answered": frozenset({"pushed", "comment_posted", "not_applied"}),
    "answered-patch": frozenset({"pushed", "not_applied"}),
    "answered-comment": frozenset({"comment_posted"}),
}


def _die(journal: Path, entry: dict[str, Any]) -> None:
    with journal.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str, nth: int, journal: Path) -> None:
    calls = 0
    if point == "sent":
        real_mark_sent = Hub.mark_sent

        def mark_sent(self: Hub, ids: Sequence[int]) -> None:
            nonlocal calls
            real_mark_sent(self, ids)
            calls += 1
            if calls == nth:
                _die(journal, {"point": point, "call": calls, "ids": list(ids)})

        Hub.mark_sent = mark_sent  # type: ignore[method-assign]
    elif point in AFTER_A_WRITE:
        real_settle = Hub.settle_edits
        counted = AFTER_A_WRITE[point]

        def settle_edits(
            self: Hub, settlements: Sequence[Settlement], written: Written | None = None
        ) -> None:
            nonlocal calls
            after_write = [s for s in settlements if s.decision in counted]
            if after_write:
                calls += 1
                if calls == nth:
                    _die(
                        journal,
                        {
                            "point": point,
                            "call": calls,
                            "ids": [s.row.id for s in after_write],
                            "fields": sorted({s.row.field for s in after_write}),
                        },
                    )
            real_settle(self, settlements, written)

        Hub.settle_edits = settle_edits  # type: ignore[method-assign]
    elif point != "none":
        raise SystemExit(f"unknown crash point {point!r}")


def main(argv: Sequence[str]) -> int:
    config_file, point, nth, cycles, journal = argv
    config = load_config(Path(config_file))
    _arm(point, int(nth), Path(journal))
    settings = inbound_settings(config)
    with Workspace.open(config) as workspace:
        pusher = workspace.pusher()
        for _ in range(int(cycles)):
            for source in workspace.sources():
                sync_tenant(workspace.hub, source, settings)
            pusher.push_due()
        if point == "none":
            workspace.fanout().publish()
            return 0
    return 3


def serve(log: Path) -> int:
    """Fork one child per request line; answer each with the child's exit code."""
    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: never returns into this loop
            code = 1
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                code = main(argv)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(Path(sys.argv[2])))
    sys.exit(main(sys.argv[1:]))
