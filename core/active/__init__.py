"""Active learning: which unlabelled image to label next, and the proof that it pays.

``strategies`` (uncertainty scores, batch selection: random, least-confidence, margin,
entropy, diverse), ``queue`` (the Label page's unlabelled queue ordered by a finished run's
predictions), ``retrain`` (labels since a run; a normal retraining run), ``simulate`` (the
simulated-oracle experiment: strategy against random, labels to reach a target accuracy).
"""
