"""The Demo page's Export section: export a run (ONNX, ONNX int8, .pt2), checked from files,
and a table of every export's figures by format and precision.

The work is ``core.inference.run_export.export_run``; the figures are read back from
``exports/<run_id>/export_check.json`` (``read_checks``), so the table survives reloads.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.errors import ImageLabError
from core.inference.run_export import export_run, read_checks
from core.units import format_size
from dashboard.label_actions import show_error

CHOICES = {"onnx-fp32": ("onnx", "fp32", "ONNX"), "onnx-int8": ("onnx", "int8", "ONNX int8"),
           "pt2-fp32": ("pt2", "fp32", "torch.export (.pt2)")}
FORMAT_NAMES = {"onnx": "ONNX", "pt2": "torch.export (.pt2)"}


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _ms(lat: dict, batch: str) -> str:
    t = lat.get(batch)
    return "–" if not t else f"{t['p50_ms']:.2f} / {t['p95_ms']:.2f}"


def export_rows(checks: dict) -> list[dict]:
    """One row per export and int8 variant: format, precision, status, size, p50/p95 latency
    at batch 1 and 32, validation accuracy and top-1 agreement (with the app from files for a
    kept export; with fp32 for an int8 variant)."""
    rows = []
    for r in checks.values():
        fmt = FORMAT_NAMES.get(r.get("format"), r.get("format"))
        variants = (r.get("int8") or {}).get("variants", {})
        status = ("kept (override)" if r.get("override") else "kept") if r.get("kept") \
            else "refused"
        parity = r.get("parity") or {}
        if variants and not r.get("kept"):      # a refused int8: its variants' rows say why
            parity = {}
        else:
            rows.append({"format": fmt, "precision": r.get("precision", "fp32")
                         + (f" ({r['quantization']})" if r.get("quantization") else ""),
                         "status": status, "size": format_size(r.get("size_bytes", 0)),
                         "latency b1 p50/p95 ms": _ms(r.get("latency") or {}, "b1"),
                         "latency b32 p50/p95 ms": _ms(r.get("latency") or {}, "b32"),
                         "accuracy (val)": _pct(r.get("accuracy")),
                         "top-1 agreement": _pct(parity.get("top1_agreement"))
                         + (" with the app, from files" if parity else "")})
        for mode, v in variants.items():
            if mode == r.get("quantization") and parity:
                continue           # the kept variant's row is above
            rows.append({"format": fmt, "precision": f"int8 ({mode})",
                         "status": "refused: " + v["refusal"] if v.get("refusal")
                         else "within the limits (not kept)",
                         "size": format_size(v["size_bytes"]),
                         "latency b1 p50/p95 ms": _ms(v["latency"], "b1"),
                         "latency b32 p50/p95 ms": _ms(v["latency"], "b32"),
                         "accuracy (val)": _pct(v["accuracy"]),
                         "top-1 agreement": _pct(v["top1_agreement"]) + " with fp32"})
    return rows


def export_section(ws, run_id: str) -> None:
    """Export and check, the bundle's download, and the table of this run's exports."""
    st.header("Export")
    st.caption("The exported model takes uint8 images at its size and returns calibrated "
               "probabilities (scaling, mean/std, temperature and softmax inside). Before it "
               "is kept, its bundle's predict.py runs on the validation files and must agree "
               "with the app on every answer; int8 may lose at most 1 point of accuracy and "
               "change at most 2% of answers.")
    e1, e2 = st.columns([1, 3])
    choice = e1.radio("Format", list(CHOICES), key="export_fmt",
                      format_func=lambda c: CHOICES[c][2])
    fmt, precision, _ = CHOICES[choice]
    accept = e1.checkbox("Keep int8 even outside the limits", key="export_accept_loss",
                         disabled=precision != "int8",
                         help="Recorded as an override in export_check.json")
    if e1.button("Export and check", key="export_go", type="primary"):
        try:
            with st.spinner("Exporting, then running its bundle on the validation files…"):
                result = export_run(ws, run_id, fmt, precision=precision, accept_loss=accept)
        except ImageLabError as exc:
            show_error(exc, e2)
        else:
            p = result.parity
            e2.success(f"Checked from files: {p['images']} images of the {p['split']} split "
                       f"through the bundle's predict.py agree with the app on "
                       f"{100 * p['top1_agreement']:.2f}% of answers; max |Δ probability| "
                       f"{p['max_prob_diff']:.2e}.")
            e2.download_button("Download the bundle (model, classes, preprocessing, "
                               "predict.py)", Path(result.bundle).read_bytes(),
                               f"{run_id}-{result.name}-bundle.zip", key="export_dl")
    rows = export_rows(read_checks(ws, run_id))
    if rows:
        st.table(pd.DataFrame(rows).set_index("format"))
    else:
        st.caption("No export of this run yet.")
