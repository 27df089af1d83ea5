"""glibc's malloc and big messages: few arenas, and memory handed back after one.

glibc gives each thread that allocates its own arena (up to 8 per CPU) and
keeps freed memory in them; a filter whose pool threads parsed a few 25 MB
messages stayed 45-60 MiB above its idle size for good. `limit_arenas` caps
the arenas (like MALLOC_ARENA_MAX, set from inside so every way of starting
the daemon gets it), and `Trimmer` calls `malloc_trim(0)` shortly after a big
message, when its buffers have been freed. Elsewhere than glibc both do nothing.
"""

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # malloc.h
TRIM_DELAY = 1.0  # seconds after a big message: its buffers are gone by then


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _libc()


def limit_arenas(count: int) -> bool:
    """At most `count` malloc arenas in this process; True if glibc took it."""
    return _LIBC is not None and _LIBC.mallopt(M_ARENA_MAX, count) == 1


def trim() -> bool:
    """Hand freed heap memory back to the system; True if some was."""
    return _LIBC is not None and _LIBC.malloc_trim(0) == 1


class Trimmer:
    """`soon()` after a big message: one `trim()` `TRIM_DELAY` seconds later,
    however many big messages ask for it meanwhile."""

    def __init__(self, clock, trim_fn=trim):
        self.clock = clock
        self.trim_fn = trim_fn
        self._pending = None

    def soon(self) -> None:
        if self._pending is None or not self._pending.active():
            self._pending = self.clock.callLater(TRIM_DELAY, self.trim_fn)
