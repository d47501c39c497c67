"""The Train page's run picker follows a run's status while the page is open, with no
click: only the live fragment reruns then, so a picker drawn outside it kept saying
"running" after the run had finished (issue #16, item 6). AppTest cannot rerun a
fragment alone; this needs the browser."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.store.workspace import open_workspace
from core.training.config import TrainConfig
from core.training.runs import create_run, set_status
from tests.browser.conftest import assert_no_exception_box, open_app

pytestmark = pytest.mark.browser

# the picker is a combobox: the chosen option's text is its input's value
PICKER_SAYS = """([id, status]) => [...document.querySelectorAll("input[aria-label='Run']")]
    .some(i => i.value.startsWith(id) && i.value.includes(' · ' + status))"""


def test_the_run_picker_follows_a_run_that_finishes_while_watched(browser, server):
    ws = open_workspace(server.home)
    # a stand-in for the trainer: a live process with "train" on its command line
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "train"])
    try:
        run = create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=1))
        set_status(ws, run.id, "running", pid=trainer.pid)
        page, watcher = open_app(browser, f"{server.url}/Train")
        page.wait_for_function(PICKER_SAYS, arg=[run.id, "running"], timeout=30_000)
        set_status(ws, run.id, "finished")          # as the trainer does when it ends
        page.wait_for_function(PICKER_SAYS, arg=[run.id, "finished"], timeout=15_000)
        assert_no_exception_box(page)
        assert watcher.errors == [], watcher.errors
        page.close()
    finally:
        trainer.kill()
        trainer.wait()
