"""Procedural indoor scenes: pixel-aligned RGB, metric depth and 13-class segmentation.

Real RGB-D data cannot be downloaded here, so scenes are rendered by a NumPy ray caster,
vectorised over pixels and objects. A room (floor, ceiling, four walls with windows and pictures)
is furnished with beds, tables, chairs, sofas, TVs, shelves with books, cabinets and small
objects, all built from axis-aligned boxes, under a random camera pose, textures and lighting
(ambient, a ceiling lamp and window light, Lambertian). Labels are the 13 NYU classes of the
mix-and-match paper plus void (unlabelled clutter). Everything is a deterministic function of the
seed; the resolution is a parameter.

Coordinates: x to the right, y up, z into the room; metres. Depth is the z-buffer depth along
the camera's viewing axis (what RGB-D sensors report), not the ray length.

Two versions of the scenes (`version`: the same rooms, furniture and cameras for a seed), by
the relief of each class (what a depth map can see of it):
- window: version 1 none (a rectangle painted on the wall); version 2 an opening, the glass
  0.12-0.30 m behind the wall plane, its reveals (the opening's sides, labelled window) between;
- picture: version 1 none (painted on the wall); version 2 a frame 0.02-0.05 m off the wall;
- tv: both versions a box 0.01-0.07 m off the back wall, or on a cabinet;
- every other class: both versions boxes (furniture, objects, books) or the room's planes.

Version 1 is what every result before 2026-12-07 was made with; in version 2 windows and
pictures have a depth signature, as in rendered 3D rooms (SceneNet RGB-D, the paper's data,
where windows and pictures are found from depth).
"""

import dataclasses

import numpy as np

CLASSES = ("bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture",
           "sofa", "table", "tv", "wall", "window")
VOID = len(CLASSES)  # 13: unlabelled, ignored by losses and scores
C = {name: i for i, name in enumerate(CLASSES)}
VERSIONS = (1, 2)


@dataclasses.dataclass
class Box:
  lo: np.ndarray  # [3]
  hi: np.ndarray  # [3]
  label: int
  color: np.ndarray  # [3] in [0, 1]
  texture: int = 0  # 0 plain, 1 stripes, 2 checker, 3 noise


@dataclasses.dataclass
class Camera:
  position: np.ndarray
  yaw: float  # radians, 0 looks along +z
  pitch: float
  fov: float  # horizontal, radians


def _box(lo, hi, label, color, texture=0):
  return Box(np.asarray(lo, float), np.asarray(hi, float), label, np.asarray(color, float),
             texture)


def _jitter(rng, color, amount=0.12):
  return np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0.02, 0.98)


PALETTE = {
    "wall": [(0.85, 0.82, 0.75), (0.75, 0.8, 0.85), (0.9, 0.88, 0.8), (0.7, 0.75, 0.65)],
    "floor": [(0.55, 0.4, 0.25), (0.45, 0.45, 0.45), (0.65, 0.55, 0.4), (0.35, 0.25, 0.2)],
    "wood": [(0.5, 0.33, 0.18), (0.6, 0.45, 0.3), (0.3, 0.2, 0.12), (0.75, 0.6, 0.4)],
    "fabric": [(0.6, 0.15, 0.15), (0.2, 0.3, 0.6), (0.3, 0.5, 0.3), (0.55, 0.55, 0.5),
               (0.7, 0.6, 0.3)],
}


class SceneBuilder:
  """Random room layouts, deterministic in the seed."""

  def __init__(self, rng, version=1):
    if version not in VERSIONS:
      raise ValueError(f"scenes version {version!r}: choose one of {VERSIONS}.")
    self.rng, self.version = rng, version
    self.boxes = []
    self.decals = []  # (wall index, u0, v0, u1, v1, label, color, texture) on walls
    self.recesses = []  # (wall index, u0, v0, u1, v1, depth): window openings (version 2)
    self.occupied = []  # floor footprints (x0, z0, x1, z1)

  def pick(self, name):
    options = PALETTE[name]
    return _jitter(self.rng, options[self.rng.integers(len(options))])

  def free_spot(self, w, d, margin=0.1, against_wall=None, tries=60):
    """A floor footprint of size w x d that overlaps nothing, or None."""
    rng, (rw, _, rd) = self.rng, self.size
    for _ in range(tries):
      if against_wall == "back":
        x0, z0 = rng.uniform(margin, rw - w - margin), rd - d - margin
      elif against_wall == "left":
        x0, z0 = margin, rng.uniform(rd * 0.3, rd - d - margin)
      elif against_wall == "right":
        x0, z0 = rw - w - margin, rng.uniform(rd * 0.3, rd - d - margin)
      else:
        x0, z0 = rng.uniform(margin, rw - w - margin), rng.uniform(rd * 0.35, rd - d - margin)
      fp = (x0, z0, x0 + w, z0 + d)
      if all(fp[2] <= o[0] or fp[0] >= o[2] or fp[3] <= o[1] or fp[1] >= o[3]
             for o in self.occupied):
        self.occupied.append(fp)
        return fp
    return None

  def add(self, *args, **kwargs):
    self.boxes.append(_box(*args, **kwargs))

  def bed(self):
    fp = self.free_spot(*(1.4, 2.0) if self.rng.random() < 0.5 else (0.9, 1.9),
                        against_wall="back")
    if fp is None:
      return
    x0, z0, x1, z1 = fp
    h = self.rng.uniform(0.4, 0.6)
    self.add((x0, 0, z0), (x1, h, z1), C["bed"], self.pick("fabric"), 3)
    self.add((x0, 0, z1 - 0.08), (x1, h + 0.5, z1), C["bed"], self.pick("wood"), 1)
    if self.rng.random() < 0.7:  # pillow
      self.add((x0 + 0.1, h, z1 - 0.45), (x1 - 0.1, h + 0.12, z1 - 0.1), C["bed"],
               _jitter(self.rng, (0.9, 0.9, 0.9)))

  def table(self, with_objects=True):
    w, d = self.rng.uniform(0.8, 1.6), self.rng.uniform(0.6, 1.0)
    fp = self.free_spot(w, d)
    if fp is None:
      return None
    x0, z0, x1, z1 = fp
    h, leg, col = self.rng.uniform(0.65, 0.78), 0.05, self.pick("wood")
    self.add((x0, h - 0.04, z0), (x1, h, z1), C["table"], col, 1)
    for lx, lz in ((x0, z0), (x1 - leg, z0), (x0, z1 - leg), (x1 - leg, z1 - leg)):
      self.add((lx, 0, lz), (lx + leg, h - 0.04, lz + leg), C["table"], col)
    if with_objects:
      for _ in range(self.rng.integers(0, 4)):
        ow, od, oh = self.rng.uniform(0.06, 0.2, 3)
        ox, oz = self.rng.uniform(x0, x1 - ow), self.rng.uniform(z0, z1 - od)
        self.add((ox, h, oz), (ox + ow, h + oh, oz + od), C["objects"],
                 self.rng.uniform(0.05, 0.95, 3))
    return fp

  def chair(self):
    fp = self.free_spot(0.45, 0.45)
    if fp is None:
      return
    x0, z0, x1, z1 = fp
    col, h = self.pick("wood"), self.rng.uniform(0.42, 0.5)
    self.add((x0, h - 0.05, z0), (x1, h, z1), C["chair"], col)
    self.add((x0, h, z1 - 0.05), (x1, h + 0.45, z1), C["chair"], col)
    for lx, lz in ((x0, z0), (x1 - 0.04, z0), (x0, z1 - 0.04), (x1 - 0.04, z1 - 0.04)):
      self.add((lx, 0, lz), (lx + 0.04, h - 0.05, lz + 0.04), C["chair"], col)

  def sofa(self):
    w = self.rng.uniform(1.6, 2.4)
    fp = self.free_spot(w, 0.9, against_wall=self.rng.choice(["back", "left", "right"]))
    if fp is None:
      return
    x0, z0, x1, z1 = fp
    col = self.pick("fabric")
    self.add((x0, 0, z0), (x1, 0.42, z1), C["sofa"], col, 3)
    if x1 - x0 > z1 - z0:  # back along the far side
      self.add((x0, 0.42, z1 - 0.2), (x1, 0.85, z1), C["sofa"], col, 3)
      self.add((x0, 0.42, z0), (x0 + 0.15, 0.62, z1), C["sofa"], col)
      self.add((x1 - 0.15, 0.42, z0), (x1, 0.62, z1), C["sofa"], col)
    else:
      side = x0 if x0 < self.size[0] / 2 else x1 - 0.2
      self.add((side, 0.42, z0), (side + 0.2, 0.85, z1), C["sofa"], col, 3)

  def cabinet(self):
    w, d, h = self.rng.uniform(0.6, 1.4), self.rng.uniform(0.4, 0.6), self.rng.uniform(0.7, 1.9)
    fp = self.free_spot(w, d, against_wall=self.rng.choice(["back", "left", "right"]))
    if fp is None:
      return None
    x0, z0, x1, z1 = fp
    self.add((x0, 0, z0), (x1, h, z1), C["furniture"], self.pick("wood"), 1)
    return fp, h

  def shelf(self):
    w, d, h = self.rng.uniform(0.8, 1.4), 0.35, self.rng.uniform(1.4, 2.1)
    fp = self.free_spot(w, d, against_wall="back")
    if fp is None:
      return
    x0, z0, x1, z1 = fp
    col = self.pick("wood")
    levels = self.rng.integers(3, 6)
    for i in range(levels + 1):
      y = i * h / levels
      self.add((x0, y, z0), (x1, y + 0.03, z1), C["furniture"], col)
    self.add((x0, 0, z0), (x0 + 0.03, h, z1), C["furniture"], col)
    self.add((x1 - 0.03, 0, z0), (x1, h, z1), C["furniture"], col)
    self.add((x0, 0, z1 - 0.02), (x1, h, z1), C["furniture"], col * 0.8)
    for i in range(levels):
      y, x = i * h / levels + 0.03, x0 + 0.04
      while x < x1 - 0.1 and self.rng.random() < 0.9:
        bw, bh = self.rng.uniform(0.02, 0.06), self.rng.uniform(0.15, min(0.3, h / levels - 0.04))
        self.add((x, y, z0 + 0.05), (x + bw, y + bh, z1 - 0.05), C["books"],
                 self.rng.uniform(0.1, 0.9, 3))
        x += bw + 0.005

  def tv(self):
    spot = self.cabinet() if self.rng.random() < 0.6 else None
    w, h = self.rng.uniform(0.6, 1.2), self.rng.uniform(0.4, 0.7)
    if spot is not None:
      (x0, z0, x1, z1), top = spot
      cx = (x0 + x1) / 2
      self.add((cx - w / 2, top, (z0 + z1) / 2), (cx + w / 2, top + h, (z0 + z1) / 2 + 0.06),
               C["tv"], _jitter(self.rng, (0.05, 0.05, 0.07), 0.03))
    else:  # on the back wall
      rw, _, rd = self.size
      cx, cy = self.rng.uniform(w, rw - w), self.rng.uniform(1.0, 1.6)
      self.add((cx - w / 2, cy, rd - 0.07), (cx + w / 2, cy + h, rd - 0.01), C["tv"],
               _jitter(self.rng, (0.05, 0.05, 0.07), 0.03))

  def clutter(self):
    fp = self.free_spot(*self.rng.uniform(0.15, 0.4, 2))
    if fp is not None:
      x0, z0, x1, z1 = fp
      self.add((x0, 0, z0), (x1, self.rng.uniform(0.1, 0.5), z1), VOID,
               self.rng.uniform(0.1, 0.9, 3))

  def wall_decals(self):
    rw, rh, rd = self.size
    for wall in range(4):  # 0 back (z=rd), 1 left (x=0), 2 right (x=rw), 3 front (z=0)
      length = rw if wall in (0, 3) else rd
      for _ in range(self.rng.integers(0, 3)):
        if self.rng.random() < 0.45:
          w, h = self.rng.uniform(0.8, 1.6), self.rng.uniform(0.8, 1.3)
          u0, v0 = self.rng.uniform(0.2, max(0.3, length - w - 0.2)), self.rng.uniform(0.8, 1.1)
          self.decals.append((wall, u0, v0, u0 + w, v0 + h, C["window"],
                              _jitter(self.rng, (0.75, 0.85, 0.95), 0.08), 0))
        else:
          w, h = self.rng.uniform(0.3, 0.9), self.rng.uniform(0.3, 0.7)
          u0, v0 = self.rng.uniform(0.2, max(0.3, length - w - 0.2)), self.rng.uniform(1.2, 1.8)
          self.decals.append((wall, u0, v0, u0 + w, v0 + h, C["picture"],
                              self.rng.uniform(0.1, 0.9, 3), 2))

  def build(self):
    rng = self.rng
    self.size = np.array([rng.uniform(4.0, 7.0), rng.uniform(2.5, 3.2), rng.uniform(4.0, 7.0)])
    self.wall_color, self.floor_color = self.pick("wall"), self.pick("floor")
    self.ceiling_color = _jitter(rng, (0.92, 0.92, 0.9), 0.05)
    self.floor_texture = int(rng.integers(0, 3))
    self.wall_decals()
    makers = [self.bed, self.table, self.chair, self.chair, self.sofa, self.cabinet, self.shelf,
              self.tv, self.table, self.chair, self.clutter]
    for i in rng.permutation(len(makers))[:rng.integers(5, len(makers) + 1)]:
      makers[i]()
    rw, rh, rd = self.size
    yaw = rng.uniform(-0.5, 0.5)
    self.camera = Camera(np.array([rw / 2 + rng.uniform(-1, 1), rng.uniform(1.2, 1.7),
                                   rng.uniform(0.3, 1.0)]), yaw, rng.uniform(-0.35, 0.05),
                         np.deg2rad(rng.uniform(55, 70)))
    self.lamp = np.array([rng.uniform(1, rw - 1), rh - 0.1, rng.uniform(1, rd - 1)])
    self.light = (rng.uniform(0.25, 0.4), rng.uniform(0.6, 1.0))  # ambient, lamp strength
    if self.version == 2:  # drawn after everything else: version 1's scene, plus relief
      self.add_relief(np.random.default_rng(rng.integers(2 ** 32)))
    return self

  def add_relief(self, rng):
    """Version 2: window openings set into the walls and picture frames standing off them."""
    rw, _, rd = self.size
    flat = []
    for decal in self.decals:
      wall, u0, v0, u1, v1, label, color, texture = decal
      if label == C["window"]:
        self.recesses.append((wall, u0, v0, u1, v1, rng.uniform(0.12, 0.30)))
        flat.append(decal)  # the glass, drawn at the back of the opening
        continue
      t = rng.uniform(0.02, 0.05)  # a picture: a frame off the wall
      lo, hi = {0: ((u0, v0, rd - t), (u1, v1, rd)), 1: ((0, v0, u0), (t, v1, u1)),
                2: ((rw - t, v0, u0), (rw, v1, u1)), 3: ((u0, v0, 0), (u1, v1, t))}[wall]
      self.add(lo, hi, label, color, texture)
    self.decals = flat


def _rays(camera, height, width):
  """Unit ray directions [H*W, 3] and the camera's forward axis."""
  cy, sy, cp, sp = np.cos(camera.yaw), np.sin(camera.yaw), np.cos(camera.pitch), np.sin(
      camera.pitch)
  forward = np.array([sy * cp, sp, cy * cp])
  right = np.array([cy, 0.0, -sy])
  up = np.cross(forward, right)
  half = np.tan(camera.fov / 2)
  u = (np.arange(width) + 0.5) / width * 2 - 1
  v = 1 - (np.arange(height) + 0.5) / height * 2
  uu, vv = np.meshgrid(u * half, v * half * height / width)
  dirs = forward[None] + uu.reshape(-1, 1) * right[None] + vv.reshape(-1, 1) * up[None]
  return dirs / np.linalg.norm(dirs, axis=1, keepdims=True), forward


def _intersect_boxes(origin, dirs, lo, hi):
  """Slab test: t of the first hit [P, B] (inf where missed) and the hit axis [P, B]."""
  inv = 1.0 / np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)  # [P, 3]
  t0 = (lo[None] - origin[None, None]) * inv[:, None]  # [P, B, 3]
  t1 = (hi[None] - origin[None, None]) * inv[:, None]
  tmin, tmax = np.minimum(t0, t1), np.maximum(t0, t1)
  t_near, axis = tmin.max(axis=2), tmin.argmax(axis=2)
  t_far = tmax.min(axis=2)
  hit = (t_near <= t_far) & (t_near > 1e-6)
  return np.where(hit, t_near, np.inf), axis


def _texture(kind, p, scale=4.0):
  if kind == 1:
    return 0.85 + 0.15 * np.sin(p[:, 0] * scale * 6 + p[:, 2] * scale * 6)
  if kind == 2:
    return 0.8 + 0.2 * ((np.floor(p[:, 0] * scale) + np.floor(p[:, 1] * scale) +
                         np.floor(p[:, 2] * scale)) % 2)
  if kind == 3:
    return 0.85 + 0.15 * np.sin(p[:, 0] * 37.0) * np.sin(p[:, 2] * 41.0 + p[:, 1] * 29.0)
  return np.ones(len(p))


def render(scene, height=64, width=64):
  """(rgb uint8 [H, W, 3], depth float32 [H, W] metres, labels uint8 [H, W])."""
  cam = scene.camera
  dirs, forward = _rays(cam, height, width)
  origin = cam.position
  rw, rh, rd = scene.size
  n = len(dirs)
  # Room shell: the inside of a box; the exit distance along each ray.
  parallel = np.abs(dirs) < 1e-12  # a ray parallel to an axis never meets its two walls
  safe = np.where(parallel, 1.0, dirs)
  t_planes = np.stack([(np.where(dirs[:, a] > 0, scene.size[a], 0.0) - origin[a]) / safe[:, a]
                       for a in range(3)], axis=1)  # [P, 3]
  t_planes = np.where(parallel, np.inf, t_planes)
  axis = t_planes.argmin(axis=1)
  t = t_planes[np.arange(n), axis]
  hit = origin[None] + t[:, None] * dirs
  normal = np.zeros([n, 3])
  normal[np.arange(n), axis] = -np.sign(dirs[np.arange(n), axis])
  labels = np.full(n, C["wall"], np.int64)
  colors = np.tile(scene.wall_color, [n, 1])
  texture = np.ones(n)
  floor, ceiling = (axis == 1) & (dirs[:, 1] < 0), (axis == 1) & (dirs[:, 1] > 0)
  labels[floor], labels[ceiling] = C["floor"], C["ceiling"]
  colors[floor], colors[ceiling] = scene.floor_color, scene.ceiling_color
  texture[floor] = _texture(scene.floor_texture, hit[floor], 2.0)
  # Windows and pictures: rectangles on the walls.
  wall_id = np.full(n, -1)
  wall_id[(axis == 2) & (dirs[:, 2] > 0)] = 0
  wall_id[(axis == 0) & (dirs[:, 0] < 0)] = 1
  wall_id[(axis == 0) & (dirs[:, 0] > 0)] = 2
  wall_id[(axis == 2) & (dirs[:, 2] < 0)] = 3
  along = np.where(np.isin(wall_id, (0, 3)), hit[:, 0], hit[:, 2])
  emissive = np.zeros(n)
  for wall, u0, v0, u1, v1, label, color, tex in scene.decals:
    inside = (wall_id == wall) & (along >= u0) & (along <= u1) & (hit[:, 1] >= v0) & (
        hit[:, 1] <= v1)
    labels[inside], colors[inside] = label, color
    texture[inside] = _texture(tex, hit[inside], 8.0)
    if label == C["window"]:
      emissive[inside] = 0.6
  # Window openings (version 2): rays through an opening go on to the first face of the hole
  # box behind the wall plane: the glass at its back, or a reveal at its sides.
  for wall, u0, v0, u1, v1, deep in getattr(scene, "recesses", ()):
    inside = (wall_id == wall) & (along >= u0) & (along <= u1) & (hit[:, 1] >= v0) & (
        hit[:, 1] <= v1)
    idx = np.flatnonzero(inside)
    if not len(idx):
      continue
    lo, hi = {0: ((u0, v0, rd), (u1, v1, rd + deep)), 3: ((u0, v0, -deep), (u1, v1, 0)),
              1: ((-deep, v0, u0), (0, v1, u1)), 2: ((rw, v0, u0), (rw + deep, v1, u1))}[wall]
    d = dirs[idx]
    inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
    far = np.maximum((np.asarray(lo)[None] - origin[None]) * inv,
                     (np.asarray(hi)[None] - origin[None]) * inv)
    exit_axis = far.argmin(axis=1)
    t[idx] = far[np.arange(len(idx)), exit_axis]
    hit[idx] = origin[None] + t[idx, None] * d
    normal[idx] = 0.0
    normal[idx, exit_axis] = -np.sign(d[np.arange(len(idx)), exit_axis])
    glass = exit_axis == (2 if wall in (0, 3) else 0)
    labels[idx] = C["window"]
    colors[idx[~glass]] = (0.92, 0.92, 0.9)  # the reveals: a light frame
    texture[idx[~glass]] = 1.0
    emissive[idx[~glass]] = 0.0
  # Furniture.
  if scene.boxes:
    lo = np.stack([b.lo for b in scene.boxes])
    hi = np.stack([b.hi for b in scene.boxes])
    tb, box_axis = _intersect_boxes(origin, dirs, lo, hi)
    first = tb.argmin(axis=1)
    t_box = tb[np.arange(n), first]
    closer = t_box < t
    idx = np.flatnonzero(closer)
    if len(idx):
      b_ax = box_axis[idx, first[idx]]
      t[idx] = t_box[idx]
      hit[idx] = origin[None] + t[idx, None] * dirs[idx]
      normal[idx] = 0.0
      normal[idx, b_ax] = -np.sign(dirs[idx, b_ax])
      labels[idx] = np.array([scene.boxes[i].label for i in first[idx]])
      colors[idx] = np.stack([scene.boxes[i].color for i in first[idx]])
      kinds = np.array([scene.boxes[i].texture for i in first[idx]])
      for k in np.unique(kinds):
        sel = idx[kinds == k]
        texture[sel] = _texture(k, hit[sel], 6.0)
      emissive[idx] = 0.0
  # Lighting: ambient + ceiling lamp (Lambertian, distance falloff) + window glow.
  ambient, strength = scene.light
  to_lamp = scene.lamp[None] - hit
  dist = np.linalg.norm(to_lamp, axis=1, keepdims=True)
  lambert = np.clip(np.sum(normal * to_lamp / dist, axis=1), 0, None)
  shade = ambient + strength * lambert * 3.0 / (1.0 + dist[:, 0] ** 2 * 0.25) + emissive
  rgb = np.clip(colors * (texture * shade)[:, None], 0, 1)
  depth = t * (dirs @ forward)
  return ((rgb * 255).round().astype(np.uint8).reshape(height, width, 3),
          depth.astype(np.float32).reshape(height, width),
          labels.astype(np.uint8).reshape(height, width))


def make_scene(seed, version=1):
  """The scene of `seed` (room, furniture, camera, lights), of scenes `version` (see the
  module docstring)."""
  return SceneBuilder(np.random.default_rng(seed), version).build()


def render_seed(seed, resolution=64, version=1):
  return render(make_scene(seed, version), resolution, resolution)
