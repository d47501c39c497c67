"""Plotly figures built from plain data returned by ``core``."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

SPLIT_COLOURS = {"train": "#4C78A8", "val": "#F58518", "test": "#54A24B"}


def class_balance_figure(per_class: list[dict], title: str = "Images per class and split") -> go.Figure:
    """Stacked bars: one bar per class, stacked by split."""
    df = pd.DataFrame(per_class)
    fig = go.Figure()
    for split, colour in SPLIT_COLOURS.items():
        fig.add_bar(x=df["class"].astype(str) if len(df) else [], y=df[split] if len(df) else [],
                    name=split, marker_color=colour)
    fig.update_layout(barmode="stack", title=title, height=320, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="class", yaxis_title="images", legend_title="split",
                      xaxis=dict(type="category"))
    return fig
