"""shared/memory.py: the fixed mmap threshold is applied through glibc's own mallopt, and skipped where it cannot be."""

from __future__ import annotations

import ctypes
import platform
from types import SimpleNamespace

import pytest

from shared import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_threshold_is_applied_through_glibc() -> None:
    assert memory.fix_mmap_threshold(131072)


def test_a_c_library_without_mallopt_is_skipped_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_: object, **__: object) -> None:
        raise OSError("no such library")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert not memory.fix_mmap_threshold(131072)


class _Mallopt:
    """Stands in for the C function: records its call, answers ``result``."""

    def __init__(self, result: int) -> None:
        self.result = result
        self.calls: list[tuple[int, int]] = []
        self.argtypes: object = None
        self.restype: object = None

    def __call__(self, option: int, value: int) -> int:
        self.calls.append((option, value))
        return self.result


def test_a_refused_threshold_is_logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    mallopt = _Mallopt(result=0)
    monkeypatch.setattr(ctypes, "CDLL", lambda *_, **__: SimpleNamespace(mallopt=mallopt))
    assert not memory.fix_mmap_threshold(65536)
    assert mallopt.calls == [(memory.M_MMAP_THRESHOLD, 65536)]
    assert "refused" in caplog.text
