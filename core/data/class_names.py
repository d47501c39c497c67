"""Class names: one rule for names a user types and names that come with the data.

Every class name is Unicode NFC-normalised and stripped of surrounding space, so the
"café" of a macOS folder (NFD) and the "café" typed on the Label page (NFC) are one
class, not two look-alikes. A valid name is not blank, has at most ``MAX_NAME``
characters and holds no control characters (a newline would break CSV exports and
reports). Typed names that break the rule are refused with the reason; images whose
folder or manifest names such a class are skipped with it, in the import report.
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 100


def normalise_class_name(name: str) -> str:
    """``name`` in Unicode NFC form, stripped of surrounding space."""
    return unicodedata.normalize("NFC", str(name)).strip()


def class_name_problem(name: str) -> str | None:
    """Why ``name`` (already normalised) cannot be a class name, or None if it can."""
    if not name:
        return "the class name is blank"
    if len(name) > MAX_NAME:
        return f"the class name has {len(name)} characters (at most {MAX_NAME})"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "the class name holds a control character (a newline or tab)"
    if any(unicodedata.category(ch) == "Cs" for ch in name):
        return "the class name is not valid text (a folder name with bytes that are not UTF-8)"
    return None


def checked_label(label: str | None) -> tuple[str | None, str | None]:
    """(the label to store, a problem) for a label that came with the data.

    ``None`` or an empty string means "no label" (imported unlabelled); a name of only
    spaces is a blank class name, reported rather than silently made unlabelled."""
    if label is None or str(label) == "":
        return None, None
    name = normalise_class_name(label)
    problem = class_name_problem(name)
    return (None, f"{problem}: {str(label)[:40]!r}") if problem else (name, None)
