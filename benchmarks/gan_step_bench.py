"""One WGAN-GP AC-GAN iteration (5 critic updates with gradient penalty + 1 generator update),
lamp_tf (TF 2 / Keras 3, compiled) against the same networks and step in PyTorch, in float32 and
in bfloat16 (Keras `mixed_bfloat16` / `torch.autocast(bfloat16)`), with 1 and 10 iterations per
compiled call (lamp_tf's --steps_per_call).

  .venv/bin/pip install torch==2.13.0   # for this benchmark only; not a lamp_tf dependency
  python benchmarks/gan_step_bench.py [--batches=64,256] [--iterations=10] [--rounds=3]

Networks: MeRGAN's 32x32 DCGAN, generator with conditional batch norm (10 classes), critic with
critic and classifier heads; Adam(1e-4, 0, 0.9). All configurations alternate in rounds inside
one process, so machine load affects them alike; reported: median iterations/s and ratios.
Prints a Markdown table and, with --json, writes the numbers and the CPU (lamp_tf.runtime.cpu)
for benchmarks/RESULTS.md.
"""

import argparse
import contextlib
import os
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lamp_tf.data import pipeline  # noqa: E402
from lamp_tf.gan import train  # noqa: E402
from lamp_tf.nets import gan as gan_nets  # noqa: E402
from lamp_tf.runtime import cpu, files, loop, precision, strategy as strategy_lib  # noqa: E402


def lamp_tf_runner(batch, n_critic, images, labels, policy="float32", steps_per_call=1):
  strategy = tf.distribute.get_strategy()
  with precision.precision(policy, allow_slow=True):  # measured wherever it is slow
    g, d = gan_nets.make_gan("dcgan", num_classes=10)
    g_opt = precision.optimizer(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9))
    d_opt = precision.optimizer(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9))
  strategy_lib.build_optimizer(strategy, g_opt, g.trainable_variables)
  strategy_lib.build_optimizer(strategy, d_opt, d.trainable_variables)
  batches = iter(pipeline.distribute_batches(strategy, (images, labels), batch, 0,
                                             group=n_critic))
  step = strategy_lib.distributed_step(strategy, train.make_replica_step(
      g, d, g_opt, d_opt, train.GANConfig(n_critic=n_critic)))
  state = types.SimpleNamespace(rng=tf.random.Generator.from_seed(0))
  multi = loop._multi_step(state, step, batches, 1)  # what train_loop compiles

  def run(n):
    done = 0
    while done < n:
      k = min(steps_per_call, n - done)
      out, _ = multi(k)
      done += k
    float(out["g_loss"])

  params = sum(int(np.prod(v.shape)) for v in g.trainable_variables + d.trainable_variables)
  return run, params


def torch_runner(batch, n_critic, images, labels, policy="float32"):
  import torch
  from torch import nn
  import torch.nn.functional as F

  class CBN(nn.Module):
    def __init__(self, c, k):
      super().__init__()
      self.bn = nn.BatchNorm2d(c, affine=False, momentum=0.1, eps=1e-5)
      self.gamma, self.beta = nn.Embedding(k, c), nn.Embedding(k, c)
      nn.init.ones_(self.gamma.weight)
      nn.init.zeros_(self.beta.weight)

    def forward(self, x, y):
      return self.bn(x) * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]

  class G(nn.Module):
    def __init__(self, k=10, w=128):
      super().__init__()
      self.w = w
      self.fc = nn.Linear(128, 4 * 4 * w)
      self.bn0, self.bn1, self.bn2 = CBN(w, k), CBN(w // 2, k), CBN(w // 4, k)
      self.d1 = nn.ConvTranspose2d(w, w // 2, 5, 2, 2, output_padding=1)
      self.d2 = nn.ConvTranspose2d(w // 2, w // 4, 5, 2, 2, output_padding=1)
      self.d3 = nn.ConvTranspose2d(w // 4, 1, 5, 2, 2, output_padding=1)

    def forward(self, z, y):
      h = F.relu(self.bn0(self.fc(z).view(-1, self.w, 4, 4), y))
      h = F.relu(self.bn1(self.d1(h), y))
      h = F.relu(self.bn2(self.d2(h), y))
      return torch.tanh(self.d3(h))

  class D(nn.Module):
    def __init__(self, k=10, w=32):
      super().__init__()
      self.c1 = nn.Conv2d(1, w, 5, 2, 2)
      self.c2 = nn.Conv2d(w, 2 * w, 5, 2, 2)
      self.c3 = nn.Conv2d(2 * w, 4 * w, 5, 2, 2)
      self.value, self.cls = nn.Linear(4 * w * 16, 1), nn.Linear(4 * w * 16, k)

    def forward(self, x):
      h = F.leaky_relu(self.c1(x), 0.2)
      h = F.leaky_relu(self.c2(h), 0.2)
      h = F.leaky_relu(self.c3(h), 0.2).flatten(1)
      return self.value(h)[:, 0], self.cls(h)

  torch.manual_seed(0)
  g, d = G(), D()
  g_opt = torch.optim.Adam(g.parameters(), 1e-4, betas=(0.0, 0.9))
  d_opt = torch.optim.Adam(d.parameters(), 1e-4, betas=(0.0, 0.9))
  x_all = torch.tensor(images).permute(0, 3, 1, 2).contiguous()
  y_all = torch.tensor(labels)
  rng = np.random.default_rng(0)

  autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if policy != "float32" \
      else contextlib.nullcontext

  def critic_step(real, y):
    with autocast():
      _critic_loss(real, y).backward()
    d_opt.step()

  def _critic_loss(real, y):
    d_opt.zero_grad()
    fake = g(torch.randn(len(y), 128), y).detach()
    alpha = torch.rand(len(y), 1, 1, 1)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    v_hat, _ = d(x_hat)
    grad, = torch.autograd.grad(v_hat.sum(), x_hat, create_graph=True)
    gp = (torch.sqrt(grad.pow(2).flatten(1).sum(1) + 1e-10) - 1).pow(2)
    v_real, logits = d(real)
    v_fake, _ = d(fake)
    return (v_fake - v_real + 10 * gp.float()).float().mean() + F.cross_entropy(
        logits.float(), y)

  def generator_step(y):
    g_opt.zero_grad()
    with autocast():
      v, logits = d(g(torch.randn(len(y), 128), y))
      loss = -v.float().mean() + F.cross_entropy(logits.float(), y)
    loss.backward()
    g_opt.step()

  def run(n):
    for _ in range(n):
      for _ in range(n_critic):
        idx = torch.tensor(rng.choice(len(y_all), batch, replace=False))
        critic_step(x_all[idx], y_all[idx])
      generator_step(y_all[torch.tensor(rng.choice(len(y_all), batch, replace=False))])

  params = sum(p.numel() for p in list(g.parameters()) + list(d.parameters()))
  return run, params, torch.__version__, torch.get_num_threads()


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batches", default="64,256")
  parser.add_argument("--iterations", type=int, default=10)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--json", default="")
  parser.add_argument("--policies", default="float32,mixed_bfloat16",
                      help="Precisions measured (float32 alone skips the slow bf16 runs).")
  args = parser.parse_args()
  try:
    import torch
  except ImportError:
    sys.exit("PyTorch is missing: .venv/bin/pip install torch==2.13.0 (benchmark only).")
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, [2000, 32, 32, 1]).astype(np.float32)
  labels = rng.integers(0, 10, 2000).astype(np.int64)
  rows, summary = [], {}
  for batch in [int(b) for b in args.batches.split(",")]:
    runners = {}
    for policy in args.policies.split(","):
      for spc in (1, 10):
        runners[f"TF {policy} spc{spc}"], p_tf = lamp_tf_runner(batch, 5, images, labels,
                                                                policy, spc)
      runners[f"PyTorch {policy}"], p_torch, version, threads = torch_runner(
          batch, 5, images, labels, policy)
      assert p_tf == p_torch, (p_tf, p_torch)  # the same networks
    for run in runners.values():
      run(2)  # warm-up: tracing and allocator
    rates = {name: [] for name in runners}
    for _ in range(args.rounds):
      for name, run in runners.items():
        t0 = time.perf_counter()
        run(args.iterations)
        rates[name].append(args.iterations / (time.perf_counter() - t0))
    med = {name: float(np.median(r)) for name, r in rates.items()}
    ratios = {
        "TF / PyTorch, float32": med["TF float32 spc1"] / med["PyTorch float32"],
        "TF / PyTorch, float32, 10 per call": med["TF float32 spc10"] / med["PyTorch float32"],
        "TF 10 per call / 1 per call, float32": med["TF float32 spc10"] / med["TF float32 spc1"],
    }
    if "TF mixed_bfloat16 spc1" in med:
      ratios["TF / PyTorch, bfloat16"] = (med["TF mixed_bfloat16 spc1"] /
                                          med["PyTorch mixed_bfloat16"])
      ratios["TF bfloat16 / TF float32"] = med["TF mixed_bfloat16 spc1"] / med["TF float32 spc1"]
    summary[batch] = {"iterations_per_s": med, "ratios": ratios}
    for name, value in med.items():
      rows.append(f"| {batch} | {name} | {value:.2f} |")
    for name, value in ratios.items():
      rows.append(f"| {batch} | ratio {name} | {value:.2f} |")
  print(f"networks: {p_tf:,} parameters; 5 critic + 1 generator updates per iteration; "
        f"TensorFlow {tf.__version__} (oneDNN {'on' if cpu.onednn_enabled() else 'off'}), "
        f"PyTorch {version} ({threads} threads); median of "
        f"{args.rounds} rounds of {args.iterations} iterations")
  print("| batch | configuration | iterations/s or ratio |\n|---|---|---|")
  print("\n".join(rows))
  if args.json:
    files.write_json(args.json, {"tensorflow": tf.__version__, "torch": version,
                                 "threads": threads, "batches": summary,
                                 "cpu": cpu.this_machine(), "onednn": cpu.onednn_enabled()})


if __name__ == "__main__":
  main()
