"""Text for people: tables with aligned columns, times without microseconds, durations in words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

DIRECTIONS = {"dynamics_to_marketo": "D365 -> Marketo", "marketo_to_dynamics": "Marketo -> D365", "both": "both ways"}


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, widest: int = 60) -> list[str]:
    """Columns padded to their widest cell (cells longer than ``widest`` are cut with an ellipsis)."""
    cells = [[cell(v, widest) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return lines


def cell(value: Any, widest: int = 60) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = " ".join(str(value).split())
    return text if len(text) <= widest else text[: widest - 1] + "…"


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def when(text: Any) -> str:
    """An ISO instant as ``2026-12-01 12:00:05 UTC``; anything else as it is."""
    moment = parse_time(text)
    if moment is None:
        return cell(text)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: Any) -> str:
    """``95`` -> ``1m 35s``; ``None`` -> ``-``."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def age(text: Any, now: datetime) -> str:
    """How long ago an ISO instant was: ``3m 20s ago``."""
    moment = parse_time(text)
    if moment is None:
        return "-"
    return duration((now - moment).total_seconds()) + " ago"


def direction(value: Any) -> str:
    return DIRECTIONS.get(str(value), cell(value))
