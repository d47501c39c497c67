"""Classification metrics from predicted probabilities, in plain numpy.

Everything takes ``y_true`` (N,) integer class indices and ``probs`` (N, K)
probabilities over the K classes of the label list, and returns plain Python
data (lists and floats) ready for JSON.

Checked in tests against scikit-learn on random predictions; hand-made cases
pin the edge cases (a class never predicted, a class absent from the split,
a single class).
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    idx = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (rows with no samples stay 0)."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the ``k`` most probable (0.0 for no rows)."""
    if len(y_true) == 0:
        return 0.0
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, kth=k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def informative_top_k(top_k: dict, num_classes: int) -> dict[int, float]:
    """The top-k accuracies worth showing, by k: k > 1 and below the class count.

    ``top_k`` is a report's ``top_k_accuracy`` (keys are k as strings). Top-k over
    k >= the class count is 1.0 whatever the model does, and top-1 is the accuracy."""
    return {int(k): v for k, v in top_k.items() if 1 < int(k) < num_classes}


def per_class_report(cm: np.ndarray, labels: list[str]) -> dict:
    """Per-class precision, recall, F1 and support, with macro and weighted averages.

    A class never predicted has precision 0; a class with no samples has recall 0
    and is left out of the macro average (as scikit-learn's ``labels=present``
    would) but reported with support 0.
    """
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    rows = [{"class": labels[i], "precision": float(precision[i]), "recall": float(recall[i]),
             "f1": float(f1[i]), "support": int(support[i])} for i in range(len(labels))]
    present = support > 0
    total = support.sum()

    def avg(values: np.ndarray, weights: np.ndarray | None) -> float:
        if not present.any():
            return 0.0
        if weights is None:
            return float(values[present].mean())
        return float((values * weights).sum() / total) if total else 0.0

    return {
        "per_class": rows,
        "macro": {"precision": avg(precision, None), "recall": avg(recall, None),
                  "f1": avg(f1, None)},
        "weighted": {"precision": avg(precision, support), "recall": avg(recall, support),
                     "f1": avg(f1, support)},
    }


def binary_curve_points(scores: np.ndarray, positives: np.ndarray):
    """Cumulative TP/FP counts at each distinct score threshold (descending)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positives = scores[order], positives[order].astype(float)
    distinct = np.where(np.diff(scores))[0]
    thresholds_idx = np.r_[distinct, len(scores) - 1]
    tps = np.cumsum(positives)[thresholds_idx]
    fps = (1 + thresholds_idx) - tps
    return tps, fps, scores[thresholds_idx]


def roc_curve(scores: np.ndarray, positives: np.ndarray) -> dict | None:
    """One-vs-rest ROC with AUC; None when the class has no positives or no negatives."""
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    tps, fps, thr = binary_curve_points(scores, positives)
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": np.r_[np.inf, thr].tolist(),
            "auc": float(np.trapezoid(tpr, fpr))}


def pr_curve(scores: np.ndarray, positives: np.ndarray) -> dict | None:
    """One-vs-rest precision–recall with average precision (step-wise AUC)."""
    n_pos = int(positives.sum())
    if n_pos == 0:
        return None
    tps, fps, thr = binary_curve_points(scores, positives)
    precision = tps / (tps + fps)
    recall = tps / n_pos
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return {"precision": np.r_[precision[::-1], 1.0].tolist(),
            "recall": np.r_[recall[::-1], 0.0].tolist(), "thresholds": thr[::-1].tolist(),
            "average_precision": ap}


def reliability(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> dict:
    """Reliability-diagram bins and the expected calibration error (ECE)."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    out, ece, n = [], 0.0, len(y_true)
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        acc = float(correct[mask].mean()) if count else 0.0
        avg_conf = float(conf[mask].mean()) if count else 0.0
        if count:
            ece += count / n * abs(acc - avg_conf)
        out.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
                    "accuracy": acc, "confidence": avg_conf})
    return {"bins": out, "ece": float(ece)}


def accuracy_coverage(y_true: np.ndarray, probs: np.ndarray, points: int = 51) -> dict:
    """For an abstain threshold t: coverage (share answered) and accuracy on those."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    thresholds = np.linspace(0.0, 1.0, points)
    coverage, accuracy = [], []
    for t in thresholds:
        answered = conf >= t
        coverage.append(float(answered.mean()) if len(conf) else 0.0)
        accuracy.append(float(correct[answered].mean()) if answered.any() else 1.0)
    return {"threshold": thresholds.tolist(), "coverage": coverage, "accuracy": accuracy}


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, computed stably (max subtracted)."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature minimising validation NLL (golden-section search on log T)."""
    def nll(log_t: float) -> float:
        p = softmax(logits, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(p[np.arange(len(y_true)), y_true], 1e-12, 1.0))))

    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def classification_report(y_true: np.ndarray, probs: np.ndarray, labels: list[str],
                          top_k: tuple[int, ...] = (1, 3, 5)) -> dict:
    """The full report stored per run and split, and printed by ``core evaluate --json``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = len(labels)
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, k)
    report = per_class_report(cm, labels)
    eps = 1e-12
    losses = -np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)) if len(y_true) else []
    roc, pr = {}, {}
    for i, name in enumerate(labels):
        positives = y_true == i
        roc[name] = roc_curve(probs[:, i], positives)
        pr[name] = pr_curve(probs[:, i], positives)
    return {
        "num_samples": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "top_k_accuracy": {str(t): top_k_accuracy(y_true, probs, t) for t in top_k if t == 1 or t < k},
        **report,
        "confusion_matrix": {"labels": list(labels), "matrix": cm.tolist()},
        "mean_loss": float(np.mean(losses)) if len(y_true) else 0.0,
        "calibration": reliability(y_true, probs),
        "roc": roc,
        "pr": pr,
        "accuracy_coverage": accuracy_coverage(y_true, probs),
    }
