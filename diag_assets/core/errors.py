"""The one exception type for input a user must fix.

Every check of user input raises :class:`DiagInputError` before any work is done, with a
message that says what is wrong *and* what to do about it. The Dagster layer lets it
propagate unchanged so the operator reads the same sentence in the UI.
"""


class DiagInputError(ValueError):
    """Bad input: the message names the problem and the fix."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} Fix: {fix}")


QUOTE_LIMIT = 80


def clipped(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (the cut marked ``...``) for a message.

    A value read from a file or a tag can be of any size; its start is enough to find it,
    and a message never carries a whole file.
    """
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """How a message quotes a value it refuses: its ``repr``, clipped (see :func:`clipped`)."""
    return clipped(repr(value), limit)
