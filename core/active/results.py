"""What the simulated-oracle experiment found, in figures and in words.

From the curves of ``core.active.simulate`` (accuracy on held-out images against labels
used, per strategy and seed) ``summarise`` works out:

- ``labels_to_target``: per strategy and seed, the labels used at the first round whose
  accuracy reached the target (None when it never did);
- ``ratio_to_random``: the mean over seeds of a strategy's labels to target, divided by
  random's mean (None unless every seed of both reached it); below 1 saves labels;
- ``rounds_won`` and ``worst_round_difference``: over the rounds after the start (the start
  is the same for every strategy of a seed), the fraction of rounds where the strategy's
  accuracy, averaged over seeds, is above random's, and its smallest difference;
- ``verdicts``: one plain sentence per strategy, which says so when it does not beat random.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class Curve:
    """One strategy on one seed: accuracy after each round against the labels used then."""
    strategy: str
    seed: int
    labels: list[int]
    accuracy: list[float]
    seconds: float = 0.0

    def labels_to(self, target: float) -> int | None:
        """The labels used at the first round whose accuracy reached ``target`` (None: never)."""
        return next((n for n, a in zip(self.labels, self.accuracy) if a >= target), None)


@dataclass
class SimulationResult:
    """The experiment's setup, curves and findings (see the module docstring)."""
    dataset: str
    embedder: str
    model: str
    learner: str
    heldout_split: str
    heldout_size: int
    pool_size: int
    classes: list[str]
    target: float
    batch: int
    start: int
    max_labels: int
    seeds: int
    stopped_at_target: bool
    curves: list[Curve]
    labels_to_target: dict[str, list[int | None]] = field(default_factory=dict)
    ratio_to_random: dict[str, float | None] = field(default_factory=dict)
    rounds_won: dict[str, float | None] = field(default_factory=dict)
    worst_round_difference: dict[str, float | None] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def strategies(self) -> list[str]:
        """The strategies run, random first."""
        return list(dict.fromkeys(c.strategy for c in self.curves))

    def mean_curve(self, strategy: str) -> tuple[list[int], list[float]]:
        """(labels, mean accuracy over seeds) for the rounds every seed of ``strategy`` ran."""
        curves = [c for c in self.curves if c.strategy == strategy]
        n = min(len(c.labels) for c in curves)
        return curves[0].labels[:n], [float(np.mean([c.accuracy[k] for c in curves]))
                                      for k in range(n)]

    def to_dict(self) -> dict:
        """Plain values for JSON, with each strategy's mean curve."""
        d = asdict(self)
        d["strategies"] = self.strategies
        d["mean_curves"] = {s: dict(zip(("labels", "accuracy"), self.mean_curve(s)))
                            for s in self.strategies}
        return d


def summarise(data, curves: list[Curve], *, target: float, batch: int, start: int,
              max_labels: int, seconds: float, stopped_at_target: bool) -> SimulationResult:
    """A ``SimulationResult`` for ``curves`` run on ``data`` (a ``SimulationData``)."""
    seeds = len({c.seed for c in curves})
    result = SimulationResult(
        data.dataset, data.embedder, data.model, "RBF SVM on fixed embeddings",
        data.heldout_split, len(data.heldout_y), len(data.pool_y), data.classes, target, batch,
        start, max_labels, seeds, stopped_at_target, curves, seconds=seconds)
    for s in result.strategies:
        result.labels_to_target[s] = [c.labels_to(target) for c in curves if c.strategy == s]
    for s in result.strategies:
        result.ratio_to_random[s] = _ratio(result.labels_to_target[s],
                                           result.labels_to_target["random"])
        won, worst = _rounds_against_random(result, s)
        result.rounds_won[s], result.worst_round_difference[s] = won, worst
        result.verdicts[s] = verdict(result, s)
    return result


def _ratio(mine: list[int | None], random: list[int | None]) -> float | None:
    if not mine or not random or None in mine or None in random:
        return None
    return float(np.mean(mine) / np.mean(random))


def _rounds_against_random(result: SimulationResult, strategy: str
                           ) -> tuple[float | None, float | None]:
    """(fraction of rounds after the start won against random, smallest difference)."""
    labels, mine = result.mean_curve(strategy)
    _, random = result.mean_curve("random")
    n = min(len(mine), len(random))
    if strategy == "random" or n < 2:
        return None, None
    diff = np.array(mine[1:n]) - np.array(random[1:n])
    return float((diff > 0).mean()), float(diff.min())


def verdict(result: SimulationResult, strategy: str) -> str:
    """One sentence on ``strategy`` against random, plain when it does not beat it."""
    pct = f"{result.target:.0%}"
    mine, rand = result.labels_to_target[strategy], result.labels_to_target["random"]
    if strategy == "random":
        if None in rand:
            return (f"random labelling did not reach {pct} within {result.max_labels} labels "
                    f"on {rand.count(None)} of {len(rand)} seeds")
        return f"random labelling reached {pct} with {np.mean(rand):.0f} labels (mean of seeds)"
    ratio, won = result.ratio_to_random[strategy], result.rounds_won[strategy]
    rounds = "" if won is None else f"; it was ahead of random in {won:.0%} of the rounds"
    if ratio is not None:
        saved = np.mean(rand) - np.mean(mine)
        if ratio < 1:
            return (f"{strategy} reached {pct} with {np.mean(mine):.0f} labels against random's "
                    f"{np.mean(rand):.0f} ({ratio:.2f}×): it saved {saved:.0f} labels{rounds}")
        return (f"{strategy} does not beat random on this data: it needed {np.mean(mine):.0f} "
                f"labels to reach {pct} against random's {np.mean(rand):.0f}{rounds}")
    if None not in mine:
        return (f"{strategy} reached {pct} on every seed ({np.mean(mine):.0f} labels) where "
                f"random did not on {rand.count(None)} of {len(rand)} seeds within "
                f"{result.max_labels} labels{rounds}")
    if None not in rand:
        return (f"{strategy} does not beat random on this data: it did not reach {pct} within "
                f"{result.max_labels} labels on {mine.count(None)} of {len(mine)} seeds, where "
                f"random reached it with {np.mean(rand):.0f} labels{rounds}")
    if won == 1.0:
        return (f"neither {strategy} nor random reached {pct} within {result.max_labels} labels "
                f"on every seed, but {strategy} was ahead of random in every round")
    return (f"{strategy} does not clearly beat random on this data: neither reached {pct} "
            f"within {result.max_labels} labels on every seed{rounds}")
