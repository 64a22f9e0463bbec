"""The process's memory allocator: large buffers go back to the system when freed.

glibc serves an allocation above its mmap threshold (128 KiB at start) with a mapping of its own and unmaps it on
free, but by default it *raises* the threshold each time such a mapping is freed, up to 32 MiB: after the first
multi-megabyte buffers are dropped (a Dataverse page of 5000 records, a bulk import file, the arrays of a bulk
group), later ones come from the heap arenas, which keep what was freed in them and fragment as live-path objects
land between. A Quick Sync builds and drops such buffers for every group, so the peak crept up group after group.
A fixed threshold (glibc's ``MALLOC_MMAP_THRESHOLD_``, which also switches the raising off) keeps them mapped and
returned. Measured with ``python -m bench.quicksync --persons 100000,1000000 --alone-seconds 0`` (README,
"Benchmarks"; 2026-12-03, 2-core x86_64): peak RSS at 100,000 vs 1,000,000 persons was 110 MB vs 127 MB (1.16x)
and 109 MB vs 138 MB (1.27x) with glibc's default, and 106 MB vs 116 MB and 108 MB vs 117 MB (1.09x) with 131072.

glibc reads ``MALLOC_MMAP_THRESHOLD_`` when a process starts; in Azure it is an app setting (infra), so the
Functions host starts the Python worker with it. :func:`fix_mmap_threshold` applies the same setting from inside
the process (``mallopt(M_MMAP_THRESHOLD)``) for processes started without it (``python -m local``, the
benchmarks, a Functions host run from ``local.settings.json``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def fix_mmap_threshold(threshold: int) -> bool:
    """Allocations of ``threshold`` bytes and more are mapped, and unmapped when freed, from now on, and the
    threshold no longer rises. False where the C library is not glibc (musl, macOS) or refused the value."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("no glibc mallopt here: MALLOC_MMAP_THRESHOLD_ not applied")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = bool(mallopt(M_MMAP_THRESHOLD, threshold))
    if not applied:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) refused: glibc's rising threshold stays", threshold)
    return applied
