"""Handlers of ``python -m core runs list|show|stop|resume`` (parsers: ``core/cli/runs.py``)."""

from __future__ import annotations

import time

from core.cli.output import emit, table
from core.training import jobs
from core.training.runs import get_run, list_runs, read_log, read_metrics, read_status


def cmd_list(args, ws) -> int:
    """``runs list``: runs, newest first, with status, epochs done and the validation accuracy
    of ``best.pt`` (the checkpoint every command uses by default) with its epoch."""
    jobs.refresh(ws)
    rows = [_row(r) for r in list_runs(ws, args.limit, args.dataset)]
    emit(args, rows, lambda rs: table(rs, ["run_id", "dataset", "arch", "status", "epochs",
                                           "best_val_accuracy", "best_epoch", "created",
                                           "message"]))
    return 0


def cmd_show(args, ws) -> int:
    """``runs show RUN``: config, live status, epoch records and the log's tail (unreadable metric
    lines counted)."""
    jobs.refresh(ws)
    run = get_run(ws, args.run_id)
    records = read_metrics(run.folder)
    epochs = [m for m in records if m.get("type") == "epoch"]
    data = {**run.to_dict(), "progress": read_status(run.folder), "epochs": epochs,
            "unreadable_metric_lines": records.skipped, "log_tail": read_log(run.folder, 20)}

    def human(d):
        head = (f"run {d['id']} on {d['dataset']}: {d['status']}"
                + (f" — {d['message']}" if d["message"] else "") + f"\nfolder {d['folder']}\n"
                + (f"{d['unreadable_metric_lines']} unreadable line(s) in metrics.jsonl left out\n"
                   if d["unreadable_metric_lines"] else ""))
        rows = [{"epoch": e["epoch"] + 1, "train_loss": f"{e['train_loss']:.4f}",
                 "train_acc": f"{e['train_accuracy']:.4f}", "val_loss": f"{e['val_loss']:.4f}",
                 "val_acc": f"{e['val_accuracy']:.4f}", "img/s": f"{e['images_per_sec']:.0f}"}
                for e in d["epochs"]]
        return head + table(rows, ["epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                                   "img/s"]) + ("\n\nlog:\n" + d["log_tail"] if d["log_tail"] else "")
    emit(args, data, human)
    return 0


def cmd_stop(args, ws) -> int:
    """``runs stop RUN``: ask a running run to stop (cancel a queued one); ``--wait`` waits until
    it has."""
    jobs.refresh(ws)
    run = jobs.stop_run(ws, args.run_id)
    if args.wait:
        while run.status in ("running", "queued"):
            time.sleep(0.5)
            jobs.refresh(ws)
            run = get_run(ws, args.run_id)
    emit(args, {"run_id": run.id, "status": run.status, "message": run.message},
         lambda d: f"run {d['run_id']}: {d['status']}"
                   + ("" if d["status"] != "running" else " (stop requested)"))
    return 0


def cmd_resume(args, ws) -> int:
    """``runs resume RUN``: queue a stopped or failed run to continue from its last checkpoint."""
    jobs.refresh(ws)
    run = jobs.resume_run(ws, args.run_id)
    emit(args, {"run_id": run.id, "status": run.status},
         lambda d: f"run {d['run_id']}: {d['status']} (resuming from its last checkpoint)")
    return 0


def _row(run) -> dict:
    row = run.summary()      # best.pt's accuracy and epoch, last.pt's, as on the pages
    best, last = row["best_val_accuracy"], row["last_val_accuracy"]
    return {"run_id": run.id, "dataset": run.dataset, "arch": run.config.get("arch"),
            "status": run.status, "epochs": row["epochs"],
            "best_val_accuracy": None if best is None else round(best, 4),
            "best_epoch": row["best_epoch"],
            "last_val_accuracy": None if last is None else round(last, 4),
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at)),
            "message": run.message.splitlines()[0] if run.message else ""}
