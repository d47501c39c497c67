"""Safe on a network: local by default, a password gate otherwise."""

import subprocess
import sys
import tomllib

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO


def test_config_defaults_are_safe():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    server = cfg["server"]
    assert server["address"] == "127.0.0.1"
    assert server["enableXsrfProtection"] is True
    assert server["enableStaticServing"] is False
    assert 100 <= server["maxUploadSize"] <= 2048
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["client"]["showErrorDetails"] == "none"  # no stack trace in the browser


def launch(*args, env_extra=None):
    import os
    env = {k: v for k, v in os.environ.items() if k != "IMAGELAB_PASSWORD"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "dashboard.launch", *args, "--check"], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=60)


def test_launcher_refuses_network_host_without_password():
    out = launch("--host", "0.0.0.0")
    assert out.returncode == 2
    assert "refusing to serve on 0.0.0.0" in out.stderr and "IMAGELAB_PASSWORD" in out.stderr


def test_launcher_allows_network_host_with_password_and_local_without():
    assert launch("--host", "0.0.0.0", env_extra={"IMAGELAB_PASSWORD": "s3cret"}).returncode == 0
    assert launch("--host", "127.0.0.1").returncode == 0


def test_make_run_refuses_without_password():
    import os
    env = {k: v for k, v in os.environ.items() if k != "IMAGELAB_PASSWORD"}
    out = subprocess.run(["make", "run", "HOST=0.0.0.0"], cwd=REPO, capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "refusing to serve" in out.stderr


@pytest.fixture
def network_mode():
    old = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", old)


def test_network_mode_without_password_serves_nothing(sample_workspace, network_mode, monkeypatch):
    monkeypatch.delenv("IMAGELAB_PASSWORD", raising=False)
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
    assert any("no password is set" in e.value for e in at.error)
    assert not at.table  # no workspace data shown


def test_network_mode_login_gate(sample_workspace, network_mode, monkeypatch):
    monkeypatch.setenv("IMAGELAB_PASSWORD", "correct horse")
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
    assert not at.table and len(at.text_input) == 2
    at.text_input[0].input("ada")
    at.text_input[1].input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    assert not at.table
    at.text_input[1].input("correct horse")
    at.button[0].click().run()
    assert not at.exception
    assert list(at.table[0].value.index) == ["digits", "mnist-5k", "shapes"]
    assert any("Signed in as ada" in c.value for c in at.sidebar.caption)


def test_label_events_record_the_signed_in_name(sample_workspace, network_mode, monkeypatch):
    monkeypatch.setenv("IMAGELAB_PASSWORD", "pw")
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
    at.text_input[0].input("grace")
    at.text_input[1].input("pw")
    at.button[0].click().run()
    at.switch_page("pages/2_Label.py")
    at.run()
    at.radio(key="label_mode").set_value("Classes").run()
    at.text_input(key="cls_add_name").input("unknown-thing")
    at.button(key="cls_add").click().run()
    assert not at.exception, [e.message for e in at.exception]
    with sample_workspace.db() as conn:
        user = conn.execute("SELECT user FROM actions ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert user == "grace"


def test_failed_sign_ins_back_off_per_address():
    from dashboard.login_throttle import FREE_FAILURES, LoginThrottle
    throttle = LoginThrottle()
    for _ in range(FREE_FAILURES):
        assert throttle.wait_s("10.0.0.7") == 0
        throttle.failed("10.0.0.7")
    assert 0.5 < throttle.wait_s("10.0.0.7") <= 1.0   # the first wait: 1 s
    assert throttle.wait_s("10.0.0.8") == 0           # another address is not slowed
    throttle.failed("10.0.0.7")
    assert 1.5 < throttle.wait_s("10.0.0.7") <= 2.0   # the wait doubles
    throttle.succeeded("10.0.0.7")
    assert throttle.wait_s("10.0.0.7") == 0


def test_the_login_gate_refuses_even_the_right_password_while_backing_off(
        sample_workspace, network_mode, monkeypatch):
    from dashboard.auth import login_throttle
    from dashboard.login_throttle import FREE_FAILURES
    monkeypatch.setenv("IMAGELAB_PASSWORD", "correct horse")
    login_throttle.clear()
    try:
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
        at.text_input[0].input("eve")
        at.text_input[1].input("guess")
        at.button[0].click().run()
        assert any("Wrong password" in e.value for e in at.error)
        # the guesses a script would make next, faster than any page (AppTest has no
        # client address: every session counts as "unknown")
        for _ in range(FREE_FAILURES + 5):
            login_throttle().failed("unknown")
        at.text_input[1].input("correct horse")
        at.button[0].click().run()
        assert any("Too many failed sign-ins" in e.value for e in at.error)
        assert not at.table                              # still not signed in
    finally:
        login_throttle.clear()
