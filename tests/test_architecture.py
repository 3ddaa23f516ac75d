"""The shape of the code base: no import circle, models/ as the ground floor, lazy imports only
where they must be, every technique reachable by name, no citation of files outside the repo."""
import ast
import re
from pathlib import Path

import jax
import pytest

from cnn_vis import models

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cnn_vis", "experiments")
# What the ground floor may import from the project.
MODELS_MAY_IMPORT = ("cnn_vis.models", "cnn_vis.errors")


def _module_name(path: Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
  return {_module_name(p): p for package in PACKAGES for p in (REPO / package).rglob("*.py")}


def _target(name: str, modules) -> str | None:
  """The project module an import of `name` refers to (None: outside the project)."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name or None


def _imports(path: Path, modules):
  """(target module, line number, inside a function, source line) of each project import."""
  source = path.read_text()
  lines = source.splitlines()
  tree = ast.parse(source)
  function_nodes = {id(node) for fn in ast.walk(tree)
                    if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for node in ast.walk(fn) if node is not fn}
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      names = [f"{node.module}.{alias.name}" for alias in node.names]
    else:
      continue
    for name in names:
      yield _target(name, modules), node.lineno, id(node) in function_nodes, lines[node.lineno - 1]


@pytest.fixture(scope="module")
def graph():
  modules = _modules()
  return {name: [(t, line, nested, text) for t, line, nested, text in _imports(path, modules)]
          for name, path in modules.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module, or a module importing itself."""
  index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in edges.get(v, ()):
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
      if len(component) > 1 or v in edges.get(v, ()):
        out.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      visit(v)
  return out


def test_no_import_circle_anywhere(graph):
  edges = {name: {t for t, *_ in imports if t and t != name} for name, imports in graph.items()}
  assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_circle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []


def test_models_import_nothing_from_the_layers_above(graph):
  bad = [(name, t, line) for name, imports in graph.items() if name.startswith("cnn_vis.models")
         for t, line, _, _ in imports if t and not t.startswith(MODELS_MAY_IMPORT)]
  assert bad == []


def test_imports_inside_functions_say_why_they_are_lazy():
  """An import inside a function is allowed only for a heavy or conflicting dependency, with a
  `# lazy: <reason>` comment on its line."""
  bad = []
  for name, path in _modules().items():
    lines = path.read_text().splitlines()
    tree = ast.parse(path.read_text())
    for fn in ast.walk(tree):
      if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for node in ast.walk(fn):
          if isinstance(node, (ast.Import, ast.ImportFrom)) and \
              not re.search(r"#\s*lazy:\s*\S", lines[node.lineno - 1]):
            bad.append(f"{name}:{node.lineno}: {lines[node.lineno - 1].strip()}")
  assert bad == []


def test_nothing_cites_a_file_outside_the_repository():
  pattern = re.compile(r"(?<!docs/)PAPERS\.md|\.\./shared/PAPERS|shared/DESIGN\.md")
  hits = [f"{p.relative_to(REPO)}:{i}" for folder in ("cnn_vis", "experiments", "configs",
                                                      "tests", "benchmarks")
          for p in (REPO / folder).rglob("*.py") for i, line in
          enumerate(p.read_text().splitlines(), 1) if pattern.search(line)
          and p.name != "test_architecture.py"]
  assert hits == []
  assert (REPO / "docs" / "papers.md").is_file()


def test_every_model_lists_its_layers_in_forward_order():
  for name in models.list_models():
    spec = models.get_spec(name)
    fn = models.ModelFn(models.build(name))
    variables = jax.eval_shape(lambda: models.init_variables(name, fn.module))
    shapes = models.output_shapes(fn, variables, (1, spec.input_size, spec.input_size, 3))
    order = [k for k in shapes if k is not None and k != fn.logits_name]
    assert order == fn.layer_names == models.layer_names(name), name
    for layer, field in fn.receptive_fields(spec.input_size).items():
      if len(shapes[layer]) == 4:
        assert (field.height, field.width) == shapes[layer][1:3], (name, layer)
    assert spec.last_conv in fn.layer_names and len(shapes[spec.last_conv]) == 4, name
