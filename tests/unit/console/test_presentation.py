"""The console's look is checked, not hoped for: WCAG AA contrast of the colour pairs the
stylesheet uses for text, and every screenshot the README shows exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CSS = (ROOT / "services" / "console" / "static" / "console.css").read_text()
VARIABLES = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})", CSS))


def _luminance(colour: str) -> float:
    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _colour(name: str) -> str:
    return VARIABLES.get(name, name)


# (text, background) pairs the stylesheet puts together.
PAIRS = [
    ("ink", "bg"), ("ink", "card"), ("muted", "card"), ("muted", "bg"), ("muted", "#eef1f5"),
    ("accent", "card"), ("accent-ink", "accent"), ("ok", "ok-bg"), ("warn", "warn-bg"),
    ("bad", "bad-bg"), ("bad", "card"), ("ink", "info-bg"), ("#ffffff", "#172033"),
    ("#c9d3e6", "#172033"), ("#dfe6f3", "#172033"), ("#172033", "#ffffff"),
    ("ink", "#eef1f5"),
]


@pytest.mark.parametrize(("text", "background"), PAIRS)
def test_text_colours_meet_wcag_aa_on_their_backgrounds(text: str, background: str) -> None:
    ratio = contrast(_colour(text), _colour(background))
    assert ratio >= 4.5, f"{text} on {background}: {ratio:.2f}"


def test_the_focus_ring_is_visible_against_the_page_cards_and_the_top_bar() -> None:
    # WCAG 2.2 (focus appearance): 3:1 against what surrounds it.
    assert ":focus-visible { outline: 3px solid var(--focus)" in CSS
    for around in (_colour("bg"), _colour("card"), "#172033"):
        assert contrast(_colour("focus"), around) >= 3, around


def test_every_screenshot_the_readme_shows_exists() -> None:
    shown = re.findall(r"!\[[^\]]*\]\((docs/images/[^)]+)\)", (ROOT / "README.md").read_text())
    assert shown, "the README shows the console's screens"
    assert [path for path in shown if not (ROOT / path).is_file()] == []


def test_every_template_and_static_file_ships_in_the_package() -> None:
    # `pip install .` (the image, a wheel) must carry what the console serves.
    import tomllib
    from fnmatch import fnmatch

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["services.console"]
    base = ROOT / "services" / "console"
    files = [p.relative_to(base).as_posix()
             for folder in ("templates", "static") for p in (base / folder).rglob("*")
             if p.is_file()]
    assert files
    # fnmatch's `*` crosses `/`, setuptools' does not: compare segment counts too.
    missing = [f for f in files if not any(
        fnmatch(f, pattern) and f.count("/") == pattern.count("/") for pattern in patterns)]
    assert missing == []
