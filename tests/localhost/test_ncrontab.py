from __future__ import annotations

from datetime import datetime

import pytest

from local.ncrontab import Schedule, ScheduleError


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/30 * * * * *", datetime(2026, 1, 1, 0, 0, 10), datetime(2026, 1, 1, 0, 0, 30)),
        ("*/30 * * * * *", datetime(2026, 1, 1, 0, 0, 30), datetime(2026, 1, 1, 0, 1, 0)),
        ("0 */5 * * * *", datetime(2026, 1, 1, 0, 3, 10), datetime(2026, 1, 1, 0, 5, 0)),
        ("15 */1 * * * *", datetime(2026, 1, 1, 0, 3, 20), datetime(2026, 1, 1, 0, 4, 15)),
        ("0 30 9 * * 1-5", datetime(2026, 11, 28, 10, 0, 0), datetime(2026, 11, 30, 9, 30, 0)),  # Sat -> Mon
        ("0 0 0 1 Jan *", datetime(2026, 3, 1), datetime(2027, 1, 1)),
        ("0 0 12 * * sun", datetime(2026, 11, 25), datetime(2026, 11, 29, 12)),
        ("0 0,30 8-9 * * *", datetime(2026, 1, 1, 8, 45), datetime(2026, 1, 1, 9, 0)),
    ],
)
def test_next_fire_time(schedule: str, after: datetime, expected: datetime) -> None:
    assert Schedule.parse(schedule).next_after(after) == expected


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("* * * * *", "6 fields"),
        ("61 * * * * *", "outside 0-59"),
        ("*/0 * * * * *", "bad step"),
        ("0 0 0 31 2 *", "never fires"),
        ("x * * * * *", "not a number"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(schedule: str, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem):
        Schedule.parse(schedule).next_after(datetime(2026, 1, 1))
