"""Rules the whole codebase keeps, checked by reading the source."""

import ast
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


# --- Imports: no circles, no import up the layer order, few and explained lazy imports ------
#
# Every import statement is read with ``ast``, including those inside functions (they run
# too, just later). The layer order of ``core/`` is documented in docs/ARCHITECTURE.md.

CORE_LAYERS = ["base", "store", "data", "labels", "models", "training", "finetune",
               "evaluation", "embeddings", "active", "inference", "cli"]
# Modules directly under core/: where each sits in CORE_LAYERS.
CORE_TOP_LEVEL = {
    "core": "base",                 # the package docstring and version
    "core.errors": "base",          # ImageLabError: raised everywhere, imports nothing
    "core.device": "base",
    "core.processes": "base",       # is a job's pid alive: imports nothing of the project
    "core.units": "base",           # sizes in MiB/GiB for every message: imports nothing          # device discovery: imports nothing of the project
    "core.runs_overview": "training",  # the Home page's run summary: runs are training's rows
    "core.__main__": "cli",         # ``python -m core``
}
MAX_FUNCTION_LEVEL_IMPORTS = 10
LAZY_REASON = re.compile(r"#\s*lazy:\s*\S.{5,}")   # e.g. ``# lazy: keeps --help free of torch``


def project_files():
    files = [p for top in ("core", "dashboard", "pages")
             for p in sorted((REPO / top).rglob("*.py"))]
    return files + [REPO / "streamlit_app.py"]


def module_name(path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(source: str, mod: str, is_package: bool, modules: set[str]):
    """Yield (target module, import node, inside a function?) for each import of a module
    in ``modules`` by the module ``mod`` whose code is ``source``."""
    tree = ast.parse(source)
    nested = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested.update(id(n) for n in ast.walk(fn) if n is not fn)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: resolve against this module's package
                package = mod.split(".") if is_package else mod.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            # ``from pkg import submodule`` imports the submodule; any other name, the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target in modules and target != mod:
                yield target, node, id(node) in nested


def project_imports():
    """Yield (module, path, target module, import node, function-level?) for every import
    of a project module by a project module."""
    files = project_files()
    modules = {module_name(p) for p in files}
    for path in files:
        mod = module_name(path)
        for target, node, lazy in module_imports(path.read_text(), mod,
                                                 path.name == "__init__.py", modules):
            yield mod, path, target, node, lazy


def core_layer(module: str) -> int:
    parts = module.split(".")
    if module in CORE_TOP_LEVEL:
        return CORE_LAYERS.index(CORE_TOP_LEVEL[module])
    assert parts[1] in CORE_LAYERS, f"{module}: add its package to CORE_LAYERS and ARCHITECTURE.md"
    return CORE_LAYERS.index(parts[1])


def import_circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, circles, counter = {}, {}, set(), [], [], [0]
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return circles


def test_import_reader_sees_imports_inside_functions_and_relative_ones():
    modules = {"core.a", "core.a.b", "core.a.c", "core.d"}
    source = ("import json\nfrom core.a import b\nfrom . import c\n"
              "def f():\n    from ..d import X\n    import core.a.b\n")
    found = [(t, n.lineno, lazy) for t, n, lazy in module_imports(source, "core.a.e", False,
                                                                   modules)]
    assert found == [("core.a.b", 2, False), ("core.a.c", 3, False),
                     ("core.d", 5, True), ("core.a.b", 6, True)]


def test_import_circle_finder_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert import_circles(edges) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_between_project_modules():
    edges: dict[str, set[str]] = {}
    for mod, _path, target, _node, _lazy in project_imports():
        edges.setdefault(mod, set()).add(target)
    assert import_circles(edges) == []


def test_core_imports_only_down_the_layer_order():
    upward = []
    for mod, path, target, node, _lazy in project_imports():
        if not mod.startswith("core"):
            continue
        where = f"{path.relative_to(REPO)}:{node.lineno}"
        if not target.startswith("core"):
            upward.append(f"{where} {mod} -> {target} (core imports no UI)")
        elif core_layer(target) > core_layer(mod):
            upward.append(f"{where} {mod} -> {target}")
    assert upward == []


def test_function_level_imports_are_few_and_explained():
    lazy, unexplained = {}, []      # one entry per import statement
    for _mod, path, target, node, is_lazy in project_imports():
        if not is_lazy:
            continue
        where = f"{path.relative_to(REPO)}:{node.lineno}"
        if where in lazy:
            continue
        lazy[where] = target
        lines = path.read_text().splitlines()
        nearby = lines[max(node.lineno - 2, 0):node.end_lineno]   # the line above and the statement
        if not any(LAZY_REASON.search(line) for line in nearby):
            unexplained.append(where)
    assert unexplained == [], "a function-level project import needs '# lazy: <reason>'"
    assert len(lazy) <= MAX_FUNCTION_LEVEL_IMPORTS, sorted(lazy)


# --- Size and docstrings: small modules, and every public name of core/ says what it does ---

MAX_MODULE_LINES = {"core": 310, "dashboard": 310, "pages": 125}


def test_modules_are_small():
    too_long = []
    for folder, limit in MAX_MODULE_LINES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            n = len(path.read_text().splitlines())
            if n > limit:
                too_long.append(f"{path.relative_to(REPO)}: {n} lines (limit {limit})")
    assert too_long == []


def undocumented_public_names(tree: ast.Module) -> list[str]:
    """Public functions and classes (module level and in class bodies) without a docstring."""
    missing = []

    def visit(body, prefix=""):
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if node.name.startswith("_"):
                continue
            if ast.get_docstring(node) is None:
                missing.append(f"{prefix}{node.name}:{node.lineno}")
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
    visit(tree.body)
    return missing


def test_docstring_finder_finds_a_missing_one():
    tree = ast.parse("def a():\n    '''Doc.'''\n\nclass B:\n    def c(self):\n        pass\n"
                     "    def _d(self):\n        pass\n")
    assert undocumented_public_names(tree) == ["B:4", "B.c:5"]


def test_every_public_function_and_class_of_core_has_a_docstring():
    missing = [f"{path.relative_to(REPO)}:{name}"
               for path in sorted((REPO / "core").rglob("*.py"))
               for name in undocumented_public_names(ast.parse(path.read_text()))]
    assert missing == [], f"{len(missing)} public names without a docstring"
