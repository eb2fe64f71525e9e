"""The appliance's YAML reader (appliance/config/yamlfile.py): ``1e6`` is a number, a key given twice an error."""

import pytest
import yaml

from appliance.config.yamlfile import load_yaml


@pytest.mark.parametrize(("text", "value"), [
    ("1e6", 1e6), ("-2E-3", -0.002), ("+5.e3", 5000.0), (".5e1", 5.0), ("1.0e6", 1e6), ("1_000e1", 10000.0),
    ("1", 1), ("0x1f", 31), ("'1e6'", "1e6"), ("1e", "1e"), ("e6", "e6"), ("1e6x", "1e6x"), (".nan", None),
])
def test_exponent_numbers_are_numbers_and_nothing_else_changes(text: str, value: object) -> None:
    got = load_yaml(f"v: {text}")["v"]
    if value is None:
        assert got != got  # nan, as safe_load reads it
    else:
        assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("text", "key", "first", "line"), [
    ("a: 1\nb: 2\na: 3\n", "'a'", 1, 3),
    ("camera:\n  width: 640\n  width: 320\n", "'width'", 2, 3),
    ("x: {p: 10, p: 20}\n", "'p'", 1, 1),
    ("1: a\n1: b\n", "1", 1, 2),
])
def test_a_key_given_twice_is_refused_naming_it_and_its_lines(text: str, key: str, first: int, line: int) -> None:
    with pytest.raises(yaml.YAMLError) as err:
        load_yaml(text)
    assert f"duplicate key {key} (first given on line {first})" in str(err.value.problem)  # type: ignore[attr-defined]
    assert err.value.problem_mark.line + 1 == line  # type: ignore[attr-defined]


def test_a_merged_key_may_be_overridden_and_safe_load_is_untouched() -> None:
    assert load_yaml("base: &b {a: 1, c: 3}\nd:\n  <<: *b\n  a: 2\n")["d"] == {"a": 2, "c": 3}
    assert yaml.safe_load("v: 1e6") == {"v": "1e6"}  # the loader is a subclass: PyYAML's own is unchanged
