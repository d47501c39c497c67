"""``python -m core queue|al-bench``: the label queue ordered by a strategy, and its proof.

The parsers; the handlers are in ``core/cli/commands/active.py``.
"""

from __future__ import annotations

from core.active.defaults import DEFAULT_SEEDS, DEFAULT_TARGET
from core.active.strategies import DEFAULT_STRATEGY, STRATEGIES


def register(sub, common) -> None:
    """Add the ``queue`` and ``al-bench`` commands to the subparsers ``sub``, sharing the
    ``common`` options."""
    p = sub.add_parser("queue", parents=[common], help="the unlabelled images to label next",
                       description="The dataset's unlabelled images in the order a strategy "
                                   "ranks them, each with the run's predicted class and every "
                                   "class's probability. The run defaults to the dataset's best "
                                   "finished run; with none, the order is random and the "
                                   "message says why. 'diverse' uses the dataset's embeddings "
                                   "and computes them when missing.")
    p.add_argument("dataset")
    p.add_argument("--strategy", default=DEFAULT_STRATEGY, choices=STRATEGIES,
                   help=f"how to order the queue (default: {DEFAULT_STRATEGY}, measured on "
                        "mnist-5k: docs/DECISIONS.md)")
    p.add_argument("--run", dest="run_id", help="the run that predicts (default: the best)")
    p.add_argument("--limit", type=int, default=50, help="images listed (default 50)")
    p.add_argument("--split", choices=["train", "val", "test"], help="only this split's images")
    p.set_defaults(func="core.cli.commands.active:cmd_queue")

    p = sub.add_parser("al-bench", parents=[common],
                       help="does the queue beat random labelling? (simulated oracle)",
                       description="Start from a few labels per class of the training split, "
                                   "hide the rest (in memory: the stored labels are never "
                                   "changed), label --batch images per round by each strategy, "
                                   "retrain an SVM on fixed embeddings (pixels, or the ImageNet "
                                   "backbone for photos) and measure accuracy on the test split "
                                   "(val without one), on --seeds seeds. Prints the labels each "
                                   "strategy needed to reach --target, as a ratio to random's, "
                                   "and says plainly when a strategy does not beat random.")
    p.add_argument("dataset")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), metavar="STRATEGY",
                   choices=STRATEGIES,
                   help="strategies to compare (random always runs)")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"seeds (default {DEFAULT_SEEDS})")
    p.add_argument("--batch", type=int, help="images labelled per round (default: about a "
                                             "seventieth of the pool, 5 to 200)")
    p.add_argument("--start", type=int, default=2, help="labels per class to start from (2)")
    p.add_argument("--rounds", type=int, default=30,
                   help="rounds after the start (default 30; 0: until the pool is used up)")
    p.add_argument("--target", type=float, default=DEFAULT_TARGET,
                   help=f"target accuracy (default {DEFAULT_TARGET})")
    p.add_argument("--embedder", help="pixels or efficientnet_lite0:imagenet (default: the "
                                      "backbone for photos, else pixels)")
    p.add_argument("--stop-at-target", action="store_true",
                   help="end each curve at the first round that reaches the target")
    p.set_defaults(func="core.cli.commands.active:cmd_al_bench")
