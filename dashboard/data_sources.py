"""The Data page's import panel: one tab per source, a progress bar, the import report.

Every tab ends in ``core.data.sources`` (``import_source`` or ``import_uploads``);
this module only turns widgets into those calls and shows the result.
"""

from __future__ import annotations

import streamlit as st

from core.data.catalog import dataset_info
from core.data.import_rows import ImportReport
from core.data.sources import ImportOptions, default_name, import_source, import_uploads
from core.data.sources.torchvision_sets import BUILT_INS
from core.errors import ImageLabError
from dashboard.label_actions import show_error
from dashboard.server_paths import hidden_note, network, path_inputs_allowed, roots_note

IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "tif", "tiff", "webp", "ppm", "pgm"]
ARCHIVE_TYPES = ["zip", "tar", "gz", "tgz"]


def _progress_callback(bar):
    def update(done: int, total: int | None, message: str) -> None:
        frac = min(done / total, 1.0) if total else 0.5
        bar.progress(frac, text=message)
    return update


def run_import(action) -> ImportReport | None:
    """Run ``action(progress)`` under a progress bar; keep the report for the rerun."""
    bar = st.progress(0.0, text="Starting…")
    try:
        report = action(_progress_callback(bar))
    except ImageLabError as exc:
        bar.empty()
        show_error(exc)
        return None
    bar.progress(1.0, text="Done")
    st.session_state["data_last_report"] = report.to_dict()
    st.session_state["data_dataset"] = report.name
    return report


def target_picker(datasets: list[str], key: str) -> tuple[str, bool]:
    """New dataset name, or an existing dataset to add to."""
    mode = st.radio("Into", ["a new dataset", "an existing dataset"], horizontal=True,
                    key=f"{key}_mode", disabled=not datasets)
    if mode == "an existing dataset" and datasets:
        return st.selectbox("Dataset to add to", datasets, key=f"{key}_existing"), True
    return st.text_input("New dataset name", key=f"{key}_name",
                         placeholder="letters, digits, . _ -").strip(), False


def class_picker(ws, name: str, append: bool, key: str) -> str | None:
    classes = dataset_info(ws, name).classes if append and name else []
    choice = st.selectbox("Class", ["(new class)", "(unlabelled)", *classes], key=f"{key}_cls")
    if choice == "(new class)":
        return st.text_input("New class name", key=f"{key}_newcls").strip() or None
    return None if choice == "(unlabelled)" else choice


def import_panel(ws, datasets: list[str]) -> None:
    tabs = st.tabs(["Folder or file", "Upload", "URL", "SQL", "Built-in", "Webcam"])
    with tabs[0]:
        st.caption("A folder (class sub-folders, optionally under train/ val/ test/, or a flat "
                   "folder), an archive (zip, tar, tar.gz, tgz) or a CSV/JSON manifest of "
                   "`path|url,label[,split]` on this machine.")
        if path_inputs_allowed():
            roots_note()
            path = st.text_input("Path", key="src_path")
            name, append = target_picker(datasets, "src_path_t")
            if st.button("Import", key="src_path_go", type="primary", disabled=not path):
                run_import(lambda p: import_source(
                    ws, path, name or default_name(path),
                    ImportOptions(append=append, network=network()), progress=p))
        else:
            hidden_note()
    with tabs[1]:
        kind = st.radio("Upload", ["an archive", "images", "a whole directory"], horizontal=True,
                        key="up_kind")
        name, append = target_picker(datasets, "up_t")
        if kind == "an archive":
            up = st.file_uploader("Archive (zip, tar, tar.gz, tgz)", type=ARCHIVE_TYPES,
                                  key="up_archive")
            label = None
        else:
            up = st.file_uploader("Images", type=IMAGE_TYPES, key=f"up_{kind[:3]}",
                                  accept_multiple_files="directory" if "directory" in kind else True)
            label = class_picker(ws, name, append, "up")
        files = [] if up is None else ([up] if not isinstance(up, list) else up)
        if st.button("Import upload", key="up_go", type="primary", disabled=not files):
            target = name or (default_name(files[0].name) if kind == "an archive" else "uploads")
            payload = [(f.name, f.getvalue()) for f in files]
            run_import(lambda p: import_uploads(ws, target, payload, label=label, append=append,
                                                progress=p, source=f"upload:{files[0].name}"))
    with tabs[2]:
        url = st.text_input("URL of an archive or a manifest", key="src_url")
        c1, c2, c3 = st.columns(3)
        sha = c1.text_input("SHA-256 (optional)", key="src_url_sha")
        max_mb = c2.number_input("Size cap (MiB)", 1, 20_000, 2048, key="src_url_mb")
        timeout = c3.number_input("Timeout (s)", 1, 3600, 60, key="src_url_timeout")
        st.caption("Private and loopback addresses are refused unless IMAGELAB_ALLOW_PRIVATE_URLS=1.")
        name, append = target_picker(datasets, "src_url_t")
        if st.button("Download and import", key="src_url_go", type="primary", disabled=not url):
            run_import(lambda p: import_source(
                ws, url, name or default_name(url),
                ImportOptions(append=append, sha256=sha or None, max_bytes=int(max_mb * 1024 ** 2),
                              timeout=float(timeout)), progress=p))
    with tabs[3]:
        if not path_inputs_allowed():
            hidden_note()
        else:
            sql_tab(ws, datasets)
    with tabs[4]:
        which = st.selectbox("torchvision dataset", [b.name for b in BUILT_INS.values()],
                             key="src_tv")
        root = None
        if path_inputs_allowed():
            root = st.text_input("Folder that already holds its files (optional)",
                                 key="src_tv_root",
                                 help="Default: the workspace's torchvision/ folder. Offline, "
                                      "the files must already be there.")
        limit = st.number_input("Images per split (0 = all)", 0, 1_000_000, 0, key="src_tv_limit")
        name, append = target_picker(datasets, "src_tv_t")
        if st.button("Import built-in", key="src_tv_go", type="primary"):
            run_import(lambda p: import_source(
                ws, f"torchvision:{which}", name or which.lower(),
                ImportOptions(append=append, root=root or None, limit=int(limit) or None,
                              network=network()), progress=p))
    with tabs[5]:
        st.caption("Teachable-Machine style: pick or create a class, then capture shots into it.")
        name, append = target_picker(datasets, "cam_t")
        label = class_picker(ws, name, append, "cam")
        shot = st.camera_input("Take a shot", key="cam_shot")
        if st.button("Add shot", key="cam_go", type="primary", disabled=shot is None or not name):
            data = shot.getvalue()
            exists = append or name in datasets
            run_import(lambda p: import_uploads(ws, name, [("webcam.jpg", data)], label=label,
                                                append=exists, progress=p, source="webcam"))


def sql_tab(ws, datasets: list[str]) -> None:
    """The SQL tab: a SQLAlchemy URL and a query (in network mode: SQLite under the roots)."""
    roots_note()
    sql_url = st.text_input("SQLAlchemy URL", key="src_sql", placeholder="sqlite:///path/to/file.db")
    query = st.text_area("Query", key="src_sql_q",
                         placeholder="SELECT image, label FROM pictures   -- or: path, label[, split]")
    st.caption("The database is opened read-only.")
    name, append = target_picker(datasets, "src_sql_t")
    if st.button("Run and import", key="src_sql_go", type="primary",
                 disabled=not (sql_url and query)):
        run_import(lambda p: import_source(
            ws, sql_url, name or default_name(sql_url),
            ImportOptions(append=append, query=query, network=network()), progress=p))


def import_report(report: dict) -> None:
    """The import report: counts, every skipped file with its reason, and the findings."""
    st.success(f"Imported {report['added']} images into {report['name']!r} "
               f"({report['num_images']} in total).")
    skipped = report.get("skipped") or []
    if skipped:
        st.warning(f"{len(skipped)} file(s) skipped — nothing is dropped silently:")
        st.table([{"file": s["path"], "reason": s["reason"]} for s in skipped[:200]])
    for key, what in (("duplicates", "exact duplicates"), ("label_conflicts", "same image, two labels"),
                      ("leakage", "same image in two splits (leakage)")):
        if report.get(key):
            st.info(f"{what}: {len(report[key])} group(s) — see the quality report below.")
    for note in (report.get("notes") or [])[:20]:
        st.caption(note)
