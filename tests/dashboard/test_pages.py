"""Every page runs without an exception (Streamlit's AppTest, no browser)."""


import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from tests.dashboard.apptest import open_page

PAGES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "pages").glob("*.py"))


def run_page(path: str) -> AppTest:
    return open_page(path, 60)


@pytest.mark.parametrize("page", ["streamlit_app.py", *PAGES])
def test_page_runs_without_exception(sample_workspace, page):
    at = run_page(page)
    assert not at.exception, [e.message for e in at.exception]
    assert at.title, "every page has a title"


def test_home_lists_datasets_and_device(sample_workspace):
    at = run_page("streamlit_app.py")
    table = at.table[0].value
    assert list(table.index) == ["digits", "mnist-5k", "shapes"]
    assert list(table["images"]) == [1797, 5000, 600]
    assert [m.value for m in at.metric][:2] == ["3", "7,397"]
    assert any("CPU" in m.value or "CUDA" in m.value for m in at.metric)


def test_home_on_empty_workspace_says_what_to_do(workspace):
    at = run_page("streamlit_app.py")
    assert not at.exception
    assert any("no datasets yet" in i.value for i in at.info)


def test_data_page_shows_counts_and_gallery(sample_workspace):
    at = run_page("pages/1_Data.py")
    assert [m.value for m in at.metric][:2] == ["1,797", "10"]
    at.selectbox(key="data_dataset").select("shapes").run()
    assert not at.exception
    assert at.metric[0].value == "600"
    spec = at.get("plotly_chart")[0].proto.spec
    assert "circle" in spec and "hexagon" in spec
    images = at.get("image")
    assert len(images) == 32 and "circle · " in str(images[0].proto)


def test_data_page_imports_a_sample(workspace):
    at = run_page("pages/1_Data.py")
    at.sidebar.selectbox[0].select("shapes")
    at.run()
    at.sidebar.text_input[0].input("my-shapes")
    at.sidebar.button[0].click().run(timeout=120)
    assert not at.exception
    assert any("Imported 3000 images" in s.value for s in at.success)
    assert "my-shapes" in at.selectbox(key="data_dataset").options


def test_finetune_page_without_runs_says_what_to_do_first(sample_workspace):
    at = run_page("pages/4_Fine-tune.py")
    assert not at.exception
    assert any("No run with a checkpoint yet" in i.value for i in at.info)
