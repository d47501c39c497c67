"""Display helpers shared by the Label page's modes: escaping user text for
markdown labels, class choices with their descriptions, the label-event table."""

from __future__ import annotations

import re
import time

import pandas as pd

from dashboard.label_actions import NO_LABEL, show_label

ALL = "(all)"

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


def md_escape(text: str) -> str:
    """Markdown-escape user text so it renders literally (labels render markdown)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def label_choice(descriptions: dict[str, str]):
    """A selectbox ``format_func`` showing each class with its description, if any."""
    return lambda n: n if n == NO_LABEL or not descriptions.get(n) else f"{n} — {descriptions[n]}"


def when(ts: float) -> str:
    """A timestamp as local date and time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def events_frame(events) -> pd.DataFrame:
    """Label events (``core.labels.history.LabelEvent``) as a table, newest first."""
    return pd.DataFrame([{"version": e.version, "when": when(e.created_at), "who": e.user,
                          "action": f"#{e.action_id} {e.kind}", "image": f"#{e.image_id}",
                          "old": show_label(e.old_label), "new": show_label(e.new_label),
                          "undone": "yes" if e.undone else ""} for e in events],
                        columns=["version", "when", "who", "action", "image", "old", "new", "undone"])
