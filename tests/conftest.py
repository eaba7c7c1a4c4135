"""Test-wide settings: deterministic property tests, so that a CI run is reproducible."""

from hypothesis import settings

# Derandomised: the same examples every run (the suite is a regression net, not a fuzzing
# campaign); no per-example deadline, since a loaded CI machine may be slow.
settings.register_profile("lossbook", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("lossbook")
