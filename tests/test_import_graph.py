"""facelab's modules import one way: no import cycles, counting imports inside functions too.

The graph is read from the source with ``ast`` (no third-party tool): an edge A -> B for every
``import``/``from ... import`` in module A, anywhere in its body, that names facelab module B.
The package's lazy re-export table (``facelab/__init__.py``) is not an import.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "facelab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    edges.add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = {e for e in edges if e in modules and e != name} if name != "facelab" else set()
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "facelab.checkpoints" in graph["facelab.inference.runtime"] and "facelab.inference.runtime" in graph["facelab.inference.clip_features"]
    assert "facelab.zoo" in graph["facelab.checkpoints"]


def test_facelab_has_no_import_cycles():
    assert cycles(import_graph()) == []


#: The pipeline's layers, lowest first: a module may import its own layer and the ones below.
LAYERS = [
    {"errors", "labels", "paths", "parallel"},
    {"data", "faces", "synth"},
    {"models", "losses", "sam", "metrics", "legacy_pickle", "zoo", "checkpoints"},
    {"inference"},
    {"training"},
    {"apps"},
]


def layer_of(module: str) -> int:
    part = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_the_layers_import_one_way_only():
    """data -> models -> inference -> training -> apps: training evaluates through the inference runners,
    inference never needs training."""
    wrong = []
    for module, targets in import_graph().items():
        if module == "facelab":
            continue
        for target in targets - {"facelab"}:  # the package itself: its version and lazy table
            if layer_of(target) > layer_of(module):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_library_imports_none_of_the_course_extra():
    """`pip install facelab` (without [course]) is enough for the CLI, the analyzer, training and the zoo."""
    import subprocess
    import sys

    script = ("import sys\n"
              "import facelab.apps.cli, facelab.inference.analyze, facelab.inference.video, facelab.training.train\n"
              "import facelab.training.evaluate, facelab.data.datasets, facelab.zoo, facelab.synth.writers\n"
              "extra = {'matplotlib', 'seaborn', 'umap', 'ipywidgets', 'skimage', 'jupyterlab', 'voila', 'nbclient',\n"
              "         'nbformat', 'nbconvert', 'IPython'}\n"
              "print(sorted(extra & {m.split('.')[0] for m in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
