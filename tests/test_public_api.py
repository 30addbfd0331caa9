"""Everything facelab/__init__.py promises is importable from the top level."""
import importlib

import facelab


def test_every_export_resolves_to_its_module():
    for name, module in facelab._EXPORTS.items():
        obj = getattr(facelab, name)
        assert obj is getattr(importlib.import_module(f"facelab.{module}"), name), name


def test_unknown_name_raises_attribute_error():
    import pytest

    with pytest.raises(AttributeError):
        facelab.no_such_thing  # noqa: B018
