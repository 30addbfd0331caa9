"""The code of the ``facelab`` sub-commands, one module per group; :mod:`facelab.apps.cli`
holds the argument parsers and calls ``cmd_<name>(args) -> exit code``.

* :mod:`~facelab.apps.commands.detect_predict` -- ``detect``, ``predict``, ``export-onnx``;
* :mod:`~facelab.apps.commands.train` -- ``synth``, ``prepare``, ``train``, ``evaluate``, ``tour``;
* :mod:`~facelab.apps.commands.video` -- ``video-features``, ``video-classify``;
* :mod:`~facelab.apps.commands.download` -- ``download`` (the model zoo).

Exit codes: 0 all inputs processed, 2 some inputs failed (one line per failure on stderr,
:func:`report_failure`), 1 usage errors.
"""
from __future__ import annotations

import sys

EXIT_OK, EXIT_USAGE, EXIT_INPUT_FAILED = 0, 1, 2


def report_failure(name, error) -> None:
    """One line on stderr for one failed input."""
    print(f"facelab: {name}: {error}", file=sys.stderr)


def strip_name(name, error) -> str:
    """Error messages already start with the input's name; do not print it twice."""
    error = str(error)
    return error[len(f"{name}: "):] if error.startswith(f"{name}: ") else error


__all__ = ["EXIT_OK", "EXIT_USAGE", "EXIT_INPUT_FAILED", "report_failure", "strip_name"]
