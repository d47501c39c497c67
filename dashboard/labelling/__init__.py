"""UI pieces of the Label page, one module per mode: ``classes`` (class manager),
``gallery_mode`` (filter, select, bulk edits) with ``detail`` (one image), ``queue``
(unlabelled images, one key per class) with ``active_order`` (its strategy and ranking run),
``retrain_loop`` (retrain every N labels) and ``queue_proof`` ("Does the queue pay?", the
simulated-oracle experiment run by ``proof_job``), ``history`` (undo, revert) and ``review``
(suspected label errors). Every edit goes through ``dashboard.label_actions``:
its expected labels are fixed when the control is drawn, and its outcome is
flashed and drawn by ``show_flash``. User text (class names, file names) is shown
only through plain-text elements or escaped markdown.
"""

from dashboard.label_actions import show_flash
from dashboard.labelling.classes import class_manager
from dashboard.labelling.common import md_escape
from dashboard.labelling.gallery_mode import gallery
from dashboard.labelling.history import history_view
from dashboard.labelling.queue import shortcut_keys, unlabelled_queue
from dashboard.labelling.queue_proof import queue_proof
from dashboard.labelling.review import review_queue

__all__ = ["class_manager", "gallery", "history_view", "md_escape", "queue_proof", "review_queue",
           "shortcut_keys", "show_flash", "unlabelled_queue"]
