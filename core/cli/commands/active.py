"""Handlers of ``python -m core queue|al-bench`` (parsers: ``core/cli/active.py``)."""

from __future__ import annotations

from core.active.queue import active_queue
from core.active.simulate import simulate
from core.active.strategies import STRATEGIES
from core.cli.output import StderrProgress, emit, log, table
from core.errors import ImageLabError


def cmd_queue(args, ws) -> int:
    """``queue DATASET [--strategy S] [--run RUN] [--limit N]``: the next images to label."""
    q = active_queue(ws, args.dataset, args.strategy, args.run_id, args.limit, split=args.split)
    if q.message:
        log(q.message)

    def human(d):
        head = (f"{d['unlabelled']} unlabelled images of {args.dataset}, ordered by "
                f"{d['strategy']}" + (f" with run {d['run_id']}" if d["run_id"] else "") + "\n")
        rows = [{"image_id": i["image_id"], "predicted": i["predicted"],
                 "p": f"{i['probabilities'][0][1]:.3f}" if i["probabilities"] else "",
                 "score": f"{i['score']:.3f}"} for i in d["items"]]
        return head + table(rows, ["image_id", "predicted", "p", "score"])

    emit(args, q.to_dict(), human)
    return 0


def cmd_al_bench(args, ws) -> int:
    """``al-bench DATASET``: the simulated-oracle experiment (``core.active.simulate``)."""
    if not 0 < args.target <= 1:
        raise ImageLabError("--target must be a fraction in (0, 1], e.g. 0.95")
    if args.rounds < 0:
        raise ImageLabError("--rounds must be 0 (until the pool is used up) or more")
    strategies = [s for s in STRATEGIES if s in args.strategies]
    result = simulate(ws, args.dataset, strategies, seeds=args.seeds, batch=args.batch,
                      start_per_class=args.start, target=args.target,
                      rounds=args.rounds or None, embedder=args.embedder,
                      stop_at_target=args.stop_at_target, progress=StderrProgress())

    def human(d):
        head = (f"{d['dataset']}: {d['pool_size']} training images as the pool, accuracy on "
                f"{d['heldout_size']} {d['heldout_split']} images, {d['embedder']} embeddings, "
                f"batch {d['batch']}, {d['seeds']} seeds, target {d['target']:.0%}\n")
        rows = [{"strategy": s, "labels to target": ", ".join(
                    "-" if n is None else str(n) for n in d["labels_to_target"][s]),
                 "ratio to random": "" if d["ratio_to_random"][s] is None
                 else f"{d['ratio_to_random'][s]:.2f}"} for s in d["strategies"]]
        verdicts = "\n".join(d["verdicts"][s] for s in d["strategies"])
        return head + table(rows, ["strategy", "labels to target", "ratio to random"]) \
            + "\n\n" + verdicts

    emit(args, result.to_dict(), human)
    return 0
