# The package's metadata is in setup.cfg.  No pyproject.toml on purpose:
# without one, pip 23.0 builds with the setuptools and wheel already
# installed (Debian's python3-setuptools, python3-wheel) instead of
# downloading them into an isolated build environment, so that
# `pip install ./docker/consumer` works offline.
from setuptools import setup

setup()
