"""How long MAX's CPU worker threads busy-wait for work before they sleep, set before the
process makes its MAX CPU device (the only moment it can be set).

MAX reads this setting in two places that must agree: the async runtime reads the variable
MODULAR_THREAD_BUSY_WAIT_US when `driver.CPU()` makes the device, and libmax reads its
config key runtime.thread_busy_wait_time_us (variable MODULAR_RUNTIME_THREAD_BUSY_WAIT_TIME_US)
when an InferenceSession asks for the device. When they differ, the process aborts
("getOrCreateCPUDevice called requesting different options"), so both are set to one value.

Why not MAX's default: with it, after a transcription returned, both worker threads of a
2-core machine kept spinning (clock_gettime in a loop) for seconds, longer after longer jobs
(about 6 s after an int8 transcription of a 292 s clip), and between decoder steps they
competed with the Python thread that picks tokens. With 10 us, the same transcriptions took
the same or less wall time with 15-35 % less CPU, and the threads sleep once a job ends
(BUILD.md, Traps, has the table). 0 (sleep at once) made a 292 s clip 1.6x
slower: every parallel kernel then wakes its threads through the kernel.
"""

from __future__ import annotations

import os
import sys

BUSY_WAIT_US = "10"
_RUNTIME_VARIABLE = "MODULAR_THREAD_BUSY_WAIT_US"
_CONFIG_VARIABLE = "MODULAR_RUNTIME_THREAD_BUSY_WAIT_TIME_US"


def set_thread_busy_wait() -> None:
    """Sets both variables to the caller's value when one is set (so they agree), else to
    BUSY_WAIT_US. Does nothing once MAX is imported: a device may exist already, and one
    asked for with other options aborts the process."""
    if "max._core" in sys.modules:
        return
    value = os.environ.get(_RUNTIME_VARIABLE) or os.environ.get(_CONFIG_VARIABLE) or BUSY_WAIT_US
    os.environ.setdefault(_RUNTIME_VARIABLE, value)
    os.environ.setdefault(_CONFIG_VARIABLE, value)
