"""The package's structure: no import circles between its modules."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sklss"


def module_name(path, package=PACKAGE):
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package=PACKAGE, module_level_only=True):
    """Edges ``importer -> imported`` between sklss modules, from their source.

    ``from . import name`` counts as an import of the submodule ``name`` when one exists, and
    of the package otherwise. With ``module_level_only``, imports inside functions (done when
    called) are left out, as they do not run at import time.
    """
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if module_level_only else list(ast.walk(tree))
        is_package = path.name == "__init__.py"
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    graph[name].add(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        graph[name].add(alias.name)
    for m in graph:
        graph[m] = {t for t in graph[m] if t in modules and t != m}
    return graph


def find_cycle(graph):
    """One import circle as a list of modules, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt, stack)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("module_level_only", [True, False])
def test_sklss_modules_import_each_other_without_circles(module_level_only):
    # Module level: what runs at import time. All imports, deferred ones included: no module
    # reaches back up to one that imports it, not even lazily.
    graph = import_graph(module_level_only=module_level_only)
    assert len(graph) > 30 and graph["sklss.io"] >= {"sklss._archive", "sklss.encoder"}
    # Before the archive layer, io imported the package (for its version) while the package
    # imported the estimators, which imported io through their checkpoints: a circle.
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def _source_files(package=PACKAGE):
    return {module_name(p, package): p.read_text() for p in package.rglob("*.py")}


@pytest.mark.parametrize(
    "needle, owners",
    [
        # Seeds and random streams come from one module.
        ("SeedSequence(", {"sklss._random"}),
        # scikit-learn's helper would hand out numpy's global generator for None.
        ("check_random_state(", set()),
        # Nets are assembled in one place: the shared iterator, optimizer and split.
        ("iterator_train=", {"sklss._training"}),
        ("predefined_split(", {"sklss._training"}),
        ("optimizer=torch.optim.Adam", {"sklss._training"}),
        # One checkpoint hook, added by the skeleton's callbacks.
        ("checkpoint_callbacks(", {"sklss._checkpoint", "sklss._training"}),
        # One eigen-solver of the VAC problem.
        ("W0.T @ C0t @ W0", {"sklss._covariance"}),
        # One way to hand back a list for list input and an array for array input.
        ("if is_list else arrays[0]", {"sklss._validation"}),
        # One integer check.
        ("not isinstance(value, Integral)", {"sklss._validation"}),
    ],
)
def test_shared_pieces_live_in_one_module(needle, owners):
    users = {name for name, text in _source_files().items() if needle in text}
    assert users == owners, f"{needle!r} is used in {sorted(users - owners)}"


def test_the_one_place_check_sees_a_planted_copy(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("x = SeedSequence(0)\n")
    (package / "b.py").write_text("y = SeedSequence(1)\n")
    users = {n for n, text in _source_files(package).items() if "SeedSequence(" in text}
    assert users == {"pkg.a", "pkg.b"}
