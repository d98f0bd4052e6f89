"""Standard five-field cron expressions, turned into APScheduler 3 triggers.

Profiles say when they want their digest in the crontab syntax people already know
(``0 7 * * mon-fri``). APScheduler 3 reads a similar syntax with different meanings:
its day-of-week 0 is Monday (cron's is Sunday), ``*/2`` in its day-of-week counts from Monday,
and it ANDs day-of-month with day-of-week where cron ORs them. So we never hand the user's
text to APScheduler. We parse it here with cron's meaning into explicit sets of values, and
build the trigger from those sets, with days of the week given by name.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun",
                "jul", "aug", "sep", "oct", "nov", "dec")  # fmt: skip
#: Cron's day numbers: 0 and 7 are Sunday.
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

#: The shorthands most crons accept (``@reboot`` has no meaning for a digest).
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class _FieldKind:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: Value of the first name (months are named from 1, days from 0).
    names_from: int = 0


_FIELDS = (
    _FieldKind("minute", 0, 59),
    _FieldKind("hour", 0, 23),
    _FieldKind("day of month", 1, 31),
    _FieldKind("month", 1, 12, _MONTH_NAMES, 1),
    _FieldKind("day of week", 0, 7, _DAY_NAMES, 0),
)

_TERM = re.compile(r"(?P<range>\*|[^-/]+(?:-[^-/]+)?)(?:/(?P<step>[^/]+))?")


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed cron expression: the values each field allows, with cron's meaning.

    Days of the week are 0-6 with 0 = Sunday (a 7 in the text is folded into 0).
    """

    #: The expression as written (aliases such as ``@daily`` kept as written).
    expr: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    #: Whether day of month / day of week were written starting with ``*``. When neither
    #: was, cron runs on days matching EITHER field; otherwise on days matching both
    #: (``man 5 crontab``; ``*/2`` counts as starting with ``*``, as in Vixie cron and cronie).
    days_star: bool
    weekdays_star: bool

    def to_trigger(self, timezone: str | dt.tzinfo) -> BaseTrigger:
        """The APScheduler trigger that fires when this expression says, in `timezone`."""
        tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        common = {
            "minute": _join(self.minutes, 0, 59),
            "hour": _join(self.hours, 0, 23),
            "month": _join(self.months, 1, 12),
            "timezone": tz,
        }
        days, weekdays = _join(self.days, 1, 31), _weekday_names(self.weekdays)
        if self.days_star or self.weekdays_star:
            return CronTrigger(day=days, day_of_week=weekdays, **common)
        return OrTrigger(
            [CronTrigger(day=days, **common), CronTrigger(day_of_week=weekdays, **common)]
        )


def parse_cron(expr: str) -> CronSpec:
    """Parse a five-field cron expression (minute hour day-of-month month day-of-week).

    Accepts ``*``, lists (``1,15``), ranges (``1-5``), steps (``*/15``, ``0-30/10``),
    month and day names (``jan``, ``mon-fri``), 0 or 7 for Sunday, and the ``@daily``-style
    shorthands. Raises ValueError saying which field is wrong and what was expected.
    """
    text = expr.strip()
    fields = ALIASES.get(text.lower(), text).split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expr!r} has {len(fields)} field(s); expected 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 7 * * mon-fri')"
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(field, kind) for field, kind in zip(fields, _FIELDS, strict=True)
    )
    days_star, weekdays_star = fields[2].startswith("*"), fields[4].startswith("*")
    if (days_star or weekdays_star) and not _day_exists(days, months):
        raise ValueError(f"cron expression {expr!r} never fires: no such day in those months")
    return CronSpec(
        expr=expr,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(d % 7 for d in weekdays),
        days_star=days_star,
        weekdays_star=weekdays_star,
    )


def to_trigger(expr: str, timezone: str = "UTC") -> BaseTrigger:
    """The APScheduler 3 trigger for a standard cron expression in an IANA time zone.

    A `CronTrigger`, except when both day-of-month and day-of-week are restricted: cron then
    fires on days matching either, which takes an `OrTrigger` of two cron triggers.
    """
    return parse_cron(expr).to_trigger(timezone)


def describe_next(expr: str, timezone: str, after: dt.datetime, n: int = 5) -> list[dt.datetime]:
    """The next `n` times `expr` fires strictly after `after` (naive means in `timezone`)."""
    trigger = to_trigger(expr, timezone)
    if after.tzinfo is None:
        after = after.replace(tzinfo=ZoneInfo(timezone))
    times: list[dt.datetime] = []
    previous = after
    while len(times) < n:
        # Passing the previous time as both arguments asks for the first fire time after it.
        nxt: dt.datetime | None = trigger.get_next_fire_time(previous, previous)
        if nxt is None:
            break
        times.append(nxt)
        previous = nxt
    return times


def _parse_field(text: str, kind: _FieldKind) -> frozenset[int]:
    values: set[int] = set()
    for term in text.split(","):
        match = _TERM.fullmatch(term)
        if not term or not match:
            raise ValueError(f"{kind.name}: {term!r} is not a value, range or step")
        if match["range"] == "*":
            low, high = kind.low, kind.high
        elif "-" in match["range"]:
            first, last = match["range"].split("-")
            low, high = _value(first, kind), _value(last, kind)
            if kind.names is _DAY_NAMES and high == 0:
                high = 7  # 'fri-sun' ends on Sunday, cron's day 7
            if low > high:
                raise ValueError(
                    f"{kind.name}: range {match['range']!r} runs backwards "
                    "(write it as two ranges, e.g. 'fri-sat,sun')"
                )
        else:
            low = high = _value(match["range"], kind)
            if match["step"] is not None:
                raise ValueError(
                    f"{kind.name}: a step needs a range or '*' (e.g. '*/{match['step']}' "
                    f"or '{match['range']}-{kind.high}/{match['step']}')"
                )
        step = 1
        if match["step"] is not None:
            if not match["step"].isdigit() or int(match["step"]) == 0:
                raise ValueError(f"{kind.name}: step {match['step']!r} must be a positive number")
            step = int(match["step"])
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _value(token: str, kind: _FieldKind) -> int:
    word = token.lower()
    if word in kind.names:
        return kind.names.index(word) + kind.names_from
    if not token.isdigit():
        expected = f"a number {kind.low}-{kind.high}"
        if kind.names:
            expected += f" or a name ({', '.join(kind.names[:3])}, ...)"
        raise ValueError(f"{kind.name}: {token!r} is not {expected}")
    value = int(token)
    if not kind.low <= value <= kind.high:
        raise ValueError(f"{kind.name}: {value} is out of range {kind.low}-{kind.high}")
    return value


def _day_exists(days: frozenset[int], months: frozenset[int]) -> bool:
    # February counts as 29 days: the 29th fires in leap years, as in cron.
    return any(min(days) <= (29 if m == 2 else calendar.monthrange(2001, m)[1]) for m in months)


def _join(values: frozenset[int], low: int, high: int) -> str:
    if len(values) == high - low + 1:
        return "*"
    return ",".join(str(v) for v in sorted(values))


def _weekday_names(days: frozenset[int]) -> str:
    # Names, never numbers: APScheduler 3 numbers days from Monday.
    if len(days) == 7:
        return "*"
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def check_timezone(value: str) -> str:
    """`value` if it names an IANA time zone; else ValueError with the closest name."""
    import difflib
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: zoneinfo opens the name as a file, and "America" is a folder.
        shown = value if len(value) <= 60 else value[:57] + "..."
        close = difflib.get_close_matches(value, zoneinfo.available_timezones(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{shown!r} is not an IANA time zone like Europe/Berlin{hint}") from None
    return value
