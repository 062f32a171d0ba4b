"""The processes a run left behind: for the Ctrl-C tests and tests/benchmarks/bench_interrupt.py."""

from __future__ import annotations

from pathlib import Path


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
