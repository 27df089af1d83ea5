"""CPU time and memory of a running daemon, read from Linux ``/proc``.

``/proc/PID/stat`` fields 14 and 15 (utime, stime) count clock ticks of all
the process's threads, so work pushed to a thread pool (password hashing) is
included; ``/proc/PID/status`` gives VmRSS (now) and VmHWM (peak) in kB;
``/proc/PID/smaps_rollup`` the proportional set size (PSS).
See proc(5).
"""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    cpu_seconds: float
    rss_kib: int
    hwm_kib: int


def own_cpu_seconds():
    """This process's own user + system CPU time (a load tool's cost)."""
    times = os.times()
    return times.user + times.system


def cpu_seconds(pid):
    """utime + stime of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        # The command name (field 2) may hold spaces and ")"; split after the last one.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid):
    """``{"VmRSS": kib, "VmHWM": kib}`` of ``pid``."""
    found = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return found


def pss_kib(pid):
    """Proportional set size: RSS with each shared page divided among the processes
    that map it (/proc/PID/smaps_rollup), so the sum over several daemons is what
    they really take together. 0 when the kernel does not provide it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sample(pid):
    memory = memory_kib(pid)
    return Sample(cpu_seconds(pid), memory.get("VmRSS", 0), memory.get("VmHWM", 0))


def tick_seconds():
    """The resolution of ``cpu_seconds`` (usually 10 ms)."""
    return 1 / os.sysconf("SC_CLK_TCK")
