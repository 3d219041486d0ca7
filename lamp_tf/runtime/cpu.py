"""The CPU a program or a benchmark runs on, from Linux's /proc/cpuinfo: its model name and the
x86 instruction-set flags that decide how fast each precision runs (bfloat16 is native only with
avx512_bf16 or amx_bf16; without them TensorFlow emulates it, several times slower than float32).

Read here once, for the `--precision` check (lamp_tf/runtime/precision.py) and for the CPU
record beside each benchmark's numbers (benchmarks/*.py, benchmarks/report.py).
"""

import collections

CPUINFO = "/proc/cpuinfo"
# The flags a benchmark records: the vector units and the native bfloat16 instructions.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")

CpuInfo = collections.namedtuple("CpuInfo", ["model", "flags"])
CpuInfo.__doc__ = """`model`: the model name (None where not given); `flags`: the set of x86
instruction-set flags, None where the text has no x86 flags line (another architecture, or
cpuinfo unreadable)."""


def read_cpuinfo(path=CPUINFO):
  """The text of /proc/cpuinfo; None where it cannot be read (not Linux, no permission)."""
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      return f.read()
  except OSError:
    return None


def parse(text):
  """The `CpuInfo` of the first processor described in `text` (cpuinfo's text, or None)."""
  model, flags = None, None
  for line in (text or "").splitlines():
    key, sep, value = line.partition(":")
    if not sep:
      if model is not None or flags is not None:
        break  # the blank line after the first processor
      continue
    key = key.strip()
    if key == "model name" and model is None:
      model = " ".join(value.split()) or None
    elif key == "flags" and flags is None:
      flags = frozenset(value.split())
  return CpuInfo(model, flags)


def record(text):
  """What a benchmark's JSON says about its CPU: {"model": name or None, "isa": {flag: bool}
  for each of ISA_FLAGS, or None where cpuinfo has no x86 flags}."""
  info = parse(text)
  isa = None if info.flags is None else {f: f in info.flags for f in ISA_FLAGS}
  return {"model": info.model, "isa": isa}


def this_machine():
  """`record` of this machine's /proc/cpuinfo."""
  return record(read_cpuinfo())


def onednn_enabled():
  """Whether TensorFlow in this process runs its oneDNN kernels (decided when TensorFlow loads:
  TF_ENABLE_ONEDNN_OPTS, or by default only on CPUs with AVX-512 VNNI/BF16 or AMX); None where
  TensorFlow does not say."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # TF's own test utilities read it here
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None
