"""The speed figures of the README and of the pages in ``docs/`` come from the committed
benchmark reports: every figure a paragraph quotes (a decimal number, or a number of ``×`` or
``%``) appears in the report it cites (``benchmarks/REPORT.md`` or ``benchmarks/gpu/REPORT.md``,
also as a relative link such as ``../benchmarks/REPORT.md``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ("benchmarks/gpu/REPORT.md", "benchmarks/REPORT.md")  # the more specific first
#: A figure: a number with a unit of ratio or share, or any decimal number.
FIGURE = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)\s?(×|%)|(?<![\w.\-])(\d+\.\d+)(?![\w.])")
#: Code spans and link targets hold commands and paths, not figures.
NOT_PROSE = re.compile(r"`[^`]*`|\]\([^)]*\)")


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def cited_paragraphs(readme: str) -> list[tuple[str, str]]:
    """``(report, paragraph)`` for every README paragraph that cites a benchmark report."""
    out = []
    for paragraph in _paragraphs(readme):
        for report in REPORTS:
            if report in paragraph:
                out.append((report, paragraph))
                break
    return out


def figures(paragraph: str) -> list[str]:
    """The figures a paragraph quotes, as ``1.23``, ``1.23 ×`` or ``84 %``; both ends of a
    range (``1.65–2.57 ×``) count."""
    prose = NOT_PROSE.sub(" ", paragraph)
    prose = re.sub(r"(\d+(?:\.\d+)?)–(\d+(?:\.\d+)?)\s?(×|%)", r"\1 \3 \2 \3", prose)
    found = []
    for m in FIGURE.finditer(prose):
        found.append(f"{m.group(1)} {m.group(2)}" if m.group(1) else m.group(3))
    return found


def in_report(figure: str, report: str) -> bool:
    """Whether ``figure`` appears in the report's text as a whole number (``1.2`` is not in
    ``1.23``), with its unit where it has one (``1.23×`` or ``1.23 ×``)."""
    number, _, unit = figure.partition(" ")
    pattern = rf"(?<![\d.]){re.escape(number)}(?![\d])" + (rf"\s?{re.escape(unit)}" if unit
                                                           else r"(?!\.\d)")
    return re.search(pattern, report) is not None


def test_the_figure_extraction() -> None:
    text = ("Our epoch takes **1.23 × its floor** (1.65–2.57 × at batch 128, 84 %), "
            "7.97 ms; `mlp bench --max-time 0.25` and [r](benchmarks/REPORT.md) are not figures, "
            "nor 784-512-512-10 or Python 3.11.")
    assert figures(text) == ["1.23 ×", "1.65 ×", "2.57 ×", "84 %", "7.97"]
    report = "| 1.23× | 1.65 × | 2.57× | 84% | 7.970 | 3.11 |"
    assert in_report("1.23 ×", report) and in_report("84 %", report)
    assert not in_report("1.2 ×", report) and not in_report("7.97", report)


README = (ROOT / "README.md").read_text(encoding="utf-8")
#: The README and every page of the docs (the rendered copies of the reports aside).
DOCUMENTS = ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")
    if "_build" not in p.parts and p.parent.name != "reports")]
CITED = [(doc, report, paragraph) for doc in DOCUMENTS
         for report, paragraph in cited_paragraphs((ROOT / doc).read_text(encoding="utf-8"))]


def test_the_readme_cites_both_reports() -> None:
    assert {report for report, _ in cited_paragraphs(README)} == set(REPORTS)


@pytest.mark.parametrize("doc", ["README.md", "docs/performance.md"])
def test_the_speed_figures_are_checked(doc: str) -> None:
    """Where the figures are, the extraction finds them (a paragraph that links a report
    without quoting it has nothing to check)."""
    quoted = [f for d, _, p in CITED if d == doc for f in figures(p)]
    assert len(quoted) >= 6, quoted


@pytest.mark.parametrize(("doc", "report", "paragraph"), CITED,
                         ids=[f"{d}:{r}:{i}" for i, (d, r, _) in enumerate(CITED)])
def test_every_figure_quoted_is_in_the_report_it_cites(doc: str, report: str,
                                                       paragraph: str) -> None:
    path = ROOT / report
    if not path.exists():
        pytest.skip(f"no {report} in this installation")
    text = path.read_text(encoding="utf-8")
    missing = [f for f in figures(paragraph) if not in_report(f, text)]
    assert not missing, f"{doc}: figures not in {report}: {missing}\n{paragraph[:300]}"
