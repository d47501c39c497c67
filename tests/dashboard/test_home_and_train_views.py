"""Home's run count, the Train page's augmentation preview, and the run view's note on
unreadable metric lines (AppTest on real workspaces)."""

from __future__ import annotations

from core.training.config import TrainConfig
from core.training.runs import create_run, read_metrics
from tests.dashboard.apptest import open_page


def test_home_counts_every_run_past_the_ten_it_lists(sample_workspace):
    ws = sample_workspace
    for _ in range(12):
        create_run(ws, TrainConfig(dataset="digits", image_size=8, epochs=1))
    at = open_page("streamlit_app.py", check=True)
    assert {m.label: m.value for m in at.metric}["Runs"] == "12"
    assert at.dataframe[0].value.shape[0] == 10        # the table lists the 10 newest


def test_the_run_view_says_how_many_metric_lines_it_left_out(trained_workspace):
    ws, run_id = trained_workspace
    path = ws.runs_dir / run_id / "metrics.jsonl"
    before = read_metrics(path.parent)
    assert before.skipped == 0 and before
    with open(path, "a") as fh:
        fh.write('{"type": "step", "global_step": 99, "lo\n{"type": "epo')   # two torn lines
    at = open_page("pages/3_Train.py", check=True)
    assert at.selectbox(key="train_watch").value == run_id
    notes = [c.value for c in at.caption if "metrics.jsonl" in c.value]
    assert notes == ["2 unreadable lines in metrics.jsonl (torn or damaged) left out of "
                     "these figures."]


def _preview(at) -> tuple[str, str]:
    """(url, caption) of the augmentation preview's image."""
    shown = [i.proto.imgs[0] for i in at.get("image")
             if i.proto.imgs and "augmented training images" in i.proto.imgs[0].caption]
    assert len(shown) == 1
    return shown[0].url, shown[0].caption


def test_augmentation_preview_follows_the_options_and_the_seed(sample_workspace):
    at = open_page("pages/3_Train.py", check=True)
    assert at.selectbox(key="train_dataset").value == "digits"
    k = "train_digits_"
    size = at.slider(key=k + "size").value
    url, caption = _preview(at)
    assert caption.startswith(f"16 augmented training images at {size} px")
    assert f"crop {at.selectbox(key=k + 'crop').value}" in caption
    # the same seed draws the same images and the same augmentation
    at.run()
    assert _preview(at)[0] == url
    # "New samples": another seed, other pictures
    at.button(key="train_preview_again").click().run()
    assert not at.exception, [e.message for e in at.exception]
    seeded_url = _preview(at)[0]
    assert seeded_url != url
    # every option is passed to the augmentation: switching all of it off changes the picture
    at.selectbox(key=k + "crop").set_value("none")
    at.slider(key=k + "rot").set_value(0)
    at.slider(key=k + "jit").set_value(0.0)
    at.toggle(key=k + "flip").set_value(False).run()
    assert not at.exception, [e.message for e in at.exception]
    plain_url, caption = _preview(at)
    assert "crop none, flip off, rotation 0°, jitter 0" in caption
    assert plain_url != seeded_url
    at.toggle(key=k + "flip").set_value(True).run()
    flipped_url, caption = _preview(at)
    assert "flip on" in caption and flipped_url != plain_url
