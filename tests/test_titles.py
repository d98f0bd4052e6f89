"""Tolerant title matching: the same title written two ways is one paper, a near miss is not.

A paper known only by its title (a saved Hugging Face page) merges with its arXiv record when
their normalized titles are equal. Normalization ignores case, accents, LaTeX, punctuation,
spacing and hyphenation, and a few spellings of one word; anything else keeps titles apart.
Stores written before this normalization get their titles recomputed when opened.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from digest.ingest import IngestContext, Opened, ingest
from digest.store import MIGRATIONS, Store
from digest.text import normalize_title
from digest.types import ParsedItem, RawPaper

NOW = dt.datetime(2026, 6, 8, 12, 0, tzinfo=dt.UTC)

SAME = [
    ("ReDVA: Confidence Recalibration for Vision-Language Models",
     "ReDVA: Confidence Re-calibration for Vision-Language Models"),
    ("Confidence Re-\ncalibration", "Confidence Recalibration"),  # a line broken at the hyphen
    ("Self-Supervised Learning", "Self Supervised Learning"),
    ("Self-Supervised Learning", "SelfSupervised   Learning"),
    ("Vision & Language Pretraining", "Vision and Language Pre-training"),
    ("Detection w/o Labels", "Detection without Labels"),
    ("Segmentation w/ Point Prompts", "Segmentation with Point Prompts"),
    ("CNNs vs. Transformers", "CNNs versus Transformers"),
    ("CNNs vs Transformers", "CNNs Versus Transformers"),
    ("$\\alpha$-Net: Learning", "α-Net: Learning"),
    ("α-Net: Learning", "Alpha-Net: Learning"),
    ("Qwen2.5 Technical Report", "Qwen 2.5 Technical Report"),
    ("SAM 2: Segment Anything in Images and Videos", "SAM2: Segment Anything in Images & Videos"),
    ("Café: Naïve Öptimization", "Cafe: Naive Optimization"),
    ("“Quoted” Title — With Dashes…", '"Quoted" Title - With Dashes...'),
    ("A Survey.", "a survey"),
    ("Straße der Modelle", "Strasse der Modelle"),
    ("ﬁne-tuning", "fine tuning"),  # a ligature
]

APART = [
    ("GPT-4 Technical Report", "GPT-4o Technical Report"),  # a letter
    ("Llama 2: Open Foundation Models", "Llama 3: Open Foundation Models"),  # a number
    ("Qwen2.5 Technical Report", "Qwen25 Technical Report"),  # 2.5 is not 25
    ("Qwen2.5-VL Technical Report", "Qwen2-VL Technical Report"),
    ("Scaling to 1-2 Million Tokens", "Scaling to 12 Million Tokens"),
    ("SAM 2: Segment Anything", "SAM: Segment Anything"),  # a "v2" model
    ("DINOv2: Learning Robust Visual Features", "DINO: Learning Robust Visual Features"),
    ("YOLOv8 for Detection", "YOLOv9 for Detection"),
    ("Learning to See in the Dark", "Learning to See in the Dark Again"),  # a word
    ("Video Generation Models as World Simulators",
     "Video Generation Models as World Simulators Revisited"),
    ("Efficient C++ Code Generation", "Efficient C Code Generation"),
    ("Attention Is All You Need", "Attention Is Not All You Need"),
    ("ResNet-50 Baselines", "ResNet-101 Baselines"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_the_same_title_written_two_ways_normalizes_alike(a: str, b: str) -> None:
    assert normalize_title(a) == normalize_title(b)


@pytest.mark.parametrize(("a", "b"), APART)
def test_near_misses_stay_apart(a: str, b: str) -> None:
    assert normalize_title(a) != normalize_title(b)


def test_normalized_titles_are_letters_and_digits_with_dots_between_numbers() -> None:
    assert normalize_title("Qwen 2.5-VL: 1,000 Tasks & More!") == "qwen2.5vl1.000tasksandmore"
    assert normalize_title("  ") == ""
    assert normalize_title("a\x00b") == "ab"  # the internal marker cannot be smuggled in


# --- merging in the store -------------------------------------------------------------------


@dataclass
class Items:
    items: list[ParsedItem]
    kind: str
    name: str = "items"

    def open(self, ctx: IngestContext) -> Opened:
        return Opened(self.items)


@pytest.fixture
def url(store_url: str) -> str:
    return store_url


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store.open(url) as store:
        yield store


def _ingest(store: Store, *sources: Items) -> None:
    results = ingest(store, sources, IngestContext(now=NOW, today=NOW.date(), store=store))
    assert all(r.ok for r in results), results


HF_TITLE, ARXIV_TITLE = SAME[0]
HF = RawPaper(title=HF_TITLE, abstract="From the page.", date=dt.date(2026, 6, 5))
ARXIV = RawPaper(id="2606.01234v1", title=ARXIV_TITLE, abstract="From arXiv.",
                 authors=("Ada Lovelace",), categories=("cs.CV",), date=dt.date(2026, 6, 4))


def test_a_saved_page_title_and_its_arxiv_record_are_one_paper(store: Store) -> None:
    _ingest(store, Items([HF], "hf-page"))
    (title_only,) = store.find_by_norm_title(normalize_title(HF_TITLE))
    _ingest(store, Items([ARXIV], "arxiv-rss"))

    assert store.info().papers == 1
    paper = store.get_paper("2606.01234")
    assert paper is not None and paper.pid == title_only.pid
    assert paper.title == ARXIV_TITLE  # the arXiv record is authoritative
    assert paper.sources == ("arxiv-rss", "hf-page")


def test_a_saved_page_after_the_arxiv_record_adds_no_paper(store: Store) -> None:
    _ingest(store, Items([ARXIV], "arxiv-rss"), Items([HF], "hf-page"))
    assert store.info().papers == 1
    paper = store.get_paper("2606.01234")
    assert paper is not None and paper.title == ARXIV_TITLE


def test_near_miss_titles_stay_two_papers_in_the_store(store: Store) -> None:
    page = [RawPaper(title=a) for a, _ in APART]
    arxiv = [RawPaper(id=f"2606.{n:05d}", title=b) for n, (_, b) in enumerate(APART)]
    _ingest(store, Items(page, "hf-page"), Items(arxiv, "arxiv-api"))
    assert store.info().papers == 2 * len(APART)


def _renormalizing_migration() -> int:
    """The index of the migration that recomputes norm_title (the one that calls
    normalize_title), wherever later merges number it."""
    (index,) = [i for i, m in enumerate(MIGRATIONS) if "normalize_title" in m.__code__.co_names]
    return index


def test_an_older_store_gets_its_titles_renormalized_by_its_migration(url: str) -> None:
    with Store.open(url) as store:
        _ingest(store, Items([HF], "hf-page"))
        (old,) = store.find_by_norm_title(normalize_title(HF_TITLE))
        # As the previous normalization stored it; then the migration, as an older store runs
        # it when opened (run directly: later migrations cannot run twice).
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE papers SET norm_title = :n"),
                         {"n": "redva confidence recalibration for vision language models"})
        assert store.find_by_norm_title(normalize_title(HF_TITLE)) == []
        with store.engine.begin() as conn:
            MIGRATIONS[_renormalizing_migration()](conn)

        (renormalized,) = store.find_by_norm_title(normalize_title(HF_TITLE))
        assert renormalized.pid == old.pid
        _ingest(store, Items([ARXIV], "arxiv-rss"))
        assert store.info().papers == 1
        paper = store.get_paper("2606.01234")
        assert paper is not None and paper.pid == old.pid
