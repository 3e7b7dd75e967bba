"""Only a guard: the project is configured in pyproject.toml. pip builds the metadata before it
resolves the dependencies, so an older Python stops here with the one line that matters, not
with a resolver error about a dependency's version."""
import sys

if sys.version_info < (3, 11):
    sys.exit(f"af2struct requires Python >= 3.11; this is Python {sys.version.split()[0]}")

from setuptools import setup  # noqa: E402

setup()
