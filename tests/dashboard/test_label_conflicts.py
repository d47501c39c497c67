"""Two tabs edit the same image: the second save must be refused with a conflict.

Each test opens one page in two AppTest sessions (two browser tabs, each with its
own session state) over one real workspace. Both tabs draw the image with the
label it has then; tab B saves a new label; tab A, still showing the old label,
then saves another. A must get a conflict message and B's label must stay: the
label a tab expects to replace is the one it drew, never one re-read at the click.
This covers the three pages that relabel images: Label (gallery image detail),
Data (gallery image detail) and Evaluate (the fix-images panel of a confused cell).
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from core.evaluation.analysis import cell_images
from core.evaluation.evaluate import evaluate_run, stored_predictions
from core.labels.quality import load_predictions, prediction_runs, rank_run
from core.labels.relabel import relabel
from core.labels.selection import get_image
from dashboard.labelling import review
from tests.dashboard.apptest import open_page


def _label(ws, dataset: str, image_id: int) -> str | None:
    return get_image(ws, dataset, image_id).label


def _others(classes: list[str], *avoid: str | None) -> list[str]:
    """Classes different from every label in ``avoid``, in order."""
    return [c for c in classes if c not in avoid]


def _conflicts(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "Conflict" in w.value]


def _assert_refused(at: AppTest, ws, dataset: str, image_id: int, kept: str, refused: str) -> None:
    """Tab ``at`` was told of the conflict, naming the label the other tab saved,
    and the image still carries that label."""
    assert not at.exception, [e.message for e in at.exception]
    conflicts = _conflicts(at)
    assert conflicts, ("the stale tab got no conflict message",
                       [e.value for kind in ("success", "info", "warning", "error")
                        for e in getattr(at, kind)])
    assert f"image {image_id}" in conflicts[0] and repr(kept) in conflicts[0], conflicts
    assert _label(ws, dataset, image_id) == kept != refused
    assert not any("is now" in s.value or "Relabelled" in s.value for s in at.success)


def _b_saves_then_a_is_refused(ws, dataset: str, image_id: int, tab_a: AppTest, tab_b: AppTest,
                               save_key: str, saved: str, a_label: str, b_label: str) -> None:
    """Tab B clicks ``save_key`` and is told ``saved``; then tab A, still showing the
    old label, clicks it too and is refused."""
    tab_b.button(key=save_key).click().run()
    assert not tab_b.exception, [e.message for e in tab_b.exception]
    assert any(saved in s.value for s in tab_b.success)
    assert _label(ws, dataset, image_id) == b_label

    tab_a.button(key=save_key).click().run()
    _assert_refused(tab_a, ws, dataset, image_id, kept=b_label, refused=a_label)


def test_label_page_detail_second_tab_gets_a_conflict(sample_workspace):
    ws = sample_workspace
    tab_a = open_page("pages/2_Label.py", 120, check=True)
    tab_b = open_page("pages/2_Label.py", 120, check=True)
    image_id = tab_a.selectbox(key="detail_id").value
    assert tab_b.selectbox(key="detail_id").value == image_id
    before = _label(ws, "digits", image_id)
    b_label, a_label = _others([str(d) for d in range(10)], before)[:2]
    tab_a.selectbox(key=f"detail_label_{image_id}").select(a_label).run()
    tab_b.selectbox(key=f"detail_label_{image_id}").select(b_label).run()

    tab_b.button(key="detail_save").click().run()
    assert any(f"is now {b_label}" in s.value for s in tab_b.success)
    assert _label(ws, "digits", image_id) == b_label

    tab_a.button(key="detail_save").click().run()
    _assert_refused(tab_a, ws, "digits", image_id, kept=b_label, refused=a_label)


def test_data_page_detail_second_tab_gets_a_conflict(sample_workspace):
    ws = sample_workspace
    tab_a = open_page("pages/1_Data.py", 120, check=True)
    tab_b = open_page("pages/1_Data.py", 120, check=True)
    assert tab_a.selectbox(key="data_dataset").value == "digits"
    pick = tab_a.selectbox(key="gallery_detail")
    image_id = int(pick.options[1].split()[0].lstrip("#"))     # options read "#<id> <file>"
    pick.set_value(image_id).run()
    tab_b.selectbox(key="gallery_detail").set_value(image_id).run()
    before = _label(ws, "digits", image_id)
    b_label, a_label = _others([str(d) for d in range(10)], before)[:2]
    tab_a.selectbox(key=f"data_fix_{image_id}").set_value(a_label).run()
    tab_b.selectbox(key=f"data_fix_{image_id}").set_value(b_label).run()

    _b_saves_then_a_is_refused(ws, "digits", image_id, tab_a, tab_b, f"data_fix_save_{image_id}",
                               f"is now {b_label}", a_label, b_label)


def test_evaluate_fix_panel_second_tab_gets_a_conflict(trained_workspace):
    ws, run_id = trained_workspace
    # A confused cell that surely holds images: two test images the model predicts as
    # class p are given another label q first, so the cell "true q, predicted p" exists
    # whatever the model's accuracy.
    report = evaluate_run(ws, run_id, "digits", "test")
    labels = report["confusion_matrix"]["labels"]
    preds = stored_predictions(ws, run_id, "digits", "test")
    predicted = preds["probs"].argmax(axis=1)
    p = int(predicted[0])
    q = labels[(p + 1) % len(labels)]
    confident = preds["probs"][:, p].argsort()[::-1]     # most confident first, as the cell
    ids = [int(preds["image_ids"][i]) for i in confident if predicted[i] == p][:2]
    assert len(ids) == 2
    relabel(ws, "digits", [(i, _label(ws, "digits", i), q) for i in ids], user="setup")
    evaluate_run(ws, run_id, "digits", "test")
    cell = [r["image_id"] for r in cell_images(stored_predictions(ws, run_id, "digits", "test"),
                                                labels, q, labels[p])]
    assert cell[:2] == ids
    image_id = ids[0]
    panel = f"cell-{q}-{labels[p]}"
    b_label, a_label = _others(labels, q, labels[p])[:2]

    tabs = []
    for new in (a_label, b_label):
        tab = open_page("pages/5_Evaluate.py", 180, check=True)
        tab.selectbox(key="cm_pair").set_value((q, labels[p])).run()
        tab.multiselect(key=f"{panel}-ids").select(image_id).run()
        tab.selectbox(key=f"{panel}-label").set_value(new).run()
        assert not tab.exception, [e.message for e in tab.exception]
        assert not tab.button(key=f"{panel}-relabel").disabled
        tabs.append(tab)
    tab_a, tab_b = tabs

    _b_saves_then_a_is_refused(ws, "digits", image_id, tab_a, tab_b, f"{panel}-relabel",
                               f"Relabelled 1 image(s) as {b_label}", a_label, b_label)


def test_label_page_review_accept_from_a_stale_tab_gets_a_conflict(trained_workspace):
    """Review decisions carry the label the ranking showed: accepting a suggestion for
    an image another tab has just fixed is refused, and "Keep" still works."""
    ws, run_id = trained_workspace
    (_, path), = prediction_runs(ws, "digits")
    pred = load_predictions(path, run_id)
    # Two sure suspects: for a class c, the held-out image with the highest p(c) of all,
    # when c is also its top class, given the label it finds least likely. Confident
    # learning must flag it (p(c) is above the class's mean), near the top of the list.
    # The first is accepted, the second kept.
    probs = pred.probs
    surest = [(c, int(probs[:, c].argmax())) for c in range(probs.shape[1])]
    (top, row), (_, second) = [(c, r) for c, r in surest if int(probs[r].argmax()) == c][:2]
    suggested = pred.class_names[top]
    image_id, kept = int(pred.image_ids[row]), int(pred.image_ids[second])
    given, kept_given = (pred.class_names[int(probs[r].argmin())] for r in (row, second))
    relabel(ws, "digits", [(image_id, _label(ws, "digits", image_id), given),
                           (kept, _label(ws, "digits", kept), kept_given)], user="setup")
    shown = rank_run(ws, "digits", run_id, path).suspects[:review.SHOWN]
    assert {image_id, kept} <= {s.image_id for s in shown}

    tabs = []
    for _ in range(2):
        tab = open_page("pages/2_Label.py", 120, check=True)
        tab.radio(key="label_mode").set_value("Review").run()
        assert not tab.exception, [e.message for e in tab.exception]
        assert tab.button(key=f"rv_acc_{image_id}").label == f"Accept {suggested}"
        tabs.append(tab)
    tab_a, tab_b = tabs

    tab_b.button(key=f"rv_acc_{image_id}").click().run()
    assert any(f"#{image_id} is now {suggested}" in s.value for s in tab_b.success)
    assert _label(ws, "digits", image_id) == suggested
    assert f"rv_acc_{image_id}" not in [b.key for b in tab_b.button]    # reviewed: off the list

    tab_a.button(key=f"rv_acc_{image_id}").click().run()
    assert not tab_a.exception, [e.message for e in tab_a.exception]
    conflicts = _conflicts(tab_a)
    assert conflicts and repr(suggested) in conflicts[0] and repr(given) in conflicts[0], conflicts
    assert _label(ws, "digits", image_id) == suggested

    tab_a.button(key=f"rv_keep_{kept}").click().run()
    assert any(f"Kept #{kept}" in s.value for s in tab_a.success)
    assert _label(ws, "digits", kept) == kept_given
    assert f"rv_keep_{kept}" not in [b.key for b in tab_a.button]
