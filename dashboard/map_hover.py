"""The Explore map's hover thumbnail.

``st.plotly_chart`` returns selections, not hovers, and plotly's hover label cannot hold
an image. So a small ``st.components.v2`` component (``map_hover.js``, no frontend build,
no network) finds the map that Streamlit drew — by its ``layout.meta``, ``MAP_META`` —
and listens to plotly.js's own ``plotly_hover`` events. A hover sets the component's
``hovered`` state; the fragment that mounts the component reruns alone (not the page,
whose map at 100k points costs a few hundred ms), reads that one image's thumbnail and
sends it back as a data URI, which the script shows above the mouse and keeps for the
next hover of the same image. Where the component cannot find the chart the map still
has plotly's text hover (id, name, label, split).
"""

from __future__ import annotations

import base64
from functools import partial
from pathlib import Path

import streamlit as st

from core.data.image_rows import ImageRow, rows_by_id
from core.data.thumbnails import THUMB_SIZE
from dashboard.embedding_map import MAP_META

KEY = "explore_map_hover"
_THUMB = f"{KEY}_thumb"

_component = st.components.v2.component(
    "imagelab_map_hover", js=(Path(__file__).with_name("map_hover.js")).read_text())


def hover_thumbnail(row: ImageRow) -> dict | None:
    """What the hover shows for one image: its thumbnail as a data URI, the size to draw
    it (longer side ``THUMB_SIZE``), whether to keep its pixels crisp (a small original
    scaled up) and a caption. None when the image's file cannot be read."""
    try:
        raw = row.thumb.read_bytes()
    except OSError:
        return None
    # A thumbnail is a cached JPEG or the stored PNG/JPEG original (core.data.thumbnails).
    mime = "image/png" if raw[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    w, h = max(1, row.width), max(1, row.height)
    scale = THUMB_SIZE / max(w, h)
    return {"id": row.id, "src": f"data:{mime};base64,{base64.b64encode(raw).decode()}",
            "width": max(1, round(w * scale)), "height": max(1, round(h * scale)),
            "pixelated": max(w, h) < THUMB_SIZE, "caption": f"#{row.id} {row.original_name}"}


@st.fragment
def hover_thumbnails(ws, dataset: str) -> None:
    """Mount the hover component for the map drawn with ``layout.meta == MAP_META``."""
    _component(key=KEY, data={"meta": MAP_META, "thumb": st.session_state.get(_THUMB)},
               default={"hovered": None}, height=0,
               on_hovered_change=partial(_fetch, ws, dataset))


def _fetch(ws, dataset: str) -> None:
    """The hovered image's thumbnail, for the fragment's rerun to send."""
    image_id = (st.session_state.get(KEY) or {}).get("hovered")
    if image_id is None:
        return
    row = rows_by_id(ws, [int(image_id)], dataset).get(int(image_id))
    tip = hover_thumbnail(row) if row is not None else None
    # Kept like a picture, so the hover says so at once instead of waiting for one.
    st.session_state[_THUMB] = tip or {"id": int(image_id), "src": None,
                                       "caption": f"#{image_id}: no picture (file unreadable)"}
