"""The pure modules' docstring examples run, as River's do."""

import doctest

import pytest

from dataflow import scoring


@pytest.mark.parametrize("module", [scoring])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
