"""The versioned policy files under ``diag_assets/policy/``, read and validated one way."""

import json
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from diag_assets.core.errors import DiagInputError

PolicyT = TypeVar("PolicyT", bound=BaseModel)


def load_policy_file(
    name: str, model: type[PolicyT], *, what: str, shape: str, path: str | Path | None = None
) -> PolicyT:
    """The packaged policy file ``name``, or the one at ``path``, validated as ``model``.

    Raises:
        DiagInputError: the file is not JSON or does not fit ``model``; the message names
            the file and ``shape``, the content it should have.
    """
    if path is None:
        raw = resources.files("diag_assets.policy").joinpath(name).read_text()
        where = f"diag_assets/policy/{name}"
    else:
        raw, where = Path(path).read_text(), str(path)
    try:
        return model.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as error:
        raise DiagInputError(f"The {what} file {where} is malformed: {error}", shape) from error
