"""An option's value, wherever it is given (CLI, recipe YAML, ``-o KEY=VALUE``, the Python API), is checked
against its declared type: converted where a string spells it, refused naming the option otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesift.errors import ConfigError
from tunesift.options import Option, check_values


@pytest.mark.parametrize(
    ("kind", "given", "want"),
    [(int, "5", 5), (int, 5, 5), (float, "0.5", 0.5), (float, 3, 3.0), (bool, "yes", True), (bool, False, False),
     (str | None, None, None), (Path | None, "a.json", Path("a.json")), (str, "x", "x")],
)  # fmt: skip
def test_a_value_is_converted_to_its_declared_type(kind, given, want):
    got = Option("opt", kind, None, "help").check(given)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    ("kind", "given"), [(int, "many"), (int, True), (int, 2.5), (float, "abc"), (str, 42), (bool, "maybe"), (int, None)]
)
def test_a_value_of_another_type_is_refused_naming_the_option(kind, given):
    with pytest.raises(ConfigError) as err:
        Option("max_tokens", kind, None, "help").check(given)
    assert "max-tokens" in str(err.value)


def test_an_undeclared_option_is_refused_and_defaults_fill_the_rest():
    options = (Option("k", int, 5, "h"), Option("alpha", float, 0.2, "h"))
    assert check_values(options, {"k": "3"}, "method 'x'") == {"k": 3, "alpha": 0.2}
    with pytest.raises(ConfigError, match="bins"):
        check_values(options, {"bins": 3}, "method 'x'")


@pytest.mark.parametrize(
    ("range_", "given", "ok"),
    [({"at_least": 1}, "1", True), ({"at_least": 1}, 0, False), ({"at_least": 0}, "-1", False),
     ({"above": 0}, 0.001, True), ({"above": 0}, "0", False), ({"above": 0}, -3, False), ({}, -3, True)],
)  # fmt: skip
def test_a_value_outside_the_declared_range_is_refused_wherever_it_comes_from(range_, given, ok):
    option = Option("timeout", float, 1.0, "h", **range_)
    if ok:
        assert option.check(given) == float(given)
    else:
        with pytest.raises(ConfigError, match="timeout': must be"):
            option.check(given)
