"""Every module and test file belongs to a Bazel target, and every program has a console script.

BUILD files are Starlark, which for our files is Python syntax: they are evaluated here with the
rules replaced by functions that record their sources, and `glob` implemented on the tree.
"""

import ast
import glob as globlib
import os

from lamp_tf.apps import registry
from tests.conftest import REPO_ROOT


def _evaluate(build_file, deps=None):
  """(sources, rule names) of a BUILD file; `deps`, when given, gets {rule name: its deps}."""
  package = os.path.dirname(os.path.relpath(build_file, REPO_ROOT))
  sources, names = set(), []

  def glob(include, exclude=()):
    base = os.path.join(REPO_ROOT, package)
    found = {os.path.relpath(p, base) for pattern in include
             for p in globlib.glob(os.path.join(base, pattern), recursive=True)}
    dropped = {os.path.relpath(p, base) for pattern in exclude
               for p in globlib.glob(os.path.join(base, pattern), recursive=True)}
    return sorted(found - dropped)

  def rule(name, srcs=(), src=None, **kwargs):
    names.append(name)
    if deps is not None:
      deps[name] = [d.lstrip(":") for d in kwargs.get("deps", ())]
    for s in list(srcs) + ([src] if src else []):
      if not s.startswith("//"):
        sources.add(os.path.normpath(os.path.join(package, s)))

  env = {"glob": glob, "load": lambda *a, **k: None, "package": lambda **k: None,
         "exports_files": lambda *a, **k: None}
  for r in ("py_library", "py_binary", "py_test", "pytest_test", "py_runtime", "toolchain",
            "py_runtime_pair", "alias", "filegroup", "sh_binary"):
    env[r] = rule
  exec(compile(open(build_file).read(), build_file, "exec"), env)  # noqa: S102
  return sources, names


def _covered():
  sources, names = set(), []
  for build in ("BUILD", "tests/BUILD", "tools/bazel/BUILD"):
    s, n = _evaluate(os.path.join(REPO_ROOT, build))
    sources |= s
    names += n
  return sources, names


def _python_files(top):
  return {os.path.relpath(p, REPO_ROOT)
          for p in globlib.glob(os.path.join(REPO_ROOT, top, "**", "*.py"), recursive=True)}


def test_every_module_and_test_file_is_in_a_bazel_target():
  sources, names = _covered()
  missing = sorted((_python_files("lamp_tf") | _python_files("tests")) - sources)
  assert not missing, f"add these to a target in BUILD or tests/BUILD: {missing}"
  tests = sorted(p for p in _python_files("tests") if os.path.basename(p).startswith("test_"))
  assert all(p[len("tests/"):-3].replace("/", "_") in names for p in tests)


def test_every_registered_program_and_only_those_has_a_console_script_and_a_bazel_binary():
  with open(os.path.join(REPO_ROOT, "setup.py")) as f:
    tree = ast.parse(f.read())
  # setup.py builds its console scripts from the registry rather than listing them.
  assert "PROGRAMS" in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
  _, names = _covered()
  binaries = {n for n in names if n.startswith("lamp-tf-")}
  assert binaries == {p.script for p in registry.PROGRAMS}, (
      "BUILD makes a py_binary of every lamp_tf/apps module not in APPS_HELPERS: add a new "
      "program to lamp_tf/apps/registry.py, a helper module to APPS_HELPERS")
  for p in registry.PROGRAMS:  # read, not imported: programs define flags of the same names
    with open(os.path.join(REPO_ROOT, *p.module.split(".")) + ".py") as f:
      functions = {n.name for n in ast.parse(f.read()).body if isinstance(n, ast.FunctionDef)}
    assert "run" in functions, f"{p.module} has no run(), its console script's entry point"


def test_no_package_imports_one_its_bazel_target_does_not_depend_on():
  """The layering: each lamp_tf package (a py_library named after it) imports only packages its
  target reaches through its deps, so no lower layer imports a method or an upper one."""
  deps = {}
  _evaluate(os.path.join(REPO_ROOT, "BUILD"), deps)
  reach = {}

  def reachable(name):
    if name not in reach:
      reach[name] = set(deps.get(name, ()))
      for d in deps.get(name, ()):
        reach[name] |= reachable(d)
    return reach[name]

  packages = sorted(n for n in deps if os.path.isdir(os.path.join(REPO_ROOT, "lamp_tf", n)))
  assert {"runtime", "gan", "metrics", "continual", "mixmatch", "transfer_gan"} <= set(packages)
  wrong = []
  for package in packages:
    for path in globlib.glob(os.path.join(REPO_ROOT, "lamp_tf", package, "*.py")):
      with open(path) as f:
        tree = ast.parse(f.read())
      for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
          parts = name.split(".")
          if parts[0] == "lamp_tf" and len(parts) > 1 and parts[1] != package and \
              parts[1] not in reachable(package):
            wrong.append(f"{os.path.relpath(path, REPO_ROOT)} imports lamp_tf.{parts[1]}")
  assert not wrong, wrong


def test_make_test_and_bazel_run_the_tests_a_plain_pytest_leaves_out():
  """pytest.ini leaves the slow tests out of a plain `pytest`; `make test` (what CI runs) and
  every Bazel test select them again with an empty mark expression."""
  with open(os.path.join(REPO_ROOT, "pytest.ini")) as f:
    assert 'addopts = -m "not slow"' in f.read()
  with open(os.path.join(REPO_ROOT, "Makefile")) as f:
    recipe = f.read().split("\ntest: ")[1].split("\n\n")[0]
  assert "pytest" in recipe and '-m ""' in recipe, recipe
  with open(os.path.join(REPO_ROOT, "tools", "bazel", "pytest_main.py")) as f:
    assert '"-m", ""' in f.read()
