from __future__ import annotations

import threading

import pytest

from shared.marketo.limiter import RateLimiter
from tests.marketo_harness import FakeClock


def limiter(clock: FakeClock, **options: float) -> RateLimiter:
    return RateLimiter(clock=clock.time, sleep=clock.sleep, **options)  # type: ignore[arg-type]


def test_headroom_sets_the_ceiling() -> None:
    clock = FakeClock()
    assert limiter(clock).ceiling == 90
    assert limiter(clock, headroom=0.0).ceiling == 100
    assert limiter(clock, calls_per_window=50, headroom=0.2).ceiling == 40
    with pytest.raises(ValueError, match="limiter"):
        limiter(clock, headroom=1.0)


def test_call_past_the_ceiling_waits_for_the_window_to_slide() -> None:
    clock = FakeClock()
    start = clock.time()
    rl = limiter(clock, calls_per_window=10, headroom=0.0)
    for _ in range(10):
        with rl.slot():
            clock.advance(0.1)  # each call takes 0.1 s
    assert clock.time() - start == pytest.approx(1.0)
    with rl.slot():
        pass
    # The first call finished at +0.1 s: it leaves the window 20 s after that.
    assert clock.time() - start == pytest.approx(20.1, abs=0.01)
    assert rl.waits >= 1


def test_a_call_counts_from_its_start_until_a_window_after_it_finished() -> None:
    clock = FakeClock()
    rl = limiter(clock, calls_per_window=1, headroom=0.0)
    start = clock.time()
    with rl.slot():
        clock.advance(5.0)  # a slow call: the server may have stamped it anywhere in these 5 s
    with rl.slot():
        pass
    assert clock.time() - start == pytest.approx(25.0, abs=0.01)


def test_concurrency_is_capped_across_threads() -> None:
    clock = FakeClock()
    rl = limiter(clock, max_concurrency=3, headroom=0.0)
    inside = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()
    entered = threading.Semaphore(0)

    def work() -> None:
        nonlocal inside, peak
        with rl.slot():
            with lock:
                inside += 1
                peak = max(peak, inside)
            entered.release()
            release.wait(timeout=60)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(3):  # woken by the threads themselves: no polling budget for a loaded machine to miss
        assert entered.acquire(timeout=60)
    assert rl.stats().in_flight == 3
    release.set()
    for thread in threads:
        thread.join()
    assert peak == 3
    assert rl.stats().in_flight == 0


def test_many_threads_never_put_more_than_the_ceiling_in_any_window() -> None:
    clock = FakeClock()
    rl = limiter(clock, calls_per_window=20, headroom=0.0, max_concurrency=4)
    starts: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(15):
            with rl.slot(), lock:
                starts.append(clock.time())

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    assert len(starts) == 90
    for index, stamp in enumerate(starts):
        in_window = sum(1 for other in starts[index:] if other < stamp + 20.0)
        assert in_window <= 20
