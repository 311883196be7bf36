"""Fixtures for every test. tests/integration/conftest.py loads after this one, so
the `from conftest import ...` of its modules still finds that one."""
import pytest

from nlbpf.capture.defaults import CAPTURE_DEFAULTS


@pytest.fixture
def defaults():
    """CAPTURE_DEFAULTS to change in a test, restored after it."""
    saved = dict(CAPTURE_DEFAULTS)
    yield CAPTURE_DEFAULTS
    CAPTURE_DEFAULTS.clear()
    CAPTURE_DEFAULTS.update(saved)
