"""Metrics checked against scikit-learn, plus hand-made edge cases."""

import numpy as np
import pytest
from sklearn import metrics as skm

from core.evaluation.metrics import (
    accuracy_coverage,
    classification_report,
    confusion_matrix,
    fit_temperature,
    informative_top_k,
    pr_curve,
    reliability,
    roc_curve,
    softmax,
    top_k_accuracy,
)


def random_predictions(n=500, k=6, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += rng.uniform(0, 3, n)  # better than chance, not perfect
    return y, softmax(logits), logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_on_random_predictions(seed):
    y, p, _ = random_predictions(seed=seed)
    labels = [f"c{i}" for i in range(p.shape[1])]
    rep = classification_report(y, p, labels)
    pred = p.argmax(1)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert np.array_equal(rep["confusion_matrix"]["matrix"], skm.confusion_matrix(y, pred))
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, zero_division=0)
    for i, row in enumerate(rep["per_class"]):
        assert row["precision"] == pytest.approx(prec[i])
        assert row["recall"] == pytest.approx(rec[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == sup[i]
    for avg in ("macro", "weighted"):
        sp, sr, sf, _ = skm.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert rep[avg]["precision"] == pytest.approx(sp)
        assert rep[avg]["recall"] == pytest.approx(sr)
        assert rep[avg]["f1"] == pytest.approx(sf)
    assert rep["top_k_accuracy"]["3"] == pytest.approx(skm.top_k_accuracy_score(y, p, k=3))
    assert rep["mean_loss"] == pytest.approx(skm.log_loss(y, p, labels=range(p.shape[1])))
    for i, name in enumerate(labels):
        pos = y == i
        assert rep["roc"][name]["auc"] == pytest.approx(skm.roc_auc_score(pos, p[:, i]))
        assert rep["pr"][name]["average_precision"] == pytest.approx(
            skm.average_precision_score(pos, p[:, i]))


def test_roc_points_match_sklearn():
    y, p, _ = random_predictions(n=200, k=3, seed=5)
    pos = y == 1
    ours = roc_curve(p[:, 1], pos)
    fpr, tpr, _ = skm.roc_curve(pos, p[:, 1], drop_intermediate=False)
    assert np.allclose(ours["fpr"], fpr) and np.allclose(ours["tpr"], tpr)


def test_class_never_predicted_and_class_absent():
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 1, 1])            # class c absent from the split
    p = np.array([[.9, .1, 0], [.8, .2, 0], [.7, .3, 0], [.6, .4, 0]])  # b never predicted
    rep = classification_report(y, p, labels)
    rows = {r["class"]: r for r in rep["per_class"]}
    assert rows["b"]["precision"] == 0 and rows["b"]["recall"] == 0 and rows["b"]["support"] == 2
    assert rows["c"]["support"] == 0 and rows["c"]["f1"] == 0
    assert rep["accuracy"] == 0.5
    # macro over present classes only: a has p=.5 r=1, b has 0/0
    assert rep["macro"]["recall"] == pytest.approx(0.5)
    assert rep["roc"]["c"] is None and rep["pr"]["c"] is None
    assert rep["confusion_matrix"]["matrix"] == [[2, 0, 0], [2, 0, 0], [0, 0, 0]]


def test_single_class():
    y = np.zeros(5, dtype=int)
    p = np.ones((5, 1))
    rep = classification_report(y, p, ["only"])
    assert rep["accuracy"] == 1.0
    assert rep["per_class"][0]["f1"] == 1.0
    assert rep["roc"]["only"] is None  # no negatives: ROC undefined, said so by None


def test_confusion_rows_are_true_class():
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([1, 1, 1]), 2)
    assert cm.tolist() == [[0, 2], [0, 1]]


def test_top_k_with_k_over_classes():
    y, p, _ = random_predictions(n=50, k=3)
    assert top_k_accuracy(y, p, 10) == 1.0


def test_ece_zero_for_perfectly_calibrated_bins_and_positive_when_overconfident():
    y = np.array([0] * 8 + [1] * 2)
    p = np.tile([0.8, 0.2], (10, 1))   # 80% confident, right 80% of the time
    assert reliability(y, p)["ece"] == pytest.approx(0.0, abs=1e-9)
    p_over = np.tile([0.99, 0.01], (10, 1))
    assert reliability(y, p_over)["ece"] == pytest.approx(0.19, abs=1e-9)


def test_temperature_scaling_reduces_nll_of_overconfident_logits():
    y, _, logits = random_predictions(n=2000, k=5, seed=3)
    hot = logits * 4.0  # overconfident
    t = fit_temperature(hot, y)
    assert 2.5 < t < 6.0

    def nll(temp):
        pr = softmax(hot, temp)
        return -np.mean(np.log(pr[np.arange(len(y)), y]))

    assert nll(t) < nll(1.0)
    assert nll(t) <= nll(t * 1.1) and nll(t) <= nll(t / 1.1)


def test_accuracy_coverage_is_monotone_in_coverage():
    y, p, _ = random_predictions(n=400, k=4, seed=9)
    ac = accuracy_coverage(y, p)
    assert ac["coverage"][0] == 1.0
    assert all(a >= b for a, b in zip(ac["coverage"], ac["coverage"][1:]))
    # abstaining on low confidence raises accuracy on what is answered
    assert ac["accuracy"][30] > ac["accuracy"][0]


def test_pr_none_without_positives():
    assert pr_curve(np.array([.1, .2]), np.array([False, False])) is None


def test_top_k_only_below_the_class_count():
    """Top-k over k >= the class count is 1.0 whatever the model does: not reported, not shown."""
    y, p, _ = random_predictions(n=60, k=2)
    two = classification_report(y, p, ["ants", "bees"])
    assert set(two["top_k_accuracy"]) == {"1"}
    assert informative_top_k(two["top_k_accuracy"], 2) == {}
    y, p, _ = random_predictions(n=60, k=3)
    three = classification_report(y, p, ["a", "b", "c"])
    assert set(three["top_k_accuracy"]) == {"1"}
    y, p, _ = random_predictions(n=60, k=10)
    ten = classification_report(y, p, [str(i) for i in range(10)])
    assert informative_top_k(ten["top_k_accuracy"], 10) == {3: ten["top_k_accuracy"]["3"],
                                                            5: ten["top_k_accuracy"]["5"]}
    # a report stored before (top-3 of 3 classes, always 1.0) is not shown either
    assert informative_top_k({"1": 0.7, "3": 1.0}, 3) == {}
