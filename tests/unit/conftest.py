"""Unit-test settings shared by every module.

Hypothesis fails an example that runs over 200 ms by default. These tests check results, never
speed (speed is claimed in ``bench/``), and on a loaded 2-core machine an example can take longer,
so a slow example must not fail a run: no deadline.
"""

from hypothesis import settings

settings.register_profile("unit", deadline=None)
settings.load_profile("unit")
