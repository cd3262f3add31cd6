"""One rule for matching class names (transfer, distillation, evaluation): stripped, case-folded, first duplicate."""

import pytest

from yolotl.errors import ConfigError
from yolotl.evaluation.evaluator import check_class_names
from yolotl.models.class_names import match_class_names
from yolotl.models.transfer import match_class_rows
from yolotl.training.distillation import match_classes


def test_names_match_stripped_and_case_free_to_the_first_duplicate():
    assert match_class_names([" Cat", "dog", "bird"], ["DOG", "cat ", "cat"]) == {0: 1, 1: 0}
    assert match_class_names([], ["a"]) == {} and match_class_names(["a"], []) == {}


def test_aliases_rename_before_matching():
    assert match_class_names(["kitten", "dog"], ["cat", "dog"], {"Kitten": "CAT"}) == {0: 0, 1: 1}


def test_every_caller_uses_the_same_rule():
    new, source = ["Dog", "cow", "cat"], ["cat", "dog", "DOG"]
    expected = match_class_names(new, source)
    assert match_class_rows(new, source) == expected
    assert match_classes(new, source) == list(expected.items())
    assert check_class_names(source, ["dog", "CAT"], "data") == [1, 0]


def test_callers_keep_their_own_errors():
    with pytest.raises(ConfigError, match="class_map"):
        match_class_rows(["a"], ["b"], {"a": "z"})
    with pytest.raises(ConfigError, match="no class to distil"):
        match_classes(["a"], ["b"])
    with pytest.raises(ConfigError, match="it has no"):
        check_class_names(["a"], ["a", "b"], "data")

