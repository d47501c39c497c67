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


def training_curves_figure(epochs: list[dict], steps: list[dict], height: int = 320) -> go.Figure:
    """Three panels from a run's metrics: loss, accuracy and learning rate.

    ``steps`` are the run's step records (x = fractional epoch), ``epochs`` its epoch records.
    """
    from plotly.subplots import make_subplots
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "accuracy", "learning rate"),
                        horizontal_spacing=0.07)
    spe = max([s["step"] for s in steps if s["epoch"] == 0] or [1])
    xs = [s["epoch"] + s["step"] / spe for s in steps]
    if steps:
        fig.add_scatter(x=xs, y=[s["loss"] for s in steps], name="train loss (step)", mode="lines",
                        line=dict(color="#9ecae9", width=1), row=1, col=1)
        fig.add_scatter(x=xs, y=[s["lr"] for s in steps], name="learning rate", mode="lines",
                        line=dict(color="#54A24B"), row=1, col=3)
    if epochs:
        ex = [e["epoch"] + 1 for e in epochs]
        fig.add_scatter(x=ex, y=[e["train_loss"] for e in epochs], name="train loss",
                        mode="lines+markers", line=dict(color=SPLIT_COLOURS["train"]), row=1, col=1)
        fig.add_scatter(x=ex, y=[e["val_loss"] for e in epochs], name="val loss",
                        mode="lines+markers", line=dict(color=SPLIT_COLOURS["val"]), row=1, col=1)
        fig.add_scatter(x=ex, y=[e["train_accuracy"] for e in epochs], name="train accuracy",
                        mode="lines+markers", line=dict(color=SPLIT_COLOURS["train"]), row=1, col=2)
        fig.add_scatter(x=ex, y=[e["val_accuracy"] for e in epochs], name="val accuracy",
                        mode="lines+markers", line=dict(color=SPLIT_COLOURS["val"]), row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.25), uirevision="keep")
    return fig
