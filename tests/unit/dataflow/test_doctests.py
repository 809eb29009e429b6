"""The pure modules' docstring examples run, as River's do."""

import doctest

import pytest

from dataflow import alerts
from dataflow.model import hst, machine, scoring


@pytest.mark.parametrize("module", [scoring, hst, machine, alerts])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
