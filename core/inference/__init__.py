"""Inference: loading trained models, prediction, export, serving."""
