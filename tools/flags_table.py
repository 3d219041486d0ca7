"""Writes README.md's flag tables from the flag definitions of every program.

  python tools/flags_table.py          # rewrites the part of README.md between the markers
  python tools/flags_table.py --check  # exit 1 when README.md differs from the definitions

Each program's flags live in absl's global registry, so each program is read in its own process.
tests/apps/test_bad_input.py checks the same tables in its per-program processes.
"""

import os
import runpy
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- flags:begin (tools/flags_table.py) -->", "<!-- flags:end -->"
# console script -> module, from the program registry (read as a file, as setup.py does)
PROGRAMS = {p.script: p.module for p in runpy.run_path(
    os.path.join(ROOT, "lamp_tf", "apps", "registry.py"))["PROGRAMS"]}
DUMP = ("import importlib, sys; from lamp_tf.runtime import flags as f; "
        "importlib.import_module(sys.argv[1]); print(f.flags_table(sys.argv[1]))")


def program_section(script, table):
  """One program's part of the README section (a collapsible block)."""
  return f"<details><summary><code>{script}</code></summary>\n\n{table}\n\n</details>\n"


def readme_table(script, text=None):
  """The table README.md shows for one program (None when it has none)."""
  text = text if text is not None else open(README).read()
  start = text.find(f"<summary><code>{script}</code></summary>")
  if start < 0:
    return None
  body = text[start:text.index("</details>", start)]
  return body.split("\n\n", 1)[1].strip()


def generate():
  parts = []
  for script, module in PROGRAMS.items():
    out = subprocess.run([sys.executable, "-c", DUMP, module], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if ROOT in out.stdout:  # the README is read on other machines (CI checks out elsewhere)
      sys.exit(f"{script}: a flag's default names this checkout ({ROOT}); make it relative.")
    parts.append(program_section(script, out.stdout.strip()))
  return "\n".join(parts)


def main():
  text = open(README).read()
  head, rest = text.split(BEGIN)
  _, tail = rest.split(END)
  new = f"{head}{BEGIN}\n{generate()}{END}{tail}"
  if "--check" in sys.argv:
    sys.exit(0 if new == text else "README.md's flag tables differ from the definitions: run "
             "python tools/flags_table.py")
  with open(README, "w") as f:
    f.write(new)


if __name__ == "__main__":
  main()
