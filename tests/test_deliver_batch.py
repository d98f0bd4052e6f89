"""A run of many digests keeps its ledger work per digest small: the run says it is alive at
most once a second (not after every digest), yet still after each digest when they are slow."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from digest.deliver import Deliverer, DeliverySettings
from digest.mailer import EmlTransport
from digest.profiles import Profile, load_profiles
from digest.render import Renderer
from digest.store import Store
from digest.types import Recommendation

DAY = dt.date(2026, 7, 1)
NOW = dt.datetime(2026, 7, 1, 7, 0, tzinfo=dt.UTC)


class CountingStore(Store):
    """The real store, counting the run's heartbeats."""

    beats = 0

    def heartbeat(self, name: str, *, now: dt.datetime) -> None:
        self.beats += 1
        super().heartbeat(name, now=now)


@contextmanager
def counting(url: str) -> Iterator[CountingStore]:
    store = CountingStore.open(url)
    assert isinstance(store, CountingStore)
    with store:
        yield store


def nothing_new(due: Sequence[Profile], day: dt.date) -> Mapping[str, Sequence[Recommendation]]:
    return {p.name: [] for p in due}


def profiles(folder: Path, count: int) -> list[Profile]:
    folder.mkdir()
    for i in range(count):
        (folder / f"p{i}.yaml").write_text(
            f'version: 1\nemail: p{i}@example.org\ninterests: ["vision"]\n', encoding="utf-8")
    found = load_profiles(folder)
    assert found.ok, found.errors
    return list(found.profiles)


def run(store: Store, tmp_path: Path, wanted: list[Profile],
        clock: Callable[[], dt.datetime]) -> list[str]:
    deliverer = Deliverer(store, Renderer(), EmlTransport(tmp_path / "eml"),
                          DeliverySettings(out_dir=tmp_path / "out", sender="d@example.org",
                                           list_id="digest.example.org"), clock=clock)
    return [r.status for r in deliverer.run(wanted, DAY, nothing_new)]


def test_a_run_of_quick_digests_says_it_is_alive_once_a_second(
    store_url: str, tmp_path: Path
) -> None:
    with counting(store_url) as store:
        assert run(store, tmp_path, profiles(tmp_path / "profiles", 6),
                   lambda: NOW) == ["empty"] * 6
        assert store.beats == 1  # six digests within the same second


def test_a_run_of_slow_digests_says_it_is_alive_after_each(
    store_url: str, tmp_path: Path
) -> None:
    ticks = iter(range(1000))

    def slow() -> dt.datetime:  # each reading of the clock two seconds later
        return NOW + dt.timedelta(seconds=2 * next(ticks))

    with counting(store_url) as store:
        assert run(store, tmp_path, profiles(tmp_path / "profiles", 4), slow) == ["empty"] * 4
        assert store.beats == 4
