"""Rules the whole codebase keeps, checked by reading the source."""

import re
import subprocess

from tests.conftest import REPO


def tracked_python_files():
    out = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True)
    files = [REPO / p for p in out.stdout.split()]
    # Include new, not yet committed files too (what is on disk is what runs).
    files += [p for p in REPO.glob("**/*.py") if ".venv" not in p.parts and p not in files]
    return [p for p in files if p.exists()]


def test_core_never_imports_streamlit():
    offenders = [str(p) for p in (REPO / "core").rglob("*.py")
                 if re.search(r"^\s*(import streamlit|from streamlit)", p.read_text(), re.M)]
    assert offenders == []


def test_every_torch_load_passes_weights_only_true():
    offenders = []
    for path in tracked_python_files():
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            # the call's argument list, up to its closing parenthesis
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            if "weights_only=True" not in text[m.end():i] and path.name != "test_codebase_rules.py":
                offenders.append(f"{path.relative_to(REPO)}:{text[:m.start()].count(chr(10)) + 1}")
    assert offenders == []


def test_no_unsafe_html_in_the_ui():
    offenders = [str(p.relative_to(REPO)) for p in tracked_python_files()
                 if "unsafe_allow_html=True" in p.read_text()
                 and p.parts[len(REPO.parts)] in ("pages", "dashboard", "streamlit_app.py")]
    assert offenders == []
