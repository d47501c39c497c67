"""``python -m core runs list|show|stop|resume``: manage training runs.

The parsers; the handlers are in ``core/cli/commands/runs.py``.
"""

from __future__ import annotations


def register(sub, common) -> None:
    """Add the ``runs list|show|stop|resume`` commands to the subparsers ``sub``, sharing the
    ``common`` options."""
    p = sub.add_parser("runs", help="list, show, stop and resume training runs",
                       description="Training runs in the workspace (background and foreground).")
    rsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = rsub.add_parser("list", parents=[common], help="runs, newest first, with status")
    q.add_argument("--dataset", help="only runs on this dataset")
    q.add_argument("--limit", type=int, default=50)
    q.set_defaults(func="core.cli.commands.runs:cmd_list")
    q = rsub.add_parser("show", parents=[common], help="one run: config, status, metrics, log")
    q.add_argument("run_id")
    q.set_defaults(func="core.cli.commands.runs:cmd_show")
    q = rsub.add_parser("stop", parents=[common],
                        help="stop a run at its next step (it saves a checkpoint)")
    q.add_argument("run_id")
    q.add_argument("--wait", action="store_true", help="wait until it has stopped")
    q.set_defaults(func="core.cli.commands.runs:cmd_stop")
    q = rsub.add_parser("resume", parents=[common],
                        help="resume a stopped or failed run from its last checkpoint")
    q.add_argument("run_id")
    q.set_defaults(func="core.cli.commands.runs:cmd_resume")
