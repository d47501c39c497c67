"""Argument parsing and error handling for ``python -m core``.

Each command group lives in its own module with a ``register(subparsers,
common)`` function; add new groups to ``COMMAND_MODULES``. Handlers are called
as ``func(args, workspace)`` and return an exit code. A parser module imports
nothing heavy: a handler that needs the engine lives in ``core/cli/commands/`` and
is named by string (``set_defaults(func="core.cli.commands.GROUP:cmd_NAME")``),
which ``handler`` imports when the command runs. That is the CLI's one lazy
import, and it keeps ``python -m core --help`` free of torch.

Errors meant for the user (``ImageLabError``) print one clear line — or, with
``--json``, one JSON document ``{"error": ...}`` — and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Callable

from core.errors import ImageLabError
from core.store.workspace import open_workspace

COMMAND_MODULES = [          # in the order of the workflow, as --help lists them
    "core.cli.datasets",
    "core.cli.labels",
    "core.cli.train",
    "core.cli.finetune",
    "core.cli.runs",
    "core.cli.evaluate",
    "core.cli.explore",
    "core.cli.active",
    "core.cli.serve",
]

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m core`` argument parser, with every group of ``COMMAND_MODULES``
    registered."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true",
                        help="print exactly one JSON document on stdout (logs go to stderr)")
    common.add_argument("--home", metavar="PATH",
                        help="workspace folder (default: $IMAGELAB_HOME or ./workspace)")
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="ImageLab's engine on the command line: datasets, labels, training, "
                    "evaluation and deployment, all stored in one workspace folder "
                    "($IMAGELAB_HOME, default ./workspace).",
        epilog="Run `python -m core COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m core`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status (2
    for an ``ImageLabError``, 130 when interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ws = open_workspace(args.home)
        return int(handler(args.func)(args, ws) or 0)
    except ImageLabError as exc:
        _report_error(args, str(exc))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _report_error(args, "interrupted")
        return 130
    except BrokenPipeError:  # e.g. piped into `head`: not an error of ours
        return 0


def handler(func: Callable | str) -> Callable:
    """A command's handler: a function, or ``"module:function"`` imported only now.

    Parser modules name handlers that need the engine by string, so building the
    parser (``--help``, argument errors) never imports torch.
    """
    if callable(func):
        return func
    module, _, name = func.partition(":")
    return getattr(importlib.import_module(module), name)


def _report_error(args, message: str) -> None:
    if getattr(args, "json", False):
        json.dump({"error": message}, sys.stdout)
        sys.stdout.write("\n")
    print(f"error: {message}", file=sys.stderr)
