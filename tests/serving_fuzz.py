"""Fuzzes every serving signature of an export with bad requests, in a TensorFlow-only process.

  python tests/serving_fuzz.py <export dir>   # prints one JSON list, one entry per request

For each signature: one good request (zeros of the declared shapes, 2 rows) that must answer,
then, input by input, a wrong rank, a wrong image size, a wrong dtype, NaN and infinity (float
inputs), out-of-range labels (`label`: -1 and 10**6; `seg`: 255) and, with several inputs, a row
count that differs between them. A bad request must be rejected with an exception; the entry
says 'answered' when it was not. Imports nothing from lamp_tf (a served model needs only TF).
"""

import json
import sys

import numpy as np
import tensorflow as tf


def _good(spec, rows=2):
  shape = [rows if d is None else d for d in spec.shape.as_list()]
  return np.zeros(shape, spec.dtype.as_numpy_dtype)


def _bad_values(name, spec):
  """(what, array) pairs of bad values for one input."""
  good = _good(spec)
  bad = [("rank +1", good[..., None]), ("rank -1", good[0])]
  shape = spec.shape.as_list()
  if any(d is not None for d in shape[1:]):
    i = next(i for i, d in enumerate(shape) if i > 0 and d is not None)
    wider = list(good.shape)
    wider[i] += 3
    bad.append((f"size {wider}", np.zeros(wider, good.dtype)))
  bad.append(("dtype float64" if spec.dtype != tf.float64 else "dtype int32",
              good.astype(np.float64 if spec.dtype != tf.float64 else np.int32)))
  bad.append(("dtype string", np.full(good.shape, "x", object)))
  if spec.dtype.is_floating:
    bad += [("NaN", np.full_like(good, np.nan)), ("inf", np.full_like(good, np.inf))]
  if name == "label":
    bad += [("label -1", np.full_like(good, -1)), ("label 1e6", np.full_like(good, 10**6))]
  if name == "seg":
    bad.append(("seg 255", np.full_like(good, 255)))
  return bad


def fuzz(path):
  loaded = tf.saved_model.load(path)
  out = []
  for sig_name, fn in sorted(loaded.signatures.items()):
    specs = fn.structured_input_signature[1]
    good = {k: _good(s) for k, s in specs.items()}
    answer = fn(**{k: tf.constant(v) for k, v in good.items()})
    out.append({"signature": sig_name, "request": "good", "result": "answered",
                "outputs": sorted(answer)})
    requests = [(f"{k}: {what}", {**good, k: v}) for k, s in specs.items()
                for what, v in _bad_values(k, s)]
    if len(specs) > 1:
      first = next(iter(specs))
      requests.append((f"{first}: 3 rows, the others 2", {**good, first: _good(specs[first], 3)}))
    for what, inputs in requests:
      try:
        fn(**{k: tf.constant(v) for k, v in inputs.items()})
        result, message = "answered", ""
      except Exception as e:  # noqa: BLE001 (any rejection counts; a crash would end the process)
        result, message = "rejected", f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
      out.append({"signature": sig_name, "request": what, "result": result,
                  "message": message, "expected": {k: s.shape.as_list() for k, s in specs.items()}})
  assert not any(m.startswith("lamp_tf") for m in sys.modules)
  return out


if __name__ == "__main__":
  print(json.dumps(fuzz(sys.argv[1])))


def assert_rejects_bad_requests(path):
  """Runs this fuzzer on an export in a fresh TensorFlow-only process (for the tests): every
  signature answers its good request and rejects every bad one; size errors name the shape."""
  import os
  import subprocess
  out = subprocess.run([sys.executable, os.path.abspath(__file__), path], capture_output=True,
                       text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert out.returncode == 0, out.stderr[-3000:]
  entries = json.loads(out.stdout.strip().splitlines()[-1])
  good = [e for e in entries if e["request"] == "good"]
  assert good and all(e["result"] == "answered" for e in good), good
  bad = [e for e in entries if e["request"] != "good"]
  assert len(bad) >= 5 * len(good)
  answered = [(e["signature"], e["request"]) for e in bad if e["result"] != "rejected"]
  assert not answered, f"bad requests answered: {answered}"
  for e in bad:
    if ": size " in e["request"]:
      name = e["request"].split(":")[0]
      expected = "[" + ",".join("?" if d is None else str(d) for d in e["expected"][name]) + "]"
      assert f"expected shape {expected}" in e["message"], e
  return entries
