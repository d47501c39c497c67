"""What a selection on the Explore map takes, and the gallery where it is fixed.

**A region selects every point inside it.** The map may draw a decimated subset, so the
points plotly reports for a box or lasso are not the selection: each box (a polygon of four
corners) and lasso is tested against *all* the map's points with ``points_in_polygon``. A
click (no region) selects the clicked point.

**The gallery edits through the one label-action layer.** The selection's labels are read
when the gallery is drawn and travel with the buttons as the expected labels
(``dashboard.label_actions``): relabel, move to a split, exclude or include are each one
action, and Undo names the action it undoes, so a stale tab gets a conflict, never a
surprise.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.image_rows import rows_by_id
from core.embeddings.projection import points_in_polygon
from core.labels import history as label_history
from core.labels import relabel
from dashboard.label_actions import NO_LABEL, chosen_label, edit_button, run_edit, show_label

STATE = "explore_selection"
PAGE = 48


def region_ids(selection: dict, points: pd.DataFrame) -> list[int] | None:
    """The image ids inside the boxes and lassos of a plotly ``selection`` (over every
    point of ``points``, not only those drawn), or None when it has no region."""
    polygons = []
    for box in selection.get("box") or []:
        (x0, x1), (y0, y1) = box["x"][:2], box["y"][:2]
        polygons.append(([x0, x1, x1, x0], [y0, y0, y1, y1]))
    for lasso in selection.get("lasso") or []:
        polygons.append((list(lasso["x"]), list(lasso["y"])))
    if not polygons:
        return None
    ids: set[int] = set()
    for xs, ys in polygons:
        ids.update(int(i) for i in points_in_polygon(points, xs, ys))
    return sorted(ids)


def clicked_ids(selection: dict) -> list[int]:
    """The image ids of the points a plotly ``selection`` reports (a click)."""
    out = []
    for point in selection.get("points") or []:
        data = point.get("customdata")
        if data is not None:
            out.append(int(data[0] if isinstance(data, (list, tuple)) else data))
    return sorted(set(out))


def take_selection(event, points: pd.DataFrame) -> list[int]:
    """Keep a new map selection in the session (it outlives the edits that redraw the map)
    and return the selected image ids."""
    selection = dict((event or {}).get("selection") or {})
    sign = repr((selection.get("box"), selection.get("lasso"), selection.get("point_indices")))
    chosen = any(selection.get(part) for part in ("box", "lasso", "points"))
    # A redrawn map (after an edit) may report an empty selection: keep the last one.
    if chosen and sign != st.session_state.get(f"{STATE}_sign"):
        st.session_state[f"{STATE}_sign"] = sign
        ids = region_ids(selection, points)
        st.session_state[STATE] = ids if ids is not None else clicked_ids(selection)
        st.session_state[f"{STATE}_page"] = 1
    return list(st.session_state.get(STATE, []))


def selection_gallery(ws, dataset: str, ids: list[int], labels: dict[int, str | None],
                      classes: list[str]) -> list[int]:
    """Thumbnails of the selected images (a page at a time) and the bulk edits; returns
    the ids on the page shown. ``labels``: every image's label as read for this run."""
    expected = {i: labels.get(i) for i in ids}           # the labels the user sees now
    pages = max(1, -(-len(ids) // PAGE))
    c1, c2 = st.columns([3, 1])
    c1.markdown(f"**{len(ids):,} images selected**")
    c2.button("Clear selection", key="explore_clear", on_click=_clear)
    page = st.number_input("Page", 1, pages, key=f"{STATE}_page") if pages > 1 else 1
    page_ids = ids[(page - 1) * PAGE: page * PAGE]
    rows = rows_by_id(ws, page_ids, dataset)
    cols = st.columns(8)
    for k, image_id in enumerate(page_ids):
        row = rows.get(image_id)
        with cols[k % 8]:
            if row is not None and row.thumb.exists():
                st.image(str(row.thumb), width="stretch")
            if row is not None:
                st.caption(f"#{image_id} · {show_label(row.label)} · {row.split}"
                           + (" · excluded" if row.excluded else ""))
    n, id_tuple = len(ids), tuple(ids)
    b1, b2, b3 = st.columns(3)
    with b1:
        st.selectbox("Set label to", classes + [NO_LABEL], key="explore_bulk_label")
        st.button(f"Set label of {n:,} images", key="explore_bulk_set", type="primary",
                  on_click=_set_label, args=(ws, dataset, expected))
    with b2:
        st.selectbox("Move to split", ["train", "val", "test"], key="explore_bulk_split")
        st.button(f"Move {n:,} images", key="explore_bulk_move", on_click=_move,
                  args=(ws, dataset, id_tuple))
    with b3:
        edit_button(st, f"Exclude {n:,} from training", relabel.set_excluded, ws, dataset,
                    id_tuple, True, key="explore_bulk_exclude", ok="Excluded")
        edit_button(st, f"Include {n:,} again", relabel.set_excluded, ws, dataset, id_tuple,
                    False, key="explore_bulk_include", ok="Included")
    return page_ids


def undo_button(ws, dataset: str) -> None:
    """Undo the dataset's last action, naming it (the action travels with the click)."""
    last = label_history.last_undoable_action(ws, dataset)
    if last is None:
        st.caption("Nothing to undo.")
        return
    edit_button(st, f"Undo #{last.id}: {last.description}", label_history.undo_last_action,
                ws, dataset, kwargs={"expected_action": last.id}, key="explore_undo",
                ok=f"Undone #{last.id}", icon=":material/undo:")


def _clear() -> None:
    st.session_state[STATE] = []


def _set_label(ws, dataset: str, expected: dict[int, str | None]) -> None:
    """Give the drawn selection (id → label shown) the label picked in "Set label to"."""
    new = chosen_label("explore_bulk_label")
    run_edit(relabel.set_label, ws, dataset, expected, new,
             ok=f"Saved: {len(expected):,} images set to {show_label(new)}")


def _move(ws, dataset: str, ids: tuple[int, ...]) -> None:
    run_edit(relabel.move_to_split, ws, dataset, ids, st.session_state.explore_bulk_split,
             ok=f"Moved {len(ids):,} images to {st.session_state.explore_bulk_split}")
