"""Triggers: standard cron in a profile's time zone, each wall-clock time at most once."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from ..cron import to_trigger

logger = logging.getLogger("digest.schedule")

UTC = ZoneInfo("UTC")

# -- triggers ----------------------------------------------------------------------------------


class WallClockTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler has no type hints
    """Fire as `inner` does, but at most once per wall-clock time of `timezone`.

    When clocks go back an hour, times in that hour happen twice; APScheduler 3 fires at both
    (``30 2 * * *`` twice on the last Sunday of October in Berlin). Like cron, we keep the
    first. A time skipped when clocks go forward fires once, an hour later by the clock.
    """

    def __init__(self, inner: BaseTrigger, timezone: str) -> None:
        self.inner = inner
        self.timezone = timezone

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        zone = ZoneInfo(self.timezone)
        fire: dt.datetime | None = self.inner.get_next_fire_time(previous_fire_time, now)
        while fire is not None and _repeated(local_time(fire, zone)):
            fire = self.inner.get_next_fire_time(fire, fire)
        return fire

    def __str__(self) -> str:
        return f"{self.inner} (once per wall-clock time in {self.timezone})"

    def __repr__(self) -> str:
        return f"<WallClockTrigger {self.inner!r} in {self.timezone}>"


def _repeated(local: dt.datetime) -> bool:
    """Whether `local` is the second occurrence of a wall-clock time (clocks went back)."""
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()


def local_time(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """`moment` on the wall clock of `zone`. Through UTC: `astimezone` to the zone a datetime
    already has returns it as it is, even a wall time that does not exist (02:30 when clocks
    jump from 02:00 to 03:00)."""
    return moment.astimezone(UTC).astimezone(zone)


def schedule_trigger(cron: str, timezone: str) -> BaseTrigger:
    """The trigger of a job: standard cron in `timezone`, each wall-clock time at most once."""
    return WallClockTrigger(to_trigger(cron, timezone), timezone)


def latest_fire_time(trigger: BaseTrigger, now: dt.datetime) -> dt.datetime | None:
    """The last time `trigger` fired at or before `now` (None if not within four years)."""
    for back in (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=8),
                 dt.timedelta(days=32), dt.timedelta(days=367), dt.timedelta(days=1462)):
        fire: dt.datetime | None = trigger.get_next_fire_time(None, now - back)
        if fire is None or fire > now:
            continue
        while True:
            following: dt.datetime | None = trigger.get_next_fire_time(fire, fire)
            if following is None or following > now:
                return fire
            fire = following
    return None
