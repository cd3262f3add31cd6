"""yolotl.errors: the ground floor."""

from yolotl.errors import first_line


def test_first_line_of_an_error_is_short():
    assert first_line(ValueError("  one\ntwo")) == "one"
    assert first_line(ValueError("x" * 500)) == "x" * 300 and len(first_line(ValueError("x" * 500), limit=200)) == 200
    assert first_line(KeyError()) == "KeyError"
