"""Column headings and formats for run tables (``core.store.run_paths.summary_row``
rows), shared by the Home and Train pages; free of torch so the Home page stays light.

Each accuracy names its checkpoint: ``best.pt`` (the default everywhere) first."""

from __future__ import annotations

import streamlit as st

from core.store.run_paths import checkpoint_text


def run_columns() -> dict:
    """``st.dataframe`` column config for ``summary_row`` tables."""
    number = st.column_config.NumberColumn
    return {"best_val_accuracy": number("val accuracy · best.pt", format="percent",
                                        help=checkpoint_text("best")),
            "best_epoch": number("best epoch", help="the epoch best.pt was saved at"),
            "last_val_accuracy": number("final epoch · last.pt", format="percent",
                                        help=checkpoint_text("last")),
            "images_per_sec": number("images/s")}
