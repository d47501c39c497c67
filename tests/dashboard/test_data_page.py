"""The Data page in AppTest: imports through the source tabs, the report, the gallery
with its filters and paging, the quality report."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.core.data.corpus import jpeg_bytes, png_bytes, write_imagefolder, zip_with
from tests.dashboard.apptest import open_page


def data_page() -> AppTest:
    return open_page("pages/1_Data.py", 120, check=True)


def test_upload_an_archive_then_see_report_gallery_and_quality(workspace, tmp_path):
    entries = [(f"pets/{c}/{i}.png", png_bytes(k)) for k, (c, i) in
               enumerate((c, i) for c in ("cat", "dog") for i in range(20))]
    entries += [("pets/cat/broken.png", b"not a png"), ("../escape.png", png_bytes(99)),
                ("pets/dog/copy.png", png_bytes(0))]
    z = zip_with(tmp_path / "pets.zip", entries)
    at = data_page()
    assert any("No datasets yet" in i.value for i in at.info)
    at.radio(key="up_kind").set_value("an archive").run()
    at.file_uploader(key="up_archive").upload("pets.zip", z.read_bytes(), "application/zip")
    at.text_input(key="up_t_name").input("pets")
    at.run()
    at.button(key="up_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Imported 41 images into 'pets'" in s.value for s in at.success)
    assert any("2 file(s) skipped" in w.value for w in at.warning)
    skipped = at.table[0].value
    assert set(skipped["file"]) == {"pets.zip:pets/cat/broken.png", "pets.zip:../escape.png"}
    assert at.selectbox(key="data_dataset").value == "pets"
    assert at.metric[0].value == "41"
    assert len(at.get("image")) == 32  # the first gallery page
    at.button(key="gallery_next").click().run()
    assert len(at.get("image")) == 9
    at.selectbox(key="gallery_flag").select("duplicate").run()
    assert len(at.get("image")) == 2  # the copy and its original, back on page 1
    at.selectbox(key="gallery_flag").select("label conflict").run()
    assert len(at.get("image")) == 2
    detail = at.selectbox(key="gallery_detail")
    detail.set_value(int(detail.options[1].split()[0].lstrip("#"))).run()
    assert len(at.get("image")) == 3  # the detail view adds the full image
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Duplicates"] == "1" and metrics["Two labels"] == "1"
    assert metrics["Corrupt / skipped"] == "2"
    assert "brightness" in at.get("plotly_chart")[-1].proto.spec


def test_folder_path_tab_appends_and_webcam_adds_a_shot(workspace, tmp_path):
    src = tmp_path / "flowers"
    write_imagefolder(src, classes=("rose", "tulip"), per_class=3)
    at = data_page()
    at.text_input(key="src_path").input(str(src))
    at.text_input(key="src_path_t_name").input("flowers")
    at.run()
    at.button(key="src_path_go").click().run()
    assert not at.exception
    assert any("Imported 6 images into 'flowers'" in s.value for s in at.success)
    at.run()
    at.radio(key="cam_t_mode").set_value("an existing dataset").run()
    at.selectbox(key="cam_t_existing").select("flowers").run()
    at.selectbox(key="cam_cls").select("tulip").run()
    at.camera_input(key="cam_shot").upload("shot.jpg", jpeg_bytes(3))
    at.run()
    at.button(key="cam_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Imported 1 images into 'flowers' (7 in total)" in s.value for s in at.success)
    assert at.metric[0].value == "7"


def test_bad_sources_give_a_clear_message(workspace, tmp_path):
    at = data_page()
    at.text_input(key="src_path").input(str(tmp_path / "missing"))
    at.text_input(key="src_path_t_name").input("x")
    at.run()
    at.button(key="src_path_go").click().run()
    assert not at.exception
    assert any("not found" in e.value for e in at.error)
    at.button(key="src_tv_go").click().run()
    assert not at.exception


def test_fix_a_label_from_the_data_gallery_detail(sample_workspace):
    from core.labels.history import label_history
    at = data_page()
    pick = at.selectbox(key="gallery_detail")
    image = int(pick.options[1].split()[0].lstrip("#"))     # options read "#<id> <file>"
    pick.set_value(image).run()
    at.selectbox(key=f"data_fix_{image}").set_value("7").run()
    at.button(key=f"data_fix_save_{image}").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("is now 7" in s.value for s in at.success)
    events = label_history(sample_workspace, "digits", image_id=image)
    assert events[0].kind == "relabel"


def test_url_sql_builtin_and_image_uploads_from_the_page(workspace, tmp_path, http_server,
                                                         monkeypatch):
    """Every other source tab imports real data the test makes: an archive over HTTP
    (loopback allowed by the setting), rows of a SQLite file, FashionMNIST files already
    on disk, and several images uploaded into a new class."""
    import sqlite3

    import numpy as np

    from core.data.net import ALLOW_ENV
    from tests.core.data.test_sources_remote import _write_idx
    base, sha = http_server
    monkeypatch.setenv(ALLOW_ENV, "1")
    at = data_page()

    at.text_input(key="src_url").input(f"{base}/pets.zip")
    at.text_input(key="src_url_sha").input(sha)
    at.text_input(key="src_url_t_name").input("web-pets")
    at.run()
    at.button(key="src_url_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Imported 6 images into 'web-pets'" in s.value for s in at.success)

    db = tmp_path / "pics.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE pics (img BLOB, tag TEXT)")
        conn.executemany("INSERT INTO pics VALUES (?, ?)",
                         [(png_bytes(40 + i), "red" if i % 2 else "blue") for i in range(6)])
    at.text_input(key="src_sql").input(f"sqlite:///{db}")
    at.text_area(key="src_sql_q").input("SELECT img AS image, tag AS label FROM pics")
    at.text_input(key="src_sql_t_name").input("from-sql")
    at.run()
    at.button(key="src_sql_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Imported 6 images into 'from-sql'" in s.value for s in at.success)

    rng = np.random.default_rng(0)
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    _write_idx(raw, "train", rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10)
    _write_idx(raw, "t10k", rng.integers(0, 256, (10, 28, 28)), np.arange(10) % 10)
    at.selectbox(key="src_tv").select("FashionMNIST").run()
    at.text_input(key="src_tv_root").input(str(tmp_path / "tv"))
    at.text_input(key="src_tv_t_name").input("fashion")
    at.run()
    at.button(key="src_tv_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Imported 30 images into 'fashion'" in s.value for s in at.success)

    at.radio(key="up_kind").set_value("images").run()
    uploader = at.file_uploader(key="up_ima")
    for i in range(3):
        uploader.upload(f"leaf-{i}.png", png_bytes(70 + i), "image/png")
    at.text_input(key="up_t_name").input("leaves")
    at.run()
    at.text_input(key="up_newcls").input("oak")
    at.run()
    at.button(key="up_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Imported 3 images into 'leaves'" in s.value for s in at.success)
    from core.data.catalog import dataset_info
    info = dataset_info(workspace, "leaves")
    assert [(c["class"], c["total"]) for c in info.per_class] == [("oak", 3)]

    # a whole directory, into the class that now exists
    at.radio(key="up_kind").set_value("a whole directory").run()
    folder = at.file_uploader(key="up_a w")
    for i in range(4):
        folder.upload(f"more/leaf-{i}.png", png_bytes(80 + i), "image/png")
    at.radio(key="up_t_mode").set_value("an existing dataset").run()
    at.selectbox(key="up_t_existing").select("leaves").run()
    at.selectbox(key="up_cls").select("oak").run()
    at.button(key="up_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("Imported 4 images into 'leaves' (7 in total)" in s.value for s in at.success)
    info = dataset_info(workspace, "leaves")
    assert [(c["class"], c["total"]) for c in info.per_class] == [("oak", 7)]


def test_a_built_in_sample_from_the_sidebar_gets_the_same_report(workspace):
    at = data_page()
    at.sidebar.selectbox(key="sample_kind").select("digits").run()
    at.sidebar.text_input(key="sample_name_digits").input("my-digits").run()
    at.sidebar.button(key="sample_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    # the report every source gets, in the main area, and the new dataset selected
    assert any("Imported 1797 images into 'my-digits' (1797 in total)" in s.value
               for s in at.success), [s.value for s in at.success]
    assert at.selectbox(key="data_dataset").value == "my-digits"
    from core.data.catalog import dataset_info
    assert dataset_info(workspace, "my-digits").num_images == 1797

    # the same name again is refused with a clear message, and nothing is lost
    at.sidebar.button(key="sample_go").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.error, "a second import under the same name must be refused"
    assert dataset_info(workspace, "my-digits").num_images == 1797
