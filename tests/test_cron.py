"""Cron expressions mean what they mean in crontab, whatever APScheduler numbers days as."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.cron import describe_next, parse_cron, to_trigger

UTC = ZoneInfo("UTC")
#: A Wednesday.
NOW = dt.datetime(2026, 1, 7, 12, 0, tzinfo=UTC)


def weekdays(expr: str, n: int = 14) -> list[str]:
    return [t.strftime("%a") for t in describe_next(expr, "UTC", NOW, n)]


@pytest.mark.parametrize("expr", ["0 7 * * 0", "0 7 * * 7", "0 7 * * sun", "0 7 * * SUN"])
def test_0_and_7_are_sunday(expr: str) -> None:
    trigger = to_trigger(expr, "UTC")
    assert isinstance(trigger, CronTrigger)
    assert trigger.get_next_fire_time(None, NOW) == dt.datetime(2026, 1, 11, 7, 0, tzinfo=UTC)


def test_apscheduler_from_crontab_would_have_fired_on_monday() -> None:
    # The pitfall this module exists for: APScheduler 3 counts days from Monday.
    theirs = CronTrigger.from_crontab("0 7 * * 0", timezone=UTC)
    assert theirs.get_next_fire_time(None, NOW).strftime("%a") == "Mon"
    assert to_trigger("0 7 * * 0").get_next_fire_time(None, NOW).strftime("%a") == "Sun"


@pytest.mark.parametrize("expr", ["0 7 * * 1-5", "0 7 * * mon-fri", "0 7 * * 1,2,3,4,5"])
def test_1_to_5_is_monday_to_friday(expr: str) -> None:
    week = ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert weekdays(expr, 10) == week[3:] + week + week[:3]


def test_ranges_ending_on_sunday() -> None:
    assert set(weekdays("0 7 * * 5-7")) == {"Fri", "Sat", "Sun"}
    assert set(weekdays("0 7 * * fri-sun")) == {"Fri", "Sat", "Sun"}


def test_weekday_steps_count_from_sunday() -> None:
    assert set(weekdays("0 7 * * */2")) == {"Sun", "Tue", "Thu", "Sat"}


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    # crontab(5): "the 1st and 15th of each month, as well as on every Friday".
    days = [t.date() for t in describe_next("0 0 1,15 * fri", "UTC", NOW, 6)]
    assert days == [dt.date(2026, 1, d) for d in (9, 15, 16, 23, 30)] + [dt.date(2026, 2, 1)]


def test_steps_ranges_lists_and_month_names() -> None:
    times = describe_next("*/20 6-7 1 jan,jul *", "UTC", dt.datetime(2026, 1, 1, tzinfo=UTC), 8)
    assert [t.strftime("%m-%d %H:%M") for t in times] == [
        "01-01 06:00", "01-01 06:20", "01-01 06:40", "01-01 07:00", "01-01 07:20",
        "01-01 07:40", "07-01 06:00", "07-01 06:20",
    ]  # fmt: skip


def test_timezone_is_applied_across_daylight_saving() -> None:
    winter = describe_next("0 7 * * *", "Europe/Berlin", NOW, 1)[0]
    summer = describe_next("0 7 * * *", "Europe/Berlin", dt.datetime(2026, 7, 1, tzinfo=UTC), 1)
    assert (winter.hour, winter.utcoffset()) == (7, dt.timedelta(hours=1))
    assert winter.astimezone(UTC).hour == 6
    assert summer[0].astimezone(UTC).hour == 5


def test_describe_next_is_strictly_after() -> None:
    at_fire_time = dt.datetime(2026, 1, 7, 7, 0, tzinfo=UTC)
    assert describe_next("0 7 * * *", "UTC", at_fire_time, 1) == [at_fire_time + dt.timedelta(1)]


def test_naive_after_is_read_in_the_timezone() -> None:
    naive = dt.datetime(2026, 1, 7, 6, 59)
    assert describe_next("0 7 * * *", "Asia/Tokyo", naive, 1)[0] == dt.datetime(
        2026, 1, 7, 7, 0, tzinfo=ZoneInfo("Asia/Tokyo")
    )


def test_aliases() -> None:
    assert weekdays("@weekly", 2) == ["Sun", "Sun"]
    assert parse_cron("@daily").minutes == frozenset({0})


def test_february_29th_is_allowed() -> None:
    assert describe_next("0 0 29 2 *", "UTC", NOW, 1)[0].date() == dt.date(2028, 2, 29)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 7 * *", "has 4 field(s); expected 5"),
        ("0 7 * * * *", "has 6 field(s)"),
        ("", "has 0 field(s)"),
        ("60 7 * * *", "minute: 60 is out of range 0-59"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 7 0 * *", "day of month: 0 is out of range 1-31"),
        ("0 7 * 13 *", "month: 13 is out of range 1-12"),
        ("0 7 * * 8", "day of week: 8 is out of range 0-7"),
        ("0 7 * * mo", "day of week: 'mo' is not a number 0-7 or a name"),
        ("0 7 * foo *", "month: 'foo' is not a number 1-12 or a name"),
        ("0 7 * * 5-1", "runs backwards"),
        ("*/0 7 * * *", "step '0' must be a positive number"),
        ("5/15 7 * * *", "a step needs a range or '*'"),
        ("0 7 1,,2 * *", "'' is not a value, range or step"),
        ("0 7 -1 * *", "is not a value, range or step"),
        ("0 7 30 2 *", "never fires"),
        ("@reboot", "has 1 field(s)"),
    ],
)
def test_invalid_expressions_are_rejected(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cron(expr)


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    one = st.one_of(
        number.map(str),
        st.tuples(number, number).map(lambda t: f"{min(t)}-{max(t)}"),
        st.integers(1, 5).map(lambda s: f"*/{s}"),
    )
    return st.one_of(st.just("*"), st.lists(one, min_size=1, max_size=3).map(",".join))


@settings(max_examples=60, deadline=None)
@given(
    minute=_field(0, 59),
    hour=_field(0, 23),
    day=_field(1, 28),
    month=_field(1, 12),
    weekday=_field(0, 7),
)
def test_every_fire_time_matches_the_expression(
    minute: str, hour: str, day: str, month: str, weekday: str
) -> None:
    spec = parse_cron(f"{minute} {hour} {day} {month} {weekday}")
    times = describe_next(spec.expr, "UTC", NOW, 5)
    assert len(times) == 5 and times == sorted(set(times))
    for t in times:
        assert t.minute in spec.minutes and t.hour in spec.hours and t.month in spec.months
        day_ok, weekday_ok = t.day in spec.days, t.isoweekday() % 7 in spec.weekdays
        if spec.days_star or spec.weekdays_star:
            assert day_ok and weekday_ok
        else:
            assert day_ok or weekday_ok
