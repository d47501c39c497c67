"""Column headings and formats for run tables (``core.store.run_paths.summary_row``
rows), shared by the Home and Train pages; free of torch so the Home page stays light."""

from __future__ import annotations

import streamlit as st


def run_columns() -> dict:
    """``st.dataframe`` column config for ``summary_row`` tables."""
    number = st.column_config.NumberColumn
    return {"val_accuracy": number("val accuracy", format="percent"),
            "best_val_accuracy": number("best val (best.pt)", format="percent"),
            "images_per_sec": number("images/s")}
