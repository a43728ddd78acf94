"""How a gate report reads as Markdown: value formatting, the figures table, the heads."""

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict

FROZEN = ConfigDict(frozen=True, extra="forbid")


def fmt_value(value: Any) -> str:
    """A figure as text: n/a for None, yes/no, thousands separators, 4 significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(item) for item in value) if value else "none"
    return str(value)


def fmt_s(value: float | None) -> str:
    """Seconds as ``12.3 s`` (n/a for None), the way reasons quote durations."""
    return "n/a" if value is None else f"{value:.1f} s"


def fmt_cell(value: Any) -> str:
    """A figure as the text of a Markdown table cell (``|`` escaped)."""
    return fmt_value(value).replace("|", "\\|")


def section(
    title: str,
    decision: StrEnum,
    figures: Mapping[str, Any],
    reasons: Sequence[str],
    window: tuple[datetime, datetime] | None = None,
) -> str:
    """A history gate's Markdown section: title, decision, window, figures, reasons."""
    lines = [f"### {title}", "", f"**Decision: {decision.value}**", ""]
    if window is not None:
        lines += [f"Window: {window[0].isoformat()} to {window[1].isoformat()}", ""]
    lines += ["| figure | value |", "|---|---|"]
    lines += [f"| {name} | {fmt_cell(value)} |" for name, value in figures.items()]
    lines.append("")
    lines += [f"- {reason}" for reason in reasons]
    return "\n".join(lines) + "\n"


def gate_markdown(
    title: str, decision: str, reasons: Sequence[str], figures: Sequence[tuple[str, str]]
) -> list[str]:
    """A gate's Markdown head: title and decision, one bullet per reason, a figures table."""
    lines = [f"## {title}: **{decision}**", ""]
    lines.extend(f"- {reason}" for reason in reasons)
    lines.extend(["", "| figure | value |", "|---|---|"])
    lines.extend(f"| {name} | {value} |" for name, value in figures)
    return lines
