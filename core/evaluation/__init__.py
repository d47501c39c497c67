"""Evaluation: metrics from predictions, calibration, and (later) Grad-CAM."""
