"""The ``facelab`` command.

Each sub-command is a small function ``cmd_<name>(args) -> int`` registered in
:func:`build_parser`.  Exit codes: 0 all inputs processed, 2 some inputs failed
(one line per failure on stderr), 1 usage errors.  User mistakes never print a
traceback: :class:`facelab.errors.FacelabError` is turned into one clear line.
"""
from __future__ import annotations

import argparse
import sys

from .errors import FacelabError

EXIT_OK, EXIT_USAGE, EXIT_INPUT_FAILED = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on usage errors; facelab reserves 2 for failed inputs."""

    def error(self, message):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def report_failure(name, error) -> None:
    """One line on stderr for one failed input."""
    print(f"facelab: {name}: {error}", file=sys.stderr)


# --- sub-commands -------------------------------------------------------------
# (each section below belongs to one module; keep edits local to a section)


def cmd_tour(args) -> int:
    from .tour import run_tour

    return run_tour(out=args.out)


def add_tour(sub) -> None:
    p = sub.add_parser("tour", help="run the teaching pipeline on the built-in face world")
    p.add_argument("--out", default="build/tour", help="output folder (default: build/tour)")
    p.set_defaults(func=cmd_tour)


# --- parser -------------------------------------------------------------------
ADDERS = [add_tour]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="facelab", description=__doc__.splitlines()[0])
    from . import __version__

    parser.add_argument("--version", action="version", version=f"facelab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in ADDERS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FacelabError as exc:
        print(f"facelab: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_FAILED
    except KeyboardInterrupt:
        print("facelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
