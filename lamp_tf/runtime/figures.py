"""Matplotlib figures for reports (Agg backend, no display); save with results.save_figure."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def heatmap(matrix, row_labels, col_labels, title, fmt="{:.1f}", vmin=0.0, vmax=100.0):
  """An annotated heatmap (NaN cells blank)."""
  m = np.asarray(matrix, np.float64)
  fig, ax = plt.subplots(figsize=(1.1 * m.shape[1] + 2, 0.8 * m.shape[0] + 1.5))
  im = ax.imshow(np.ma.masked_invalid(m), vmin=vmin, vmax=vmax, cmap="viridis")
  ax.set_xticks(range(m.shape[1]), col_labels)
  ax.set_yticks(range(m.shape[0]), row_labels)
  for i in range(m.shape[0]):
    for j in range(m.shape[1]):
      if np.isfinite(m[i, j]):
        ax.text(j, i, fmt.format(m[i, j]), ha="center", va="center",
                color="white" if m[i, j] < (vmin + vmax) / 2 else "black")
  ax.set_title(title)
  fig.colorbar(im, ax=ax, fraction=0.046)
  return fig


def lines(x, series, title, xlabel, ylabel, logx=False, band=False):
  """`series`: {label: (y values, optional y errors or None)} over the shared `x`; the errors
  as error bars, or as a shaded band y ± err when `band`."""
  fig, ax = plt.subplots(figsize=(6.5, 4))
  if len(series) > 10:  # the default cycle repeats its colours after 10 lines
    ax.set_prop_cycle(color=plt.cm.tab20.colors)
  for label, (y, err) in series.items():
    if band and err is not None:
      (line,) = ax.plot(x, y, marker="o", label=label)
      y, err = np.asarray(y, float), np.asarray(err, float)
      ax.fill_between(x, y - err, y + err, color=line.get_color(), alpha=0.2)
    else:
      ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
  if logx:
    ax.set_xscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return fig


def grouped_bars(groups, series, title, ylabel):
  """`series`: {label: values per group}."""
  fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(groups) + 2), 4))
  width = 0.8 / max(1, len(series))
  for i, (label, values) in enumerate(series.items()):
    ax.bar(np.arange(len(groups)) + i * width, values, width, label=label)
  ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2, groups)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=8)
  return fig


def image_grid(images, rows, cols):
  """Tiles uint8 images [rows*cols, H, W, C] into one [rows*H, cols*W, C] array."""
  images = np.asarray(images)
  n, h, w, c = images.shape
  grid = np.zeros([rows * h, cols * w, c], images.dtype)
  for k in range(min(n, rows * cols)):
    r, q = divmod(k, cols)
    grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = images[k]
  return grid


def image(array, title, width=6.0):
  """A uint8 image [H, W, C] (1 or 3 channels) shown without axes."""
  array = np.asarray(array)
  h, w = array.shape[:2]
  fig, ax = plt.subplots(figsize=(width, width * h / w + 0.4))
  ax.imshow(array[..., 0] if array.shape[-1] == 1 else array, cmap="gray", vmin=0, vmax=255)
  ax.axis("off")
  ax.set_title(title)
  return fig
