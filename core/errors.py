"""The one exception type that carries a message meant for the user.

Anything raised as ``ImageLabError`` is shown as-is by the CLI and the
dashboard, without a traceback. Everything else is a bug.
"""


class ImageLabError(Exception):
    """A problem with the user's input or environment, with a clear message."""


class NotFoundError(ImageLabError):
    """A named thing (dataset, sample, run) does not exist."""


class WorkspaceError(ImageLabError):
    """The workspace folder cannot be used (not writable, not a folder...)."""
