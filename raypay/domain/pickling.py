"""Cheap pickling for the frozen dataclasses that cross Ray's process boundaries.

A frozen, slotted dataclass pickles through ``dataclasses``' generic ``__getstate__``,
which looks its fields up again for every object; a payment, its request and its
outcome cross two or three processes each. ``by_fields`` pickles an instance as its
class and its field values, in order, and builds it again through ``__init__``.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")


def by_fields(cls: type[T]) -> type[T]:
    """Class decorator (apply it outside ``@dataclass``)."""
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = attrgetter(*names)
    if len(names) == 1:

        def __reduce__(self: Any) -> tuple[Any, tuple[Any, ...]]:
            return cls, (values(self),)
    else:

        def __reduce__(self: Any) -> tuple[Any, tuple[Any, ...]]:
            return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign,assignment]
    return cls
