"""Markers for the test lanes (CONTRIBUTING.md): every notebook item nbval collects is a `notebook` test."""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.notebook)
