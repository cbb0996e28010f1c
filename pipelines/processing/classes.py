"""Class filters of zones and lines (``classes:`` in their config): which tracks a zone or line counts.

A zone or line with ``classes: [car, truck]`` (names or ids of the model's classes) sees only tracks of those
classes: the others cause none of its events and none of its counts, as if they were not there. An empty
list (the default) counts every class. A track's class is the one it has in the frame (the tracker keeps
the class of its detections).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Optional, Union

import numpy as np
import numpy.typing as npt

from pipelines.errors import UserError
from pipelines.processing.zones import ClassRef, LineConfig, ZoneConfig

__all__ = ["ClassFilter", "check_classes", "class_label"]


class ClassFilter:
    """Which class ids a zone or line counts; ``allows`` every class when it was given none."""

    def __init__(self, classes: Sequence[ClassRef]) -> None:
        self.everything = not classes
        self._ids = np.array([c for c in classes if isinstance(c, int)], dtype=np.int64)
        self._names = frozenset(c for c in classes if isinstance(c, str))

    def allows(self, class_ids: Sequence[int], class_names: Mapping[int, str]) -> npt.NDArray[np.bool_]:
        """Boolean (N,) of which rows of ``class_ids`` (N,) are counted (``class_names``: the model's)."""
        ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        if self.everything:
            return np.ones(len(ids), dtype=bool)
        named = np.array([class_names.get(int(c)) in self._names for c in ids.tolist()], dtype=bool)
        allowed: npt.NDArray[np.bool_] = np.isin(ids, self._ids) | named.reshape(-1)
        return allowed


def class_label(classes: Sequence[ClassRef], class_names: Mapping[int, str]) -> list[str]:
    """The classes as names (an id the model names becomes its name), for events, sensors and the view."""
    return [class_names.get(c, str(c)) if isinstance(c, int) else c for c in classes]


def check_classes(zones: Sequence[ZoneConfig], lines: Sequence[LineConfig], class_names: Mapping[int, str],
                  source_id: str = "", kept: Optional[Collection[int]] = None) -> None:
    """Raise ``UserError`` (one line naming the zone or line) for a class the model does not have, and for a
    zone or line whose classes are all dropped before tracking (``kept``: ``detector.classes``)."""
    names = set(class_names.values())
    where = f"source {source_id}: " if source_id else ""
    items: list[tuple[str, Union[ZoneConfig, LineConfig]]] = [("zone", z) for z in zones]
    items += [("line", ln) for ln in lines]
    for kind, item in items:
        for ref in item.classes:
            known = ref in class_names if isinstance(ref, int) else ref in names
            if not known:
                have = ", ".join(f"{i}={n}" for i, n in sorted(class_names.items())[:12])
                more = ", ..." if len(class_names) > 12 else ""
                raise UserError(f"{where}{kind} {item.name!r}: classes: {ref!r} is not a class of the model "
                                f"({have}{more})")
        labels = class_label(item.classes, class_names)
        if len(set(labels)) != len(labels):   # [car, 2]: one class by name and by id (the config saw two)
            raise UserError(f"{where}{kind} {item.name!r}: classes: names a class twice: {labels}")
        ids = {i for ref in item.classes for i, n in class_names.items() if ref in (i, n)}
        if kept and item.classes and not ids & set(kept):   # it would count nothing, silently
            raise UserError(f"{where}{kind} {item.name!r}: classes: {', '.join(labels)} "
                            f"{'is' if len(labels) == 1 else 'are'} not tracked: --classes "
                            f"(detector.classes) keeps only {', '.join(map(str, sorted(kept)))}")
