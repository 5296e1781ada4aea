"""The benchmark's CPU floor is counted from /proc: real children that burn known CPU."""

import subprocess
import sys

from benchmarks.cpu_floor import CpuMeter

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end:\n    pass\n"


def burn(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BURN.format(seconds=seconds)])


def test_two_children_that_burn_known_cpu_are_counted_and_the_floor_is_the_longest_thread_on_many_cores():
    meter = CpuMeter(interval=0.02)

    with meter.step() as reading:
        children = [burn(0.6), burn(0.6)]
        for child in children:
            child.wait()

    use = reading.use
    # each burned 0.6 s, plus an interpreter's start (well under 0.3 s); nothing else of ours ran
    assert 1.2 <= use.ours < 1.8 and use.postgres == use.s3_server == 0
    # one thread each: the longest serial part is one child's burn, not the two together
    assert 0.55 <= use.longest_thread < 0.9 < use.total
    assert use.floor_on(1) == use.total and use.floor_on(64) == use.longest_thread
    assert use.floor_seconds == max(use.total / meter.cores, use.longest_thread)
