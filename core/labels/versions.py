"""Label versions as people read them: ``v12 · 3 edits since the last run``.

Inside, a label version is the id of a dataset's last label event
(``core.data.catalog.label_version``): what runs record and what revert takes. Those ids
are shared by every dataset of the workspace, so they are large and jump ("label version
10195"), and they mean nothing to a user.

People see the version *number* instead: how many edits of this dataset led up to the
version. An edit is one action that changed labels (an import, a relabel, a bulk relabel,
an undo, a revert — each is one edit however many images it touched), so a dataset's
import is v1 and every later edit adds one. "Edits since the last run" counts the edits
after the labels the dataset's newest run trained on: what retraining would add.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.data.catalog import get_dataset_id, label_version
from core.store.workspace import Workspace

VERSION_HELP = ("A label version is the dataset's labels after an edit: the import makes v1, "
                "and each edit that changes labels (relabel, undo, revert…) adds one. Every run "
                "records the version it trained on.")

# One row per action of the dataset that changed labels: (action id, its last label event).
_EDITS = ("SELECT e.action_id, MAX(e.id) AS version FROM label_events e "
          "JOIN actions a ON a.id = e.action_id WHERE a.dataset_id = ? GROUP BY e.action_id")


@dataclass(frozen=True)
class LabelVersion:
    """A dataset's label version: ``version`` (the internal id, the last label event's),
    ``number`` (the user-facing vN: edits up to it), ``edits_since_run`` (edits after the
    labels of the dataset's newest run; ``None`` while it has no run)."""
    version: int
    number: int
    edits_since_run: int | None

    @property
    def name(self) -> str:
        """``v12`` (``v0`` for a dataset with no label yet)."""
        return f"v{self.number}"

    @property
    def since_run(self) -> str:
        """``3 edits since the last run`` (``no edits since the last run``, ``no run yet``)."""
        n = self.edits_since_run
        return ("no run yet" if n is None else "no edits since the last run" if n == 0 else
                f"{n} edit{'s' if n != 1 else ''} since the last run")

    @property
    def text(self) -> str:
        """``v12 · 3 edits since the last run``."""
        return f"{self.name} · {self.since_run}"


def version_numbers(ws: Workspace, dataset: str, versions: list[int]) -> dict[int, int]:
    """The user-facing number of each internal label ``versions`` of ``dataset``: how many of
    its edits had been made by then (0 before any label)."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        ends = sorted(r["version"] for r in conn.execute(_EDITS, (ds_id,)))
    return {int(v): sum(1 for e in ends if e <= v) for v in versions}


def label_version_info(ws: Workspace, dataset: str, version: int | None = None) -> LabelVersion:
    """``dataset``'s label version ``version`` (default: the current one) with its number and
    the edits made after the labels of the dataset's newest run (up to ``version``)."""
    ds_id = get_dataset_id(ws, dataset)
    with ws.db() as conn:
        current = label_version(conn, ds_id) if version is None else int(version)
        ends = [r["version"] for r in conn.execute(_EDITS, (ds_id,))]
        run = conn.execute("SELECT label_version FROM runs WHERE dataset_id = ? AND "
                           "label_version IS NOT NULL ORDER BY created_at DESC LIMIT 1",
                           (ds_id,)).fetchone()
    since = None if run is None else sum(1 for e in ends if run[0] < e <= current)
    return LabelVersion(current, sum(1 for e in ends if e <= current), since)
