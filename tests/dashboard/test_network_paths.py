"""Network mode (non-local address, password set, signed in): every box that takes a path on
the server is hidden without data roots, and with roots refuses anything outside them with
one message, whether or not the path exists (core/store/path_policy.py)."""

from __future__ import annotations

import os

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from core.store.path_policy import OUTSIDE_ROOTS
from dashboard.server_paths import HIDDEN_NOTE
from tests.conftest import REPO
from tests.core.data.corpus import write_imagefolder

PATH_KEYS = {"src_path", "src_sql", "src_tv_root"}


@pytest.fixture
def on_network(monkeypatch):
    old = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    monkeypatch.setenv("IMAGELAB_PASSWORD", "pw")
    yield
    st_config.set_option("server.address", old)


def signed_in(page: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=90).run()
    at.text_input[0].input("ada")
    at.text_input[1].input("pw")
    at.button[0].click().run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def keys(at: AppTest) -> set[str]:
    return {t.key for t in at.text_input}


def errors_after(at: AppTest, button: str) -> list[str]:
    at.run()  # the button is enabled once the box holds text
    at.button(key=button).click().run()
    assert not at.exception, [e.message for e in at.exception]
    return [e.value for e in at.error]


def test_without_roots_every_server_path_box_is_hidden(sample_workspace, on_network, monkeypatch):
    monkeypatch.delenv("IMAGELAB_DATA_ROOTS", raising=False)
    at = signed_in("pages/1_Data.py")
    assert not keys(at) & PATH_KEYS
    assert sum(HIDDEN_NOTE in c.value for c in at.caption) >= 2  # the Path and SQL tabs
    assert "src_url" in keys(at) and at.file_uploader  # URLs and uploads still work
    at.switch_page("pages/4_Fine-tune.py").run()
    at.radio(key="ft_source_kind").set_value("A weights file").run()
    assert "ft_path" not in keys(at)
    assert any(HIDDEN_NOTE in c.value for c in at.caption)
    assert not at.exception


def test_with_roots_outside_paths_get_one_message_and_a_root_imports(
        workspace, on_network, tmp_path, monkeypatch):
    root, outside = tmp_path / "root", tmp_path / "outside"
    write_imagefolder(root / "flowers", classes=("rose", "tulip"), per_class=2)
    write_imagefolder(outside / "private", classes=("a", "b"), per_class=1)
    (outside / "w.pt").write_bytes(b"weights")
    (outside / "x.db").write_bytes(b"")
    (root / "escape").symlink_to(outside)
    monkeypatch.setenv("IMAGELAB_DATA_ROOTS", str(root) + os.pathsep)
    at = signed_in("pages/1_Data.py")
    assert PATH_KEYS <= keys(at)

    # the same answer for an existing folder, a missing one, '..' and a link out of the root
    for path in (outside / "private", outside / "missing", f"{root}/../outside/private",
                 root / "escape" / "private"):
        at.text_input(key="src_path").input(str(path))
        assert errors_after(at, "src_path_go") == [OUTSIDE_ROOTS], path
    at.text_area(key="src_sql_q").input("SELECT path, label FROM t")
    for db in (outside / "x.db", outside / "missing.db"):
        at.text_input(key="src_sql").input(f"sqlite:///{db}")
        assert errors_after(at, "src_sql_go") == [OUTSIDE_ROOTS], db
    for folder in (outside / "private", outside / "tv-missing"):
        at.text_input(key="src_tv_root").input(str(folder))
        assert errors_after(at, "src_tv_go") == [OUTSIDE_ROOTS], folder
    assert not (outside / "tv-missing").exists()

    at.text_input(key="src_path").input(str(root / "flowers"))
    assert errors_after(at, "src_path_go") == []
    assert any("Imported 4 images into 'flowers'" in s.value for s in at.success)

    at.switch_page("pages/4_Fine-tune.py").run()
    at.radio(key="ft_source_kind").set_value("A weights file").run()
    answers = []
    for weights in (outside / "w.pt", outside / "missing.pt"):
        at.text_input(key="ft_path").input(str(weights)).run()
        assert not at.exception, [e.message for e in at.exception]
        answers.append([e.value for e in at.error])
    assert answers == [[OUTSIDE_ROOTS], [OUTSIDE_ROOTS]]
