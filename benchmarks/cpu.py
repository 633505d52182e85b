"""CPU time of the processes a benchmark involves, read from ``/proc`` (Linux only).

The machine's cores are shared by the benchmark's client, its worker, Postgres and Redis: where
a configuration is slower, these say which process spends the difference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessTicks:
    """One process's parent and CPU time (user + system, in clock ticks)."""

    parent_pid: int
    command: str
    ticks: int


def process_ticks() -> dict[int, ProcessTicks]:
    """Every process of this machine that can be read, by pid."""
    processes: dict[int, ProcessTicks] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        processes[int(pid)] = ProcessTicks(
            int(fields[1]), command, int(fields[11]) + int(fields[12])
        )
    return processes


def postgres_cpu_ticks() -> dict[int, int]:
    """CPU time (user + system, in clock ticks) of each ``postgres`` process, by pid."""
    return {pid: p.ticks for pid, p in process_ticks().items() if p.command == "postgres"}


def ticks_by_role(root_pid: int) -> dict[str, int]:
    """CPU ticks of the process tree under ``root_pid`` ("worker"), of every ``postgres`` and
    every ``redis-server`` process, and of this process ("client")."""
    processes = process_ticks()
    tree = {root_pid}
    grew = True
    while grew:
        children = {pid for pid, p in processes.items() if p.parent_pid in tree} - tree
        tree |= children
        grew = bool(children)
    return {
        "worker": sum(processes[pid].ticks for pid in tree if pid in processes),
        "client": processes[os.getpid()].ticks if os.getpid() in processes else 0,
        "postgres": sum(p.ticks for p in processes.values() if p.command == "postgres"),
        "redis": sum(p.ticks for p in processes.values() if p.command == "redis-server"),
    }


def ms_per_job(before: Mapping[str, int], after: Mapping[str, int], jobs: int) -> dict[str, float]:
    """CPU milliseconds per job of each role between two :func:`ticks_by_role` readings."""
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    return {role: (after[role] - before.get(role, 0)) * tick_ms / jobs for role in after}
