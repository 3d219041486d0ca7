"""A tiny classifier trained with the real runtime (loop, checkpoints, strategies, export).

The runtime tests run it in-process (`train`) and as a program (`main`), including under
SIGKILL, a non-finite loss and two workers. Test-only flags: --kill_at_step, --nan_at_step.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from lamp_tf.data import pipeline, sources  # noqa: E402
from lamp_tf.runtime import export, loop, strategy as strategy_lib  # noqa: E402
from lamp_tf.runtime import flags as runtime_flags  # noqa: E402

FLAGS = flags.FLAGS
INPUT = 196  # 14x14 average-pooled MNIST


def data(seed_examples=512):
  ex = sources.load_examples("mnist5k", "train").take(np.arange(seed_examples) * 7)
  x = ex.images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, INPUT) / 255.0
  return x.astype(np.float32), ex.labels


def build(rt, lr, seed, optimizer="adam"):
  keras.utils.set_random_seed(seed)
  with rt.strategy.scope():
    model = keras.Sequential([keras.Input([INPUT]), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10)])
    optimizer = keras.optimizers.Adam(lr) if optimizer == "adam" else keras.optimizers.SGD(lr)
  strategy_lib.build_optimizer(rt.strategy, optimizer, model.trainable_variables)
  return model, optimizer


def train(rt, steps, batch_size=32, seed=0, lr=1e-2, nan_at_step=0, actions=(),
          optimizer="adam"):
  """Trains (or resumes) the tiny model; returns the model."""
  model, optimizer = build(rt, lr, seed, optimizer)
  state = rt.train_state("train", seed, model=model, optimizer=optimizer)
  state.restore()
  x, y = data()
  batches = iter(pipeline.distribute_batches(rt.strategy, (x, y), batch_size, seed,
                                             start_step=int(state.step)))

  def replica_step(batch, seed):
    xb, yb = batch
    noise = strategy_lib.replica_share(
        tf.random.stateless_normal([batch_size, INPUT], seed=seed) * 0.05)
    with tf.GradientTape() as tape:
      logits = model(xb + noise, training=True)
      per_example = keras.losses.sparse_categorical_crossentropy(yb, logits, from_logits=True)
      loss = tf.reduce_sum(per_example) / batch_size
      if nan_at_step:
        loss *= tf.where(optimizer.iterations + 1 >= nan_at_step, np.nan, 1.0)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return {"loss": loss}

  step_fn = strategy_lib.distributed_step(rt.strategy, replica_step)
  loop.train_loop(state, step_fn, batches, steps, writer=rt.writer("train"), actions=actions,
                  **rt.loop_kwargs())
  return model, state


def export_model(model, export_dir):
  @tf.function(input_signature=[tf.TensorSpec([None, INPUT], tf.float32, name="x")])
  def predict(x):
    return {"probabilities": tf.nn.softmax(model(x, training=False))}
  return export.export_saved_model(export_dir, {"predict": predict}, [model])


def define_flags():
  runtime_flags.define_runtime_flags("tiny")
  flags.DEFINE_integer("steps", 40, "Training steps.", lower_bound=1)
  flags.DEFINE_integer("batch_size", 32, "Global batch size.", lower_bound=1)
  flags.DEFINE_float("lr", 1e-2, "Learning rate.", lower_bound=0.0)
  flags.DEFINE_enum("optimizer", "adam", ["adam", "sgd"], "Optimiser.")
  flags.DEFINE_integer("seed", 0, "Seed.")
  flags.DEFINE_integer("kill_at_step", 0, "SIGKILL this process after this step (0: never).")
  flags.DEFINE_integer("nan_at_step", 0, "Make the loss NaN from this step on (0: never).")


def main(argv):
  del argv
  rt = runtime_flags.runtime_from_flags()
  rt.seed(FLAGS.seed)
  if FLAGS.export_only:
    model, _ = build(rt, FLAGS.lr, FLAGS.seed, FLAGS.optimizer)
    state = rt.train_state("train", FLAGS.seed, model=model)
    if not state.restore(partial=True):
      raise app.UsageError(f"--export_only: no checkpoint in {FLAGS.workdir}/train.")
    export_model(model, FLAGS.export_dir)
    return
  kill = [(1, lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == FLAGS.kill_at_step else None)]
  model, _ = train(rt, FLAGS.steps, FLAGS.batch_size, FLAGS.seed, FLAGS.lr, FLAGS.nan_at_step,
                   actions=kill, optimizer=FLAGS.optimizer)
  worker = strategy_lib.worker_id(rt.strategy)
  np.savez(os.path.join(FLAGS.workdir, f"weights_worker{worker}.npz"), *model.get_weights())
  if rt.is_chief:
    export_model(model, FLAGS.export_dir)


if __name__ == "__main__":
  define_flags()
  app.run(main)
