"""What every gate ends in, and how it reads as Markdown.

A gate returns a frozen :class:`GateReport`: its label, a decision, the sentences that explain
the decision and the figures behind it. :func:`gate_markdown` is the one Markdown renderer of
every gate report and of the exit report that consolidates them, so they all read alike::

    ### <title>

    **Decision: <decision>**

    Window: <start> to <end>        (only a gate that reads a window of the audit history)

    - <reason>                      (one bullet per reason, the deciding one first)

    | figure | value |              (every figure, formatted by fmt_value)

    | <the gate's own tables> |     (per fold, per diagnostic, ...)
"""

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

FROZEN = ConfigDict(frozen=True, extra="forbid")

DecisionT = TypeVar("DecisionT", bound=StrEnum)
FiguresT = TypeVar("FiguresT", bound=BaseModel)


@dataclass(frozen=True)
class Table:
    """A table of a report's Markdown: a header and rows of cells (any figure values)."""

    header: tuple[str, ...]
    rows: Sequence[Sequence[Any]]


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


def bullets(items: Sequence[str]) -> str:
    """One Markdown bullet per item."""
    return "\n".join(f"- {item}" for item in items)


def markdown_table(table: Table) -> str:
    """A Markdown table; every cell is formatted by :func:`fmt_value`, ``|`` escaped."""
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += [
        "| " + " | ".join(fmt_value(value).replace("|", "\\|") for value in row) + " |"
        for row in table.rows
    ]
    return "\n".join(lines)


def section(title: str, body: str, *, level: int = 3) -> str:
    """A Markdown heading and its body."""
    return f"{'#' * level} {title}\n\n{body.strip()}\n"


def gate_markdown(
    title: str,
    headline: str,
    reasons: Sequence[str],
    *,
    figures: Mapping[str, Any] | None = None,
    window: tuple[datetime, datetime] | None = None,
    tables: Sequence[Table] = (),
    notes: Mapping[str, Sequence[str]] | None = None,
    sections: Sequence[str] = (),
    level: int = 3,
) -> str:
    """A report in the layout of the module docstring.

    Args:
        title: The heading.
        headline: The bold line under it (``Decision: GO``).
        reasons: One bullet each.
        figures: The figures table, by name; None for no table.
        window: The window of history the report read, if any.
        tables: The report's own tables, after the figures.
        notes: Labelled bullet lists after the tables (``Blocked:``); empty ones are left out.
        sections: Markdown appended as it is (a consolidated report's gate sections).
        level: The heading level.

    Returns:
        The Markdown, ending in a newline.
    """
    blocks = [f"{'#' * level} {title}", f"**{headline}**"]
    if window is not None:
        blocks.append(f"Window: {window[0].isoformat()} to {window[1].isoformat()}")
    if reasons:
        blocks.append(bullets(reasons))
    if figures is not None:
        blocks.append(markdown_table(Table(("figure", "value"), list(figures.items()))))
    blocks += [markdown_table(table) for table in tables]
    for label, items in (notes or {}).items():
        if items:
            blocks += [f"{label}:", bullets(items)]
    blocks += [text.strip("\n") for text in sections]
    return "\n\n".join(blocks) + "\n"


def numeric_fields(model: type[BaseModel]) -> dict[str, type[int] | type[float]]:
    """The fields of a figures model that are a number (``int`` or ``float``, or ``None``).

    By the field's declared type, in declaration order, so the same model always gives the
    same names whatever the values of one report: ``p50_s: float | None`` is a float field,
    ``n: int`` an int one; a bool, a text, a list or a mapping is not a number.
    """
    numeric: dict[str, type[int] | type[float]] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if get_origin(annotation) in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            annotation = members[0] if len(members) == 1 else None
        if annotation is int or annotation is float:
            numeric[name] = annotation
    return numeric


class GateReport(BaseModel, Generic[DecisionT, FiguresT]):
    """What every gate ends in: its label, a decision, the reasons for it and its figures.

    Stored as JSON, shown as Markdown (:meth:`markdown`); a gate adds the fields and tables
    that are its own.
    """

    model_config = FROZEN

    gate: str = Field(description="The gate's label in reports and in the exit report.")
    decision: DecisionT
    reasons: list[str] = Field(description="Why: the deciding sentence first.")
    figures: FiguresT

    def heading(self) -> str:
        """The report's title: the gate's label unless the gate says more."""
        return self.gate

    def window(self) -> tuple[datetime, datetime] | None:
        """The window of history the gate read; None for a gate that reads no history."""
        return None

    def figure_rows(self) -> Mapping[str, Any]:
        """The figures table, by name; every figure unless the gate shows them otherwise."""
        return self.figures.model_dump()

    def tables(self) -> list[Table]:
        """The gate's own tables after its figures (per fold, per diagnostic, ...)."""
        return []

    def markdown(self) -> str:
        """The report as Markdown (see the module docstring)."""
        return gate_markdown(
            self.heading(),
            f"Decision: {self.decision.value}",
            self.reasons,
            figures=self.figure_rows(),
            window=self.window(),
            tables=self.tables(),
        )


class HistoryGateReport(GateReport[DecisionT, FiguresT], Generic[DecisionT, FiguresT]):
    """A gate report computed from a window of the audit history."""

    window_start: datetime
    window_end: datetime

    def window(self) -> tuple[datetime, datetime]:
        """The window the gate read."""
        return self.window_start, self.window_end
