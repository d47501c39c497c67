"""Active-learning strategies on hand-made probabilities and embeddings (pure numpy)."""

import numpy as np
import pytest

from core.active.learner import EmbeddingClassifier
from core.active.strategies import STRATEGIES, k_center_greedy, select_batch, uncertainty
from core.errors import ImageLabError

PROBS = np.array([
    [0.90, 0.05, 0.05],   # 0 confident
    [0.50, 0.45, 0.05],   # 1 torn between two classes: the smallest margin
    [0.34, 0.33, 0.33],   # 2 flattest: the largest entropy, the least confident
    [0.60, 0.20, 0.20],   # 3
    [0.48, 0.26, 0.26],   # 4 less confident than 1, larger margin than 1
])


def pick(strategy, probs=PROBS, batch=1, seed=0, **kw):
    return select_batch(strategy, probs, kw.pop("embeddings", None), np.arange(len(probs)),
                        batch, np.random.default_rng(seed), **kw)


def test_margin_picks_the_smallest_margin():
    assert pick("margin", batch=2).tolist() == [2, 1]    # margins 0.01, 0.05
    scores = uncertainty(PROBS, "margin")
    assert scores[1] == pytest.approx(1 - 0.05) and scores[0] == pytest.approx(1 - 0.85)


def test_entropy_picks_the_flattest_and_least_confidence_the_lowest_top():
    assert pick("entropy").tolist() == [2]
    assert pick("least-confidence", batch=3).tolist() == [2, 4, 1]   # tops .34, .48, .50
    # margin and least confidence disagree on 1 against 4: the scores are not all the same
    assert pick("margin", batch=3).tolist() == [2, 1, 4]


def test_random_is_seeded_and_covers_the_candidates():
    a, b = pick("random", batch=5, seed=3), pick("random", batch=5, seed=3)
    assert a.tolist() == b.tolist() and sorted(a.tolist()) == [0, 1, 2, 3, 4]
    orders = {tuple(pick("random", batch=5, seed=s).tolist()) for s in range(6)}
    assert len(orders) > 1


def test_candidates_are_rows_and_probs_follow_them():
    emb = np.zeros((10, 2))
    chosen = select_batch("margin", PROBS, emb, np.array([7, 3, 9, 0, 5]), 2,
                          np.random.default_rng(0))
    assert chosen.tolist() == [9, 3]     # PROBS rows 2 and 1 belong to candidates 9 and 3


def three_clusters(per=20):
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(0, 0.3, (per, 2)) for c in centres])
    return x, np.repeat([0, 1, 2], per)


def test_diverse_spreads_across_clusters_where_margin_does_not():
    x, cluster = three_clusters()
    # cluster 0 is the most uncertain, then 1, then 2: margin alone takes cluster 0 only
    margins = 0.1 * cluster + 0.001 * (np.arange(60) % 20)
    probs = np.stack([0.5 + margins / 2, 0.5 - margins / 2], axis=1)
    margin = pick("margin", probs, batch=6, embeddings=x)
    assert set(cluster[margin]) == {0}
    diverse = pick("diverse", probs, batch=6, embeddings=x)
    assert cluster[diverse[0]] == 0                      # the most uncertain comes first
    assert sorted(cluster[diverse[:3]]) == [0, 1, 2]     # then one per cluster
    # labelled images in clusters 0 and 1: the first pick goes to the cluster none covers
    x, cluster = three_clusters(per=3)
    labelled = np.array([0, 3])
    cand = np.setdiff1d(np.arange(9), labelled)
    first = select_batch("diverse", np.full((len(cand), 2), 0.5), x, cand, 1,
                         np.random.default_rng(0), labelled=labelled)
    assert cluster[first].tolist() == [2]


def test_k_center_greedy_takes_the_farthest_point_each_time():
    x = np.array([[0.0], [1.0], [10.0], [4.0]])
    assert k_center_greedy(x, np.arange(4), 3, np.array([], dtype=np.int64)).tolist() == [0, 2, 3]
    assert k_center_greedy(x, np.array([1, 2, 3]), 2, np.array([0])).tolist() == [2, 3]


def test_bad_input_is_refused_clearly():
    with pytest.raises(ImageLabError, match="unknown strategy"):
        pick("smallest")
    with pytest.raises(ImageLabError, match="one row of probabilities"):
        select_batch("margin", PROBS[:2], None, np.arange(5), 1, np.random.default_rng(0))
    with pytest.raises(ImageLabError, match="embeddings"):
        pick("diverse")
    assert set(STRATEGIES) == {"random", "least-confidence", "margin", "entropy", "diverse"}


def test_batch_larger_than_the_candidates_takes_them_all():
    for s in STRATEGIES:
        out = pick(s, batch=50, embeddings=np.eye(5))
        assert sorted(out.tolist()) == [0, 1, 2, 3, 4]


def test_learner_probabilities_are_distributions_that_predict_the_clusters():
    x, cluster = three_clusters()
    learner = EmbeddingClassifier(4).fit(x[::4], cluster[::4])   # class 3 never seen
    p = learner.predict_proba(x)
    assert np.allclose(p.sum(axis=1), 1.0) and (p[:, 3] == 0).all()
    assert (learner.predict(x) == cluster).mean() == 1.0
    two = EmbeddingClassifier(2).fit(x[:40:5], cluster[:40:5])
    assert (two.predict(x[:40]) == cluster[:40]).all()
    assert np.allclose(two.predict_proba(x[:40]).sum(axis=1), 1.0)
