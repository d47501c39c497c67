"""The workspace: one folder holding a SQLite database and the user's files."""

from core.store.workspace import Workspace, open_workspace

__all__ = ["Workspace", "open_workspace"]
