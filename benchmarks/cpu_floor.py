"""CPU seconds of every process a benchmark step involves, read from ``/proc``, and the step's
CPU floor: the least wall time these cores allow for that much work.

The processes are ours (this process and every child it starts and waits for), the benchmark's
own PostgreSQL server (its postmaster and the postmaster's children: backends, parallel workers,
the checkpointer, ...) and, when there is one, the S3 server. Other people's processes on the
same machine are not counted: a server is found by its postmaster's pid, not by its name.

A process's ``/proc/<pid>/stat`` holds its own user and system time and, once it has waited
for them, its ended children's. So the CPU of a process tree over a step is the change in
(root's own + reaped children's) plus the change in each live child's, and a child that ends
during the step moves from the second term into the first without being lost.

The floor is max(CPU seconds / cores, longest serial part). The longest serial part is the
most CPU one thread used: a thread cannot be split across cores, and every PostgreSQL backend
is one thread. A sampler thread reads each thread's time every ``interval`` seconds, so a
thread's last slice before it ends is missed by at most that much.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_INTERVAL_SECONDS = 0.1  # a sample reads /proc of every process here: about 2 ms
SETTLE_SECONDS = 0.3  # lets a postmaster reap a backend that just ended before its CPU is read


def stat_fields(path: Path) -> list[str]:
    """The fields after the command name, which may itself hold spaces and parentheses."""
    return path.read_text().rsplit(")", 1)[1].split()


def own_seconds(fields: list[str]) -> float:
    """utime + stime (fields 14 and 15 of proc(5); index 11 and 12 after the name)."""
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def reaped_seconds(fields: list[str]) -> float:
    """cutime + cstime: the children it has waited for."""
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """A process's own CPU and that of the children it has waited for."""
    fields = stat_fields(Path(f"/proc/{pid}/stat"))
    return own_seconds(fields) + reaped_seconds(fields)


def children_of(parents: set[int]) -> dict[int, int]:
    """{pid: parent} of every live process whose parent is in ``parents``, their children too."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(stat_fields(entry / "stat")[1])
        except (OSError, IndexError, ValueError):  # ended between the listing and the read
            continue
        by_parent.setdefault(parent, []).append(int(entry.name))
    found, frontier = {}, list(parents)
    while frontier:
        parent = frontier.pop()
        for child in by_parent.get(parent, ()):
            if child not in found and child not in parents:
                found[child] = parent
                frontier.append(child)
    return found


def tree_cpu_seconds(root: int, skip: Iterable[int] = ()) -> float:
    """The root's own and reaped CPU plus every live descendant's, less the subtrees in ``skip``
    (the S3 server is our child but is counted on its own)."""
    skipped = set(skip)
    total = 0.0
    for pid in [root, *(pid for pid in children_of({root}) if not _under(pid, skipped, root))]:
        try:
            total += process_cpu_seconds(pid)
        except OSError:
            continue
    return total


def _under(pid: int, skipped: set[int], root: int) -> bool:
    if not skipped:
        return False
    while pid not in (0, 1, root):
        if pid in skipped:
            return True
        try:
            pid = int(stat_fields(Path(f"/proc/{pid}/stat"))[1])
        except (OSError, IndexError, ValueError):
            return False
    return False


def thread_seconds(pids: Iterable[int]) -> dict[tuple[int, int], float]:
    """{(pid, tid): CPU seconds} of every thread of the given processes."""
    readings = {}
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                readings[(pid, int(task.name))] = own_seconds(stat_fields(task / "stat"))
            except (OSError, IndexError, ValueError):
                continue
    return readings


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat), anyone's."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def postmaster_pid(dsn: str) -> int:
    """The server's postmaster: the parent of a backend of ours, found through /proc."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        backend = conn.get_backend_pid()
        return int(stat_fields(Path(f"/proc/{backend}/stat"))[1])
    finally:
        conn.close()


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds of one step, by owner, and the most one thread used."""

    wall_seconds: float
    ours: float
    postgres: float
    s3_server: float
    longest_thread: float
    cores: int
    others: float = 0.0  # CPU seconds other processes on the machine used meanwhile

    @property
    def floor_with_others(self) -> float:
        """The floor when the others' CPU is counted too: what this step could do on a shared machine."""
        return max((self.total + self.others) / self.cores, self.longest_thread)

    @property
    def total(self) -> float:
        return self.ours + self.postgres + self.s3_server

    @property
    def floor_seconds(self) -> float:
        return self.floor_on(self.cores)

    def floor_on(self, cores: int) -> float:
        """The least wall time this work could take on ``cores`` cores."""
        return max(self.total / cores, self.longest_thread)

    @property
    def busy_share(self) -> float:
        """How much of the cores' time the step used: 1.0 means the cores were the limit."""
        return self.total / (self.cores * self.wall_seconds) if self.wall_seconds else 0.0

    def describe(self) -> str:
        return (
            f"CPU s ours {self.ours:.2f} / PostgreSQL {self.postgres:.2f} / S3 {self.s3_server:.2f}, "
            f"longest thread {self.longest_thread:.2f}; floor on {self.cores} cores {self.floor_seconds:.2f} s "
            f"(others used {self.others:.2f} CPU s meanwhile)"
        )


@dataclass
class CpuMeter:
    """Counts the CPU of a step: ``with meter.step() as reading: ...`` then ``reading.use``."""

    postmaster: int | None = None
    s3_server: int | None = None
    ours: int = field(default_factory=os.getpid)
    interval: float = SAMPLE_INTERVAL_SECONDS
    cores: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))

    def step(self) -> CpuReading:
        return CpuReading(self)


class CpuReading:
    """One step's reading; the sampler runs between ``__enter__`` and ``__exit__``."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter = meter
        self.use: CpuUse | None = None
        self._stop = threading.Event()
        self._before_step: dict[tuple[int, int], float] = {}  # threads already running: their time so far
        self._last: dict[tuple[int, int], float] = {}
        self._sampler_tid = 0

    def _roots(self) -> list[int]:
        return [pid for pid in (self.meter.ours, self.meter.postmaster, self.meter.s3_server) if pid]

    def _totals(self) -> tuple[float, float, float]:
        meter = self.meter
        skip = [meter.s3_server] if meter.s3_server else []
        ours = tree_cpu_seconds(meter.ours, skip=skip)
        postgres = tree_cpu_seconds(meter.postmaster) if meter.postmaster else 0.0
        s3 = tree_cpu_seconds(meter.s3_server) if meter.s3_server else 0.0
        return ours, postgres, s3

    def _threads_now(self) -> dict[tuple[int, int], float]:
        roots = self._roots()
        return thread_seconds(roots + list(children_of(set(roots))))

    def _sample(self) -> None:
        self._last.update(self._threads_now())

    def _run(self) -> None:
        self._sampler_tid = threading.get_native_id()
        while not self._stop.wait(self.meter.interval):
            self._sample()

    def __enter__(self) -> CpuReading:
        time.sleep(SETTLE_SECONDS)
        self._before_step = self._threads_now()
        self._before = self._totals()
        self._busy_before = machine_busy_seconds()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="cpu sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._started
        busy = machine_busy_seconds() - self._busy_before
        self._stop.set()
        self._thread.join()
        time.sleep(SETTLE_SECONDS)
        self._sample()
        after = self._totals()
        sampler = self._last.get((self.meter.ours, self._sampler_tid), 0.0)
        ours, postgres, s3 = (max(b - a, 0.0) for a, b in zip(self._before, after))
        longest = max(
            (seconds - self._before_step.get(key, 0.0) for key, seconds in self._last.items() if key[1] != self._sampler_tid),
            default=0.0,
        )
        ours = max(ours - sampler, 0.0)
        others = max(busy - (ours + postgres + s3 + sampler), 0.0)
        self.use = CpuUse(wall, ours, postgres, s3, longest, self.meter.cores, others)
