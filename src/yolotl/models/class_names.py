"""Matching one list of class names to another: the one rule every part of yolotl uses.

Two names match when they are equal after ``str(name).strip().casefold()``. A name that appears
twice in the reference list matches its first occurrence. Used by detector-to-detector transfer
(:mod:`yolotl.models.transfer`), distillation (:class:`yolotl.training.Distiller`) and evaluation
of a detector on a dataset (:func:`yolotl.evaluation.evaluator.check_class_names`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def normalise_class_name(name: object) -> str:
    """The form class names are compared in: stripped and case-folded."""
    return str(name).strip().casefold()


def match_class_names(
    names: Sequence[str], reference: Sequence[str], aliases: Mapping[str, str] | None = None
) -> dict[int, int]:
    """Index in ``names`` -> index in ``reference`` of the class with the same name, for every name that has one.

    ``aliases`` maps a name of ``names`` to the ``reference`` name it stands for (e.g. a renamed class);
    names without an alias are matched as they are. Keys come in increasing order of ``names``.
    """
    index: dict[str, int] = {}
    for position, name in enumerate(reference):
        index.setdefault(normalise_class_name(name), position)
    renamed = {normalise_class_name(k): normalise_class_name(v) for k, v in (aliases or {}).items()}
    matches = {}
    for position, name in enumerate(names):
        key = normalise_class_name(name)
        key = renamed.get(key, key)
        if key in index:
            matches[position] = index[key]
    return matches
