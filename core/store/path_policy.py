"""Which server paths a user may name: all of them locally, only the data roots on a network.

On a local app (bound to 127.0.0.1) the user owns the machine and may name any path.
In network mode (any other address, password gate on) a signed-in user may name only
paths under the roots in ``$IMAGELAB_DATA_ROOTS`` (``os.pathsep``-separated; none by
default). The check runs on the text before anything on disk is looked at, resolves
symbolic links, refuses every ``..`` and answers one fixed message for everything
outside the roots, so the answer never tells whether such a path exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import ImageLabError

ROOTS_ENV = "IMAGELAB_DATA_ROOTS"
OUTSIDE_ROOTS = ("This path cannot be used: on a network, only files under the data roots "
                 f"set in {ROOTS_ENV} can be read.")


def allowed_roots() -> list[Path]:
    """The data roots from ``$IMAGELAB_DATA_ROOTS``, each resolved (symlinks followed)."""
    raw = os.environ.get(ROOTS_ENV, "")
    roots = []
    for part in raw.split(os.pathsep):
        part = part.strip()
        if part and "\x00" not in part and os.path.isabs(os.path.expanduser(part)):
            roots.append(Path(os.path.realpath(os.path.expanduser(part))))
    return roots


def check_server_path(path: str | os.PathLike, network: bool) -> Path:
    """``path`` as the Path to use; in network mode only if it lies under a data root.

    Locally, returns the path with ``~`` expanded. In network mode, returns the resolved
    path (symlinks followed) when it lies under one of ``allowed_roots()``; a relative
    path, a ``..`` part, a NUL byte or anything outside the roots raises ``ImageLabError``
    with the one message ``OUTSIDE_ROOTS`` — the same whether the path exists or not.
    """
    text = os.fspath(path)
    if not network:
        return Path(text).expanduser()
    if not text or "\x00" in text or ".." in Path(text).parts or not os.path.isabs(text):
        raise ImageLabError(OUTSIDE_ROOTS)
    real = Path(os.path.realpath(text))
    if any(real == root or real.is_relative_to(root) for root in allowed_roots()):
        return real
    raise ImageLabError(OUTSIDE_ROOTS)
