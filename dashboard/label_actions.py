"""The one label-action layer of the UI: how a control runs a label edit and reports it.

**Expectations are fixed when the control is drawn.** A label edit states the
labels it expects to replace, and core refuses it with ``LabelConflict`` when
another tab changed them meanwhile. That guard only works if the expected labels
are the ones the user *saw*. So a control passes them as widget-callback
arguments (``on_click=…, args=…``), evaluated when the control is drawn; the
callback runs before the next script run and never re-reads the current label.
What the user picks (the new label in a selectbox) is read from the widget's
state in the callback, since changing that widget redraws the control first.

**One way to report.** ``error_message`` turns any ``ImageLabError`` into the
message kind and text shown everywhere: a ``LabelConflict`` is a warning that
starts with "Conflict:", anything else an error. ``show_error`` draws it now
(for code in the script run); ``run_edit``, called from a widget callback,
*flashes* the outcome, and the page draws flashed messages with ``show_flash``
where its actions are (the callback itself runs outside any container).
"""

from __future__ import annotations

import inspect
from typing import Callable

import streamlit as st

from core.errors import ImageLabError
from core.labels import LabelConflict
from dashboard.auth import current_user

NO_LABEL = "(unlabelled)"
FLASH_KEY = "label_flash"
NOTHING_CHANGED = "Nothing to change: the images already have that."


def show_label(label: str | None) -> str:
    """A label as shown to the user: the class name, or "(unlabelled)"."""
    return NO_LABEL if label is None else label


def chosen_label(key: str) -> str | None:
    """The label picked in the selectbox ``key`` (with "(unlabelled)" as ``None``)."""
    choice = st.session_state[key]
    return None if choice == NO_LABEL else choice


# -- reporting -------------------------------------------------------------------------

def error_message(exc: ImageLabError) -> tuple[str, str]:
    """(message kind, text) for an error meant for the user: a conflict is a warning."""
    if isinstance(exc, LabelConflict):
        return "warning", f"Conflict: {exc}"
    return "error", str(exc)


def _draw(kind: str, text: str, where=None) -> None:
    getattr(where if where is not None else st, kind)(text)


def show_error(exc: ImageLabError, where=None) -> None:
    """Report ``exc`` now, in ``where`` (a container or column; default: the page)."""
    _draw(*error_message(exc), where)


def flash(kind: str, text: str) -> None:
    """Keep a message (``kind``: success, info, warning or error) for the next
    ``show_flash``: a widget callback cannot draw where the page wants it."""
    st.session_state.setdefault(FLASH_KEY, []).append((kind, text))


def show_flash(where=None) -> None:
    """Draw (and forget) the messages flashed since the last call."""
    for kind, text in st.session_state.pop(FLASH_KEY, []):
        _draw(kind, text, where)


# -- running an edit -------------------------------------------------------------------

def run_edit(edit: Callable, *args, ok: str = "Saved", then: Callable[[], None] | None = None,
             **kwargs) -> bool:
    """Run the core edit ``edit(*args, **kwargs)`` as the signed-in user, and flash
    the outcome: "<ok>. (action #N)", "nothing to change", or the error (a conflict
    as a warning). ``then`` runs after a successful edit. Returns whether it succeeded.

    Call it from a widget callback whose arguments (the expected labels among them)
    were fixed when the widget was drawn; ``edit_button`` does that for you.
    """
    if "user" not in kwargs and "user" in inspect.signature(edit).parameters:
        kwargs["user"] = current_user()
    try:
        result = edit(*args, **kwargs)
    except ImageLabError as exc:
        flash(*error_message(exc))
        return False
    action = getattr(result, "action_id", None)
    if result is not None and action is None:
        flash("info", NOTHING_CHANGED)
    else:
        flash("success", f"{ok}." + (f" (action #{action})" if action else ""))
    if then is not None:
        then()
    return True


def edit_button(where, label: str, edit: Callable, *args, key: str, ok: str = "Saved",
                then: Callable[[], None] | None = None, kwargs: dict | None = None,
                **button_options) -> None:
    """Draw a button that runs ``edit(*args, **kwargs)`` through ``run_edit``.

    ``args`` and ``kwargs`` (expected labels, image ids, the action the user saw)
    are evaluated *now*, as the button is drawn, and travel with the click.
    ``where``: ``st`` or a container; ``button_options`` go to ``st.button``.
    """
    where.button(label, key=key, on_click=run_edit, args=(edit, *args),
                 kwargs={**(kwargs or {}), "ok": ok, "then": then}, **button_options)
