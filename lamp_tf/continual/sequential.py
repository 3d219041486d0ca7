"""Class-incremental training of a classifier, task after task: FT, EWC and R-EWC.

One run = one (method, rotation variant, lambda, seed). Its `TrainState` holds the model, the
optimiser, the EWC terms and the accuracy matrix, so a run killed anywhere (mid-task or between
tasks) resumes where it stopped. The first task is the same for every method of a seed (no
penalty yet, identity rotations), so it is trained once per seed (`train_first_task`) and every
run starts from it.

Protocol (R-EWC paper and its reference code): the loss of task t never covers the logits of
classes learned before t. By default (`loss_classes='unseen'`, the reference code) it covers the
logits of every class not learned yet, current and later tasks (so task 1 also pushes the later
classes' logits down, task 2 of 2 covers only its own); `loss_classes='task'` covers the current
task's classes only. The loss is a sigmoid cross-entropy against one-hot targets
(`loss='sigmoid'`, the reference code) or a softmax cross-entropy over those logits. Evaluation
is class-incremental (single-head: argmax over all classes seen so far, the reference's) and,
recorded beside it, task-aware (multi-head: each task's images by the argmax over that task's
own classes), each with its accuracy matrix, forgetting and backward transfer.

These choices decide how much fine-tuning forgets in single-head evaluation. Measured on the
MNIST subset: with 'task' logits, old-class logits stay high on old images and fine-tuning keeps
much of task 1 while losing task 2 to old classes; with 'unseen' logits the later classes start
task 2 far below zero, training lifts them everywhere, and task 1 is forgotten as the paper
reports (see the R-EWC issue note for the numbers). After task t: R-EWC recomputes the rotations
on task t's data (merging the previous ones), then the Fisher of the trainable parameters is
computed on the same `fisher_samples` images and becomes an EWC term; the optimiser is reset.

Reference choices (xialeiliu/RotateNetworks, `REWC_MNIST_LeNet.ipynb`, `utils/lenet_utils.py`):
the rotations and the Fisher come from the task's **validation** images (`compute_M_L` and
`compute_fisher` on `mnist.validation`; `fisher_split='validation'`, 'train' is our variant);
the optimiser is Adam (`optimizer='sgd'` is plain gradient descent, to which an orthogonal
re-parameterisation is invisible, so R-EWC at lambda 0 follows FT exactly: it separates what the
rotation does under Adam from what the penalty adds); the output side is rotated as the paper
writes it (`output_rotation='paper'`, see rotation.eigenbases for the code's transpose). Each run
records its accuracies on the validation images after the last task, on which the program
selects lambda.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from lamp_tf.continual import ewc, fisher as fisher_lib, rotation, task_loop
from lamp_tf.data import pipeline, tasks as tasks_lib
from lamp_tf.metrics import continual as continual_metrics, evaluators
from lamp_tf.nets import classifiers, rotated
from lamp_tf.runtime import files, loop, precision, settings, strategy as strategy_lib
from lamp_tf.runtime.settings import setting

METHODS = ("ft", "ewc", "rewc")
OPTIMIZERS = ("adam", "sgd")
FISHER_SPLITS = ("validation", "train")
LOSSES = ("sigmoid", "softmax")
LOSS_CLASSES = ("unseen", "task")


@dataclasses.dataclass(frozen=True)
class TaskData:
  """Preprocessed arrays and the task split."""

  train_x: np.ndarray
  train_y: np.ndarray
  test_x: np.ndarray
  test_y: np.ndarray
  tasks: tuple  # of tuples of class ids
  num_classes: int
  raw_shape: tuple = None  # [H, W, C] of the uint8 images before preprocessing
  val_x: np.ndarray = None  # validation images carved from the training data (tasks.py)
  val_y: np.ndarray = None

  def split(self, name):
    """(images, labels) of 'train', 'validation' or 'test'."""
    x, y = {"train": (self.train_x, self.train_y), "validation": (self.val_x, self.val_y),
            "test": (self.test_x, self.test_y)}[name]
    if x is None:
      raise ValueError(f"this TaskData has no {name} split.")
    return x, y

  def class_mask(self, classes):
    mask = np.zeros(self.num_classes, bool)
    mask[list(classes)] = True
    return mask

  def seen_mask(self, t):
    return self.class_mask([c for task in self.tasks[:t + 1] for c in task])

  def loss_classes(self, t, rule):
    """Classes whose logits the loss of task t covers ('task' or 'unseen', see above)."""
    tasks = self.tasks[t:t + 1] if rule == "task" else self.tasks[t:]
    return tuple(c for task in tasks for c in task)


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """One run's training; the fields with help are the program's flags, the others (method,
  rotation variant, λ, seed, optimiser and its learning rate) are set per run."""

  method: str = "rewc"
  rotate: str = "all_no_last"
  lam: float = 100.0
  seed: int = 0
  model: str = setting("lenet", "Classifier architecture.", choices=classifiers.ARCHITECTURES)
  epochs: int = setting(5, "Epochs per task.", lower=1)
  batch_size: int = setting(100, "Global batch size.", lower=1)
  lr: float = 1e-3
  fisher_samples: int = setting(
      200, "Images of each finished task (equal per class) for rotations and Fisher.", lower=1)
  fisher: str = setting(
      "true", "Fisher with labels sampled from the model (true) or the data labels.",
      choices=fisher_lib.KINDS)
  fisher_mode: str = setting(
      "replace", "After each task replace the EWC term (paper) or add one more.",
      choices=ewc.MODES)
  conv_factor: str = setting(
      "channel", "Convolution rotations over channels (paper) or im2col patches (EKFAC).",
      choices=rotated.FACTORS)
  fisher_batch_size: int = setting(100, "Examples per vectorised Fisher Jacobian.", lower=1)
  loss: str = setting(
      "sigmoid", "Task loss over the task's logits: sigmoid cross-entropy on one-hot targets (the "
      "reference code) or softmax cross-entropy.", choices=LOSSES)
  loss_classes: str = setting(
      "unseen", "Logits the task loss covers: classes not learned yet (reference code) or the "
      "current task's only.", choices=LOSS_CLASSES)
  optimizer: str = "adam"
  fisher_split: str = setting(
      "validation", "Images for the rotations and the Fisher: validation (reference) or train.",
      choices=FISHER_SPLITS)
  output_rotation: str = setting(
      "paper", "Output-side rotation: U2 as the paper (diagonalises the Fisher) or the reference "
      "code's U2ᵀ.", choices=rotation.OUTPUT_ROTATIONS)

  def __post_init__(self):
    settings.check(self)  # the flags' choices and bounds; the per-run fields below
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"--optimizer={self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}.")
    if self.method not in METHODS:
      raise ValueError(f"--methods: unknown method {self.method!r}; choose from {METHODS}.")

  @property
  def _opt(self):
    return "" if self.optimizer == "adam" else f"_{self.optimizer}"

  @property
  def name(self):
    if self.method == "ft":
      return f"ft{self._opt}_seed{self.seed}"
    rot = f"_{self.rotate}" if self.method == "rewc" else ""
    return f"{self.method}{rot}_lam{self.lam:g}{self._opt}_seed{self.seed}"

  @property
  def first_task_name(self):
    """The shared first task of every method of this seed and optimiser."""
    return f"first_task{self._opt}_seed{self.seed}"

  def record_config(self):
    return {"method": self.method, "rotate": self.rotate if self.method == "rewc" else None,
            "lambda": self.lam if self.method != "ft" else None, "seed": self.seed,
            "optimizer": self.optimizer}


def build_model(cfg, data, strategy):
  """The run's model (rotated for R-EWC, identity rotations) and optimiser, built in scope."""
  keras.utils.set_random_seed(cfg.seed)
  with strategy.scope():
    model = classifiers.classifier(cfg.model, data.train_x.shape[1:], data.num_classes)
    if cfg.method == "rewc":
      model = rotation.rotated_copy(model, rotation.layers_to_rotate(model, cfg.rotate),
                                    cfg.conv_factor)
    opt = keras.optimizers.Adam if cfg.optimizer == "adam" else keras.optimizers.SGD
    optimizer = precision.optimizer(opt(cfg.lr))
  strategy_lib.build_optimizer(strategy, optimizer, model.trainable_variables)
  return model, optimizer


def plain_model(model):
  """The plain (merged) classifier of a run's model."""
  if any(isinstance(l, rotation.ROTATED) for l in model.layers):
    return rotation.plain_copy(model)
  return model


@evaluators.register("task_accuracy")
class TaskAccuracy(evaluators.Evaluator):
  """Accuracy on every task's `split` images of a TaskData after task `task`, in two protocols.
  model: the classifier. Returns
  - "task_accuracy": [per task; NaN for tasks not trained yet], class-incremental: one head,
    the argmax over the logits of every class seen so far (the reference's protocol), and
    "average_accuracy": their mean over the tasks trained;
  - "task_aware_accuracy", "task_aware_average_accuracy": the same, task-aware (multi-head, as
    the RotateNetworks README's multi-head setting): task j's images are classified by task j's
    own head, the argmax over the logits of task j's classes only, so the task is given and
    only the classes within it must be told apart."""

  def __init__(self, data, split="test"):
    self.data, self.split = data, split

  def __call__(self, model, *, task):
    images, labels = self.data.split(self.split)
    mask = tf.constant(self.data.seen_mask(task))

    @tf.function
    def predict(x):
      logits = tf.cast(model(x, training=False), tf.float32)
      return tf.argmax(tf.where(mask[None], logits, -np.inf), axis=1), logits

    out = [predict(tf.constant(images[i:i + 1000])) for i in range(0, len(images), 1000)]
    pred = np.concatenate([p.numpy() for p, _ in out])
    logits = np.concatenate([z.numpy() for _, z in out])
    accs, aware = [], []
    for j, classes in enumerate(self.data.tasks):
      idx = tasks_lib.class_indices(labels, classes)
      own = np.asarray(classes)[np.argmax(logits[idx][:, list(classes)], axis=1)]
      accs.append(float(np.mean(pred[idx] == labels[idx])) if j <= task else np.nan)
      aware.append(float(np.mean(own == labels[idx])) if j <= task else np.nan)
    return {"task_accuracy": accs, "average_accuracy": float(np.mean(accs[:task + 1])),
            "task_aware_accuracy": aware,
            "task_aware_average_accuracy": float(np.mean(aware[:task + 1]))}


def fisher_images(cfg, data, t):
  """The `fisher_samples` images of task t (from `cfg.fisher_split`) used for rotations and the
  Fisher: an equal share per class, all of a class's images where it has fewer."""
  classes = data.tasks[t]
  images, labels = data.split(cfg.fisher_split)
  task_idx = tasks_lib.class_indices(labels, classes)
  counts = np.bincount(labels[task_idx], minlength=data.num_classes)[list(classes)]
  per_class = max(1, min(cfg.fisher_samples // len(classes), int(counts.min())))
  idx = tasks_lib.per_class_subset(labels[task_idx], per_class, seed=cfg.seed * 1000 + t)
  chosen = task_idx[idx]
  return images[chosen], labels[chosen]


def fisher_energy(model, images, labels, mask, seed):
  """Share of Fisher energy on the diagonal for the kernels of the rotated layers, per layer and
  overall (sample Fisher of per-example gradients; see fisher.diagonal_energy). `labels` None:
  labels sampled from the model (true Fisher)."""
  names = [l.name for l in model.layers if isinstance(l, rotation.ROTATED)]
  kernels = [model.get_layer(n).kernel for n in names]
  if labels is None:
    labels = fisher_lib.sample_labels(model, tf.constant(images), tf.constant([seed, 0], tf.int64),
                                      mask)
  grads = fisher_lib.per_example_gradients(model, images, labels, kernels, mask)
  sizes = np.cumsum([0] + [int(np.prod(k.shape)) for k in kernels])
  out = {n: fisher_lib.diagonal_energy(grads[:, a:b])
         for n, a, b in zip(names, sizes[:-1], sizes[1:])}
  out["overall"] = fisher_lib.diagonal_energy(grads)
  return out


def task_loss(logits, labels, classes, kind):
  """Per-example loss over the logits of `classes` only (sigmoid: mean over those classes)."""
  classes = tf.constant(classes, tf.int64)
  z = tf.gather(tf.cast(logits, tf.float32), classes, axis=1)
  if kind == "sigmoid":
    targets = tf.cast(tf.equal(labels[:, None], classes[None]), z.dtype)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(targets, z), axis=1)
  position = tf.argmax(tf.cast(tf.equal(labels[:, None], classes[None]), tf.int32), axis=1)
  return tf.nn.sparse_softmax_cross_entropy_with_logits(position, z)


def _replica_step(model, optimizer, penalty, lam, classes, loss_kind, global_batch,
                  num_replicas):

  def step(batch, seed):
    del seed
    x, y = batch
    with tf.GradientTape() as tape:
      ce = tf.reduce_sum(task_loss(model(x, training=True), y, classes, loss_kind)) / global_batch
      reg = lam * penalty() if penalty is not None else tf.constant(0.0)
      loss = ce + reg / num_replicas
    precision.minimize(tape, loss, model.trainable_variables, optimizer)
    return {"loss": ce + reg / num_replicas, "ce": ce, "penalty": reg / num_replicas}

  return step


def _end_of_task(cfg, data, t, model, penalty, writer, energies):
  """Rotations (R-EWC) and the Fisher on task t's data; a new EWC term."""
  images, labels = fisher_images(cfg, data, t)
  mask = data.class_mask(data.tasks[t])
  seed = cfg.seed * 1000 + t
  if cfg.method == "rewc":
    energy_labels = labels if cfg.fisher == "empirical" else None
    energies[f"before_task{t + 1}"] = fisher_energy(model, images, energy_labels, mask, seed)
    bases = rotation.compute_bases(model, images, seed=seed, class_mask=mask,
                                   batch_size=cfg.fisher_batch_size,
                                   output_rotation=cfg.output_rotation)
    rotation.set_bases(model, bases)
    energies[f"after_task{t + 1}"] = fisher_energy(model, images, energy_labels, mask, seed)
    logging.info("%s: Fisher diagonal energy after task %d: %.3f -> %.3f", cfg.name, t + 1,
                 energies[f"before_task{t + 1}"]["overall"],
                 energies[f"after_task{t + 1}"]["overall"])
  fisher = fisher_lib.diagonal_fisher(model, images, labels, kind=cfg.fisher, seed=seed,
                                      batch_size=cfg.fisher_batch_size, class_mask=mask)
  penalty.add_term(fisher)
  writer.write_scalars(t + 1, {"fisher/mean": float(np.mean([f.mean() for f in fisher]))})


def task_steps(cfg, data, t):
  """Steps of task t: `epochs` passes over its training images."""
  n = len(tasks_lib.class_indices(data.train_y, data.tasks[t]))
  return max(1, int(np.ceil(cfg.epochs * n / cfg.batch_size)))


def _task_batches(rt, cfg, data, t, start_step):
  idx = tasks_lib.class_indices(data.train_y, data.tasks[t])
  steps = task_steps(cfg, data, t)
  arrays = (data.train_x[idx], data.train_y[idx])
  batches = pipeline.distribute_batches(rt.strategy, arrays, cfg.batch_size,
                                        seed=cfg.seed * 1000 + t, start_step=start_step)
  return iter(batches), steps


def train_first_task(rt, cfg, data, base_dir):
  """Trains task 1 once per seed (plain model, no penalty); returns (weights, class-incremental
  accuracies, task-aware accuracies) after it (a first task stored before the task-aware
  accuracy existed has it computed from its weights)."""
  path = os.path.join(base_dir, "first_task.npz")
  if os.path.exists(path):
    saved = np.load(path)
    weights = [saved[f"w{i}"] for i in range(sum(f.startswith("w") for f in saved.files))]
    if "task_aware" in saved.files:
      return weights, saved["accuracy"], saved["task_aware"]
    model, _ = build_model(dataclasses.replace(cfg, method="ft"), data, rt.strategy)
    model.set_weights(weights)
    aware = evaluators.make("task_accuracy", data)(model, task=0)["task_aware_accuracy"]
    return weights, saved["accuracy"], np.array(aware)
  base_cfg = dataclasses.replace(cfg, method="ft")
  model, optimizer = build_model(base_cfg, data, rt.strategy)
  state = loop.TrainState(os.path.join(base_dir, "checkpoints"), cfg.seed, is_chief=rt.is_chief,
                          worker=strategy_lib.worker_id(rt.strategy), model=model,
                          optimizer=optimizer)
  state.restore()
  batches, steps = _task_batches(rt, base_cfg, data, 0, int(state.step))
  step_fn = strategy_lib.distributed_step(rt.strategy, _replica_step(
      model, optimizer, None, 0.0, data.loss_classes(0, cfg.loss_classes), cfg.loss,
      cfg.batch_size, rt.strategy.num_replicas_in_sync))
  loop.train_loop(state, step_fn, batches, steps,
                  writer=rt.writer(os.path.relpath(base_dir, rt.workdir)), name="task1",
                  **rt.loop_kwargs())
  scores = evaluators.make("task_accuracy", data)(model, task=0)
  accuracy = np.array(scores["task_accuracy"])
  aware = np.array(scores["task_aware_accuracy"])
  weights = model.get_weights()
  if rt.is_chief:
    with files.atomic_path(path) as tmp:
      with open(tmp, "wb") as f:
        np.savez(f, accuracy=accuracy, task_aware=aware,
                 **{f"w{i}": w for i, w in enumerate(weights)})
  return weights, accuracy, aware


def run(rt, cfg, data, run_dir, first_task):
  """Trains (or resumes) one run from the shared first task; returns (record, model)."""
  num_tasks = len(data.tasks)
  model, optimizer = build_model(cfg, data, rt.strategy)
  penalty = ewc.EWCPenalty(model, cfg.fisher_mode, max_terms=num_tasks - 1) \
      if cfg.method != "ft" else None
  matrix = tf.Variable(tf.fill([num_tasks, num_tasks], np.nan), trainable=False)
  aware_matrix = tf.Variable(tf.fill([num_tasks, num_tasks], np.nan), trainable=False)
  task_started = tf.Variable(False, trainable=False)
  extra = {"penalty": penalty} if penalty is not None else {}
  state = rt.train_state(os.path.relpath(run_dir, rt.workdir), cfg.seed, model=model,
                         optimizer=optimizer, accuracy=matrix, task_aware_accuracy=aware_matrix,
                         task_started=task_started, **extra)
  writer = rt.writer(os.path.relpath(run_dir, rt.workdir))
  energies = {}
  energy_path = os.path.join(run_dir, "fisher_energy.json")
  bounds = task_loop.starts([task_steps(cfg, data, t) for t in range(num_tasks)])
  try:
    restored = state.restore()
  except AssertionError:  # a checkpoint without one of this state's objects
    raise ValueError(
        f"{run_dir}: its checkpoint was written before the task-aware accuracy was recorded; "
        "finish the run with the code that wrote it, or delete that directory to train the run "
        "again.") from None
  if not restored:
    weights, accuracy, aware = first_task
    plain = plain_model(model)
    plain.set_weights(weights)
    if plain is not model:
      rotation.set_plain_weights(model, plain)
    matrix[0].assign(accuracy)
    aware_matrix[0].assign(aware)
    state.step.assign(bounds[1])  # the first task's steps, trained by train_first_task
    state.task.assign(1)
    state.save()
  elif int(state.task) < num_tasks and int(state.step) < bounds[int(state.task)]:
    raise ValueError(
        f"{run_dir}: its checkpoint (step {int(state.step)}, task {int(state.task) + 1}) counts "
        "steps from task 2, as R-EWC did before commit 871ffc4; resume it with the code that "
        "wrote it, or delete that directory to train the run again.")
  elif os.path.exists(energy_path):
    energies = files.read_json(energy_path)

  def start(t):
    if penalty is not None:
      _end_of_task(cfg, data, t - 1, model, penalty, writer, energies)
      if rt.is_chief:
        files.write_json(energy_path, energies)

  def train(t):
    batches, _ = _task_batches(rt, cfg, data, t, int(state.step) - bounds[t])
    step_fn = strategy_lib.distributed_step(rt.strategy, _replica_step(
        model, optimizer, penalty, cfg.lam, data.loss_classes(t, cfg.loss_classes), cfg.loss,
        cfg.batch_size, rt.strategy.num_replicas_in_sync))
    loop.train_loop(state, step_fn, batches, bounds[t + 1], writer=writer, name=f"task{t + 1}",
                    **rt.loop_kwargs())

  test = evaluators.make("task_accuracy", data)

  def finish(t):
    scores = test(model, task=t)
    accuracy, aware = np.array(scores["task_accuracy"]), np.array(scores["task_aware_accuracy"])
    matrix[t].assign(accuracy)
    aware_matrix[t].assign(aware)
    writer.write_scalars(t + 1, {f"accuracy/task{j + 1}": a
                                 for j, a in enumerate(accuracy) if j <= t})
    writer.write_scalars(t + 1, {f"task_aware_accuracy/task{j + 1}": a
                                 for j, a in enumerate(aware) if j <= t})

  task_loop.run_tasks(state, task_started, num_tasks, [optimizer], start, train, finish)

  record = {**cfg.record_config(), **continual_metrics.summary(matrix.numpy()),
            **continual_metrics.summary(aware_matrix.numpy(), prefix="task_aware_")}
  if data.val_x is not None:
    val = evaluators.make("task_accuracy", data, "validation")(model, task=num_tasks - 1)
    record.update(val_task_accuracy=val["task_accuracy"],
                  val_average_accuracy=val["average_accuracy"],
                  val_task_aware_accuracy=val["task_aware_accuracy"],
                  val_task_aware_average_accuracy=val["task_aware_average_accuracy"])
  if energies:
    first = sorted(k for k in energies if k.startswith("before"))[0]
    record["fisher_energy_before"] = energies[first]["overall"]
    record["fisher_energy_after"] = energies[first.replace("before", "after")]["overall"]
  writer.write_scalars(num_tasks, {"average_accuracy": record["average_accuracy"],
                                   "forgetting": record["forgetting"],
                                   "task_aware_average_accuracy":
                                   record["task_aware_average_accuracy"],
                                   "task_aware_forgetting": record["task_aware_forgetting"]})
  writer.flush()
  return record, model
