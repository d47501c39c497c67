"""Evaluate page pieces: figures for confusion, ROC/PR, reliability and run curves."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.evaluation.metrics import normalise_rows


def confusion_figure(matrix: list[list[int]], labels: list[str], normalised: bool = False,
                     order: list[int] | None = None) -> go.Figure:
    """Clickable confusion matrix: one square marker per cell (a Heatmap returns no selection).

    Each point carries ``customdata = [true, predicted, count]`` for the click handler.
    ``order``: the classes to show (focus mode), in that order; normalised values stay
    shares of the whole row, so a class whose mistakes go to classes left out is not
    shown as right.
    """
    full = np.asarray(matrix)
    order = order if order is not None else list(range(len(labels)))
    cm = full[np.ix_(order, order)]
    names = [labels[i] for i in order]
    shown = normalise_rows(full)[np.ix_(order, order)] if normalised else cm.astype(float)
    peak = shown.max() if shown.size and shown.max() > 0 else 1.0
    xs, ys, colours, texts, custom = [], [], [], [], []
    for i, t in enumerate(names):
        for j, p in enumerate(names):
            xs.append(p)
            ys.append(t)
            colours.append(shown[i, j] / peak)
            texts.append(f"{shown[i, j]:.2f}" if normalised else str(int(cm[i, j])))
            custom.append([t, p, int(cm[i, j])])
    n = len(names)
    cell, margin = confusion_cell(names)
    size = max(4, int(cell * 0.92))                  # a thin gap between neighbouring squares
    fig = go.Figure(go.Scatter(
        x=xs, y=ys, mode="markers+text" if n <= 25 else "markers",
        marker=dict(symbol="square", size=size, color=colours, colorscale="Blues", cmin=0, cmax=1,
                    line=dict(width=0.5, color="#ccc")),
        text=texts, textfont=dict(size=max(8, min(20, size // 3))), customdata=custom,
        hovertemplate="true %{customdata[0]} → predicted %{customdata[1]}: "
                      "%{customdata[2]} images<extra></extra>"))
    # sized to its classes: the plot area is n cells a side, the margins hold the labels
    fig.update_layout(width=margin["l"] + margin["r"] + n * cell,
                      height=margin["t"] + margin["b"] + n * cell, margin=margin,
                      xaxis=dict(title="predicted", type="category", side="top",
                                 categoryorder="array", categoryarray=names,
                                 tickangle=0 if n <= 10 else -90),
                      yaxis=dict(title="true", type="category", autorange="reversed",
                                 categoryarray=names, categoryorder="array"),
                      clickmode="event+select", dragmode=False)
    return fig


def confusion_cell(names: list[str]) -> tuple[int, dict]:
    """(side of one cell in px, the margins) of a confusion matrix of ``names``: cells of
    at most 110 px (2 classes) down to 6 px (100 classes), margins wide enough for the
    class names and the axis titles."""
    cell = max(6, min(110, 560 // max(len(names), 1)))
    label = 7 * max((len(str(c)) for c in names), default=1)     # px, at the tick font
    top = 40 + (label if len(names) > 10 else 16)                 # names turn upright above 10
    return cell, dict(l=40 + label, r=10, t=top, b=10)


def curve_figure(curves: dict, x_key: str, y_key: str, title: str, x_title: str, y_title: str,
                 score_key: str, diagonal: bool = False) -> go.Figure:
    fig = go.Figure()
    for name, c in curves.items():
        if not c:
            continue
        fig.add_scatter(x=c[x_key], y=c[y_key], mode="lines",
                        name=f"{name} ({score_key.split('_')[0]} {c[score_key]:.3f})")
    if diagonal:
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                        showlegend=False)
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=380,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def reliability_figure(calibrated: dict, uncalibrated: dict | None = None) -> go.Figure:
    fig = go.Figure()
    for name, cal in (("calibrated", calibrated), ("raw", uncalibrated)):
        if not cal:
            continue
        bins = [b for b in cal["bins"] if b["count"]]
        fig.add_scatter(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins],
                        mode="lines+markers", name=f"{name} (ECE {cal['ece']:.3f})",
                        text=[f"{b['count']} images" for b in bins])
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                    name="perfect")
    fig.update_layout(title="Reliability", xaxis_title="confidence", yaxis_title="accuracy",
                      height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def run_curves_figure(histories: dict[str, list[dict]], key: str, title: str) -> go.Figure:
    """Overlay one per-epoch metric of several runs."""
    fig = go.Figure()
    for run_id, records in histories.items():
        pts = [(r["epoch"], r[key]) for r in records if key in r and "epoch" in r]
        if pts:
            fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                            name=run_id)
    fig.update_layout(title=title, xaxis_title="epoch", height=340,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig
