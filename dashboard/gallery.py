"""A thumbnail grid for galleries (cached JPEG thumbnails, never full images)."""

from __future__ import annotations

import streamlit as st

from core.data.gallery import ImageRow


def thumbnail_grid(rows: list[ImageRow], columns: int = 8) -> None:
    if not rows:
        st.caption("No images match.")
        return
    cols = st.columns(columns)
    for k, row in enumerate(rows):
        with cols[k % columns]:
            label = row.label if row.label is not None else "(unlabelled)"
            if row.thumb.exists():
                st.image(str(row.thumb), caption=f"{label} · {row.split}", width="stretch")
            else:
                st.caption(f"#{row.id} {label} (no thumbnail)")
