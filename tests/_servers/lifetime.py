"""Server processes a test starts end with the test process, even when it is killed.

The fixtures stop their servers by process id; if the test process itself
dies first (a segfault, pytest-timeout's last resort, SIGKILL), the kernel
sends the server SIGTERM through PR_SET_PDEATHSIG, so nothing is left running.
"""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for subprocess.Popen (Linux)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
