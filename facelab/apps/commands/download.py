"""``facelab download``: the paper's published networks (:mod:`facelab.zoo`), checked by
sha256 and converted once into facelab checkpoints."""
from __future__ import annotations

import sys

from facelab import zoo
from facelab.apps.commands import EXIT_INPUT_FAILED, EXIT_OK, EXIT_USAGE, report_failure, strip_name
from facelab.checkpoints import zoo_checkpoint, zoo_checkpoint_path
from facelab.errors import FacelabError


def _zoo_row(entry) -> str:
    """One `--list` row: name, tasks, architecture, size, whether the file is here, why unsupported."""
    size = f"{entry.size / 1e6:.1f} MB" if entry.size else "?"
    here = "cached" if zoo.local_path(entry).is_file() else "-"
    row = f"{entry.name:<26} {'+'.join(entry.tasks):<24} {entry.architecture:<38} {size:>9}  {here}"
    return row if entry.supported else f"{row}  unsupported: {entry.reason}"


def _prepare_zoo_model(entry, args):
    """Download one zoo model and convert it once into a facelab checkpoint (unless
    ``--no-convert`` or facelab cannot load it); returns the file to load."""
    path = zoo.download(entry, progress=not args.no_progress, force=args.force)
    if args.no_convert or not entry.supported or entry.architecture.startswith("facenet_pytorch"):
        return path
    if args.force:
        zoo_checkpoint_path(entry.name).unlink(missing_ok=True)
    return zoo_checkpoint(entry.name, progress=not args.no_progress)


def cmd_download(args) -> int:
    if args.list:
        print(f"{'name':<26} {'tasks':<24} {'architecture':<38} {'size':>9}  local")
        for entry in zoo.list_models():
            print(_zoo_row(entry))
        if not (args.names or args.all):
            return EXIT_OK
    unknown = [name for name in args.names if name not in zoo.MODELS]
    if args.all == bool(args.names) or unknown:
        problem = (f"unknown model {', '.join(map(repr, unknown))}; known: {', '.join(zoo.MODELS)}" if unknown
                   else "give model NAMEs or --all (--list shows them)")
        print(f"facelab download: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    entries = zoo.list_models() if args.all else [zoo.get(name) for name in dict.fromkeys(args.names)]
    failures = 0
    for entry in entries:
        if args.all and not entry.supported:
            print(f"skipped {entry.name}: unsupported: {entry.reason}", file=sys.stderr)
            continue
        try:
            path = _prepare_zoo_model(entry, args)
        except FacelabError as exc:
            failures += 1
            report_failure(entry.name, strip_name(entry.name, exc))
            continue
        print(f"{entry.name}: {path}")
        if not entry.supported:
            print(f"facelab: note: {entry.name} is downloaded, but facelab cannot load it: {entry.reason}",
                  file=sys.stderr)
    return EXIT_INPUT_FAILED if failures else EXIT_OK

