"""The Demo page's URL box fetches through core.data.net: its address checks apply, and a
fetched image is predicted like any other input."""

from core.data.net import ALLOW_ENV
from tests.dashboard.apptest import open_page


def test_url_box_refuses_loopback_then_predicts_when_allowed(trained_workspace, http_server,
                                                             monkeypatch):
    base, _sha = http_server
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    at = open_page("pages/6_Demo.py", 180)
    at.text_input(key="demo_url").input(f"{base}/img/a.png").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("loopback" in e.value for e in at.error)       # the SSRF guard answered
    assert not at.subheader                                   # and nothing was predicted

    monkeypatch.setenv(ALLOW_ENV, "1")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error
    label = at.subheader[0].value
    assert label in [str(i) for i in range(10)] or label.startswith("unknown")
