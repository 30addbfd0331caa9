"""Where facelab keeps files it fetches or converts for you.

Everything lives under one folder, :func:`facelab_home`: ``$FACELAB_HOME`` when it is set,
else ``~/.cache/facelab``.  Nothing here creates a folder; the code that writes a file
creates its parent first.
"""
from __future__ import annotations

import os
from pathlib import Path


def facelab_home() -> Path:
    """facelab's own folder: ``$FACELAB_HOME`` if set, else ``~/.cache/facelab`` (not created here)."""
    home = os.environ.get("FACELAB_HOME")
    return Path(home).expanduser() if home else Path("~/.cache/facelab").expanduser()


def zoo_dir() -> Path:
    """The model zoo's folder, ``facelab_home() / "zoo"``: downloads and converted checkpoints."""
    return facelab_home() / "zoo"
