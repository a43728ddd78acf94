"""What a stored capture must prove before it is served or adopted.

A manifest is a claim: "these files are the captured fold of this cell, replayed with this
recipe, config and market data, and this is their content hash". The cache believes none of
it on its say-so. Before a capture is served, every claim is checked against what can be
recomputed and against the catalog; before a stored artifact is adopted (its writer died
before committing it), against the cell the request just prepared:

- **its own arithmetic** (:func:`prove_claims`): the capture key recomputed from the
  manifest's cell, source version, recipe version, fold layout, config and library versions
  is the key it says it has; the content hash recomputed from its X, y and trial-log hashes,
  training rows and mode is the content hash it says it has; the mode is the config's; the
  split is inside the rows; the trial fields fit the mode;
- **the catalog** (:func:`prove_served`): the COMPLETE entry it is served for has the same key,
  request, cell, mode, source version and hashes;
- **the request** (:func:`prove_adoptable`): the prepared cell has the same key, cell, source
  version, recipe version and config, and the recipe's prep, run again on the cell's window
  (it trains nothing), makes the X, y and split the manifest claims. Nothing in the catalog
  vouches for an artifact whose commit was lost, so its data is proven from the source.

The file digests are proven separately (:meth:`CaptureArtifacts.verify
<diag_assets.core.capture.artifacts.CaptureArtifacts.verify>`), and the canonical hashes of X
and y when the capture is loaded. Any failure is a :class:`CaptureProofFailed`: the cache marks
the capture stale and re-captures it (approved) or refuses (not approved), with this message.
"""

from typing import Any, cast

from diag_assets.core.capture.artifacts import CaptureVerificationError
from diag_assets.core.capture.keys import capture_key, content_hash, request_key
from diag_assets.core.capture.manifest import CaptureManifest
from diag_assets.core.capture.modes import CaptureMode
from diag_assets.core.capture.replay import PreparedCell
from diag_assets.core.cells import CellRef
from diag_assets.core.errors import DiagInputError
from diag_assets.core.folds import FoldSpec
from diag_assets.core.hashing.table import canonical_hash
from diag_assets.core.recipe.protocol import Recipe
from diag_assets.core.storage.catalog.model import CaptureStatus, CatalogEntry


class CaptureProofFailed(CaptureVerificationError):
    """A manifest claims something that does not hold; the capture must not be used.

    Attributes:
        capture_key: The key the capture was looked up by.
        problems: One sentence per claim that failed.
    """

    def __init__(self, capture_key: str, against: str, problems: list[str]) -> None:
        self.capture_key = capture_key
        self.problems = problems
        super().__init__(
            f"Capture {capture_key}: its manifest does not prove itself against {against}: "
            + "; ".join(problems)
            + ". Its bytes are not used."
        )


def _differs(what: str, claimed: object, actual: object, where: str) -> str | None:
    if claimed == actual:
        return None
    return f"{what} is {claimed!r} in the manifest but {actual!r} in {where}"


def _recomputed_keys(manifest: CaptureManifest) -> tuple[str, str]:
    """``(capture_key, request_key)`` from the manifest's own fields."""
    cell = CellRef.parse(manifest.cell_ref)
    fold_spec = FoldSpec(**cast(dict[str, Any], manifest.fold_spec))
    version, config, libraries = manifest.recipe_version, manifest.config, manifest.libraries
    return (
        capture_key(cell, manifest.source_version, version, fold_spec, config, libraries=libraries),
        request_key(cell, version, fold_spec, config, libraries=libraries),
    )


def claim_problems(manifest: CaptureManifest) -> list[str]:
    """What the manifest claims that its own fields do not bear out (empty: nothing)."""
    problems: list[str] = []
    try:
        key, _ = _recomputed_keys(manifest)
    except (DiagInputError, TypeError) as error:
        problems.append(f"its cell or fold layout is not valid ({error})")
    else:
        if key != manifest.capture_key:
            problems.append(
                f"its fields hash to capture key {key}, not to the {manifest.capture_key} it "
                "claims (cell, source, recipe, fold layout, config or libraries were edited)"
            )
    recomputed = content_hash(
        manifest.x_hash, manifest.y_hash, manifest.trial_log_hash, manifest.n_train, manifest.mode
    )
    if recomputed != manifest.content_hash:
        problems.append(
            f"its X, y and trial-log hashes, training rows and mode hash to content hash "
            f"{recomputed}, not to the {manifest.content_hash} it claims"
        )
    if manifest.config.mode is not manifest.mode:
        problems.append(f"its mode {manifest.mode} is not its config's {manifest.config.mode}")
    if not 0 < manifest.n_train < manifest.rows:
        problems.append(f"{manifest.n_train} training rows of {manifest.rows} is not a split")
    trained = manifest.trial_log_hash is not None
    if trained == (manifest.mode is CaptureMode.DATASET_ONLY):
        problems.append(
            f"a {manifest.mode} capture "
            + ("has no trial log" if not trained else "trains nothing, yet it has a trial log")
        )
    return problems


def prove_claims(manifest: CaptureManifest) -> None:
    """Check the manifest's own arithmetic (see the module docstring).

    Raises:
        CaptureProofFailed: a claim does not hold.
    """
    problems = claim_problems(manifest)
    if problems:
        raise CaptureProofFailed(manifest.capture_key, "its own fields", problems)


def prove_served(manifest: CaptureManifest, entry: CatalogEntry) -> None:
    """Check a manifest before serving it for the catalog entry ``entry``.

    Raises:
        CaptureProofFailed: a claim does not hold, or differs from the entry.
    """
    problems = claim_problems(manifest)
    if entry.status is not CaptureStatus.COMPLETE:
        problems.append(f"its catalog entry is {entry.status}, not complete")
    where = "the catalog"
    compared = (
        ("the capture key", manifest.capture_key, entry.key),
        ("the cell", manifest.cell_ref, entry.cell_ref),
        ("the mode", str(manifest.mode), entry.mode),
        ("the source version", manifest.source_version, entry.source_version),
        ("the content hash", manifest.content_hash, entry.content_hash),
        ("the X hash", manifest.x_hash, entry.x_hash),
        ("the y hash", manifest.y_hash, entry.y_hash),
        ("the trial-log hash", manifest.trial_log_hash, entry.trial_log_hash),
    )
    problems += [p for what, a, b in compared if (p := _differs(what, a, b, where)) is not None]
    try:
        _, asked = _recomputed_keys(manifest)
    except (DiagInputError, TypeError):
        pass  # already a problem of its own fields
    else:
        if asked != entry.request_key:
            problems.append(
                f"it answers request {asked}, but the catalog entry was made for "
                f"{entry.request_key}"
            )
    if problems:
        raise CaptureProofFailed(entry.key, "its catalog entry", problems)


def prove_adoptable(manifest: CaptureManifest, prepared: PreparedCell, recipe: Recipe) -> None:
    """Check a stored manifest before adopting it as the capture of ``prepared``.

    Runs ``recipe``'s prep (no training) once the cheaper claims hold.

    Raises:
        CaptureProofFailed: a claim does not hold, the artifact is another request's, or the
            prep makes other X, y or another split.
    """
    problems = claim_problems(manifest)
    where = "this request"
    compared = (
        ("the capture key", manifest.capture_key, prepared.key),
        ("the cell", manifest.cell_ref, str(prepared.cell)),
        ("the source version", manifest.source_version, prepared.source_version),
        ("the recipe version", manifest.recipe_version, prepared.recipe_version),
        ("the capture config", manifest.config, prepared.config),
        ("the fold layout", manifest.fold_spec, vars(prepared.fold_spec)),
    )
    problems += [p for what, a, b in compared if (p := _differs(what, a, b, where)) is not None]
    if not problems:
        data = recipe.prep(prepared.window, prepared.fold)
        made = (
            ("the X hash", manifest.x_hash, canonical_hash(data.X).digest),
            ("the y hash", manifest.y_hash, canonical_hash(data.y).digest),
            ("the training rows", manifest.n_train, data.n_train),
        )
        where = "the recipe's prep of this cell"
        problems = [p for what, a, b in made if (p := _differs(what, a, b, where)) is not None]
    if problems:
        raise CaptureProofFailed(prepared.key, "the cell it would be adopted for", problems)
