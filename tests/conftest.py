"""Fixtures for every test. tests/integration/conftest.py loads after this one, so
the `from conftest import ...` of its modules still finds that one."""
