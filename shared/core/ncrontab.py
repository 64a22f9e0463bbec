"""NCRONTAB schedules (``{second} {minute} {hour} {day} {month} {day-of-week}``), as timer triggers use them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = ("second", "minute", "hour", "day", "month", "day-of-week")
_MONTHS = {
    m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


class ScheduleError(ValueError):
    pass


def _values(text: str, index: int) -> frozenset[int]:
    low, high = _RANGES[index]
    names = _MONTHS if index == 4 else _DAYS if index == 5 else {}
    out: set[int] = set()
    for item in text.split(","):
        step = 1
        part = item
        if "/" in item:
            part, step_text = item.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{_NAMES[index]}: bad step '{step_text}'")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _number(a, names, index), _number(b, names, index)
        else:
            start = _number(part, names, index)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise ScheduleError(f"{_NAMES[index]}: '{text}' is outside {low}-{high}")
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _number(text: str, names: dict[str, int], index: int) -> int:
    key = text.strip().lower()
    if key in names:
        return names[key]
    if not key.isdigit():
        raise ScheduleError(f"{_NAMES[index]}: '{text}' is not a number")
    return int(key)


@dataclass(frozen=True, slots=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    text: str

    @classmethod
    def parse(cls, text: str) -> Schedule:
        fields = text.split()
        if len(fields) != 6:
            raise ScheduleError(f"'{text}': an NCRONTAB schedule has 6 fields (second minute hour day month weekday)")
        sec, minute, hour, day, month, weekday = (_values(f, i) for i, f in enumerate(fields))
        return cls(sec, minute, hour, day, month, weekday, text)

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment`` (whole seconds)."""
        t = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = moment + timedelta(days=366 * 5)
        while t <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            weekday = (t.weekday() + 1) % 7  # NCRONTAB: Sunday = 0
            if t.day not in self.days or weekday not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise ScheduleError(f"'{self.text}' never fires")
