"""Config fields that carry their own bounds and description.

A config dataclass declares each field with :func:`setting`: its default, the values it
allows and one line of description, all in one place. Config validation reads the bounds
(:func:`bounds_of`), the help and reference text read the description (:func:`doc_of`),
and the config fuzz test draws values at and just beyond each bound. A number's bounds
are inclusive, ``lo <= value <= hi``; ``None`` leaves that side open; a range field (a
``[lo, hi]`` list each agent draws from) must have both of its ends within them. A
field declared without ``setting`` allows any value >= 0 when it is a number.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

Bound = float | int | None

BOUNDS = "qtg_bounds"
DOC = "qtg_doc"
DEFAULT_BOUNDS: tuple[Bound, Bound] = (0, None)
"""What a number allows when its field says nothing: >= 0."""

MAX_INT: int = 10**15
"""The largest integer a field without an upper bound allows (a count, a period, an
interval): far beyond any real use, and small enough that the sums and products the
engines compute with it stay in int64."""


def setting(default: Any, *, lo: Bound = 0, hi: Bound = None, doc: str = "") -> Any:
    """A dataclass field with ``default`` (a list is copied for every instance), the
    inclusive bounds ``[lo, hi]`` of a number or of both ends of a range, and ``doc``."""
    meta = {BOUNDS: (lo, hi), DOC: doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def bounds_of(cls: type) -> dict[str, tuple[Bound, Bound]]:
    """Each field of dataclass ``cls`` -> its inclusive bounds (default: >= 0)."""
    return {f.name: f.metadata.get(BOUNDS, DEFAULT_BOUNDS) for f in dataclasses.fields(cls)}


def doc_of(cls: type) -> dict[str, str]:
    """Each field of dataclass ``cls`` -> its one-line description ("" when it has none)."""
    return {f.name: f.metadata.get(DOC, "") for f in dataclasses.fields(cls)}


def allowed(lo: Bound, hi: Bound, real: bool = False) -> str:
    """The bounds as the error messages say them: ">= 1", "<= 5", "in [0, 1]", "any
    number"; ``real``: as floats ("in [0.0, 1.0]"), for a field of floats."""
    if real:
        lo, hi = (None if b is None else float(b) for b in (lo, hi))
    if lo is None and hi is None:
        return "any number"
    if hi is None:
        return f">= {lo}"
    if lo is None:
        return f"<= {hi}"
    return f"in [{lo}, {hi}]"
