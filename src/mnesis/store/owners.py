"""Which process holds a row, and whether that process is still there.

A compaction lease (SQLite) and a reply draft are rows a process writes and
is expected to remove; a process killed with SIGKILL removes nothing. Such a
row records its owner: host, pid and the process's start time (the pid alone
may be reused by a later process), plus a heartbeat. On the owner's host the
question "is it alive?" has an exact answer (``kill(pid, 0)`` and the start
time); from another host only the heartbeat can tell, so a row whose heartbeat
is older than the caller's limit counts as abandoned.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcessOwner:
    """A process, as a row records it: host name, pid and start time ("" if unknown)."""

    host: str
    pid: int
    started: str


@functools.cache
def _host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str:
    """When ``pid`` started, as the kernel counts it ("" when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # The command name (field 2) may hold spaces; the fields after its ")" do not.
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return fields[19] if len(fields) > 19 else ""  # field 22: starttime


def this_process() -> ProcessOwner:
    """The calling process (looked up each call: a forked child is another process)."""
    pid = os.getpid()
    return ProcessOwner(_host(), pid, process_start(pid))


def is_alive(owner: ProcessOwner) -> bool | None:
    """Whether ``owner`` still runs: True or False on its own host, None elsewhere."""
    if owner.host != _host():
        return None
    if owner.pid <= 0:
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except OSError:
        return None
    if owner.started:
        started = process_start(owner.pid)
        if started and started != owner.started:
            return False  # the pid now belongs to a later process
    return True


def is_abandoned(owner: ProcessOwner, heartbeat_at: float, now: float, stale_after: float) -> bool:
    """Whether a row's owner is gone: dead on this host, or silent too long elsewhere."""
    alive = is_alive(owner)
    if alive is not None:
        return not alive
    return now - heartbeat_at > stale_after
