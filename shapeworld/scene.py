"""Scenes of the built-in world: a few groups of identical objects with exact positions.

A scene is the ground truth every caption is checked against, so it is a plain frozen value that
round-trips through JSON; sampling it is deterministic given a `random.Random`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass
from typing import Literal

SHAPES = ("circle", "square", "triangle", "star", "hexagon", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "grey")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
LETTERS = ("A", "E", "H", "K", "M", "R", "T", "X")
# Letters go only where a letter fits inside the shape and stays readable at 64 px.
LETTER_SHAPES = ("circle", "square", "hexagon")

# Radii as a share of the image side: large enough to read at 64 px, small enough for six objects.
RADIUS = {"small": 0.085, "large": 0.15}
# Free space kept between two objects so they never touch once rendered and anti-aliased.
GAP = 0.03
# A relation is unambiguous when one axis dominates the other by this factor ...
DOMINANCE = 1.5
# ... and the groups' centres are at least this far apart along it.
MIN_OFFSET = 0.05

# Consecutive groups in canonical order lie at least this far apart in mean x, so which one a caption
# names first is visible in the image rather than a coin toss between two nearly stacked groups.
MIN_ORDER_GAP = 0.15

_SCENE_TRIES = 200
_CENTRE_TRIES = 20
_OBJECT_TRIES = 30


@dataclass(frozen=True)
class ObjectGroup:
    """`count` identical objects; a phrase of a caption refers to exactly one group."""

    shape: str
    colour: str
    size: str
    count: int
    letter: str | None
    positions: tuple[tuple[float, float], ...]

    @property
    def centre(self) -> tuple[float, float]:
        """Mean position: relations between groups are decided from it."""
        xs, ys = zip(*self.positions, strict=True)
        return sum(xs) / len(xs), sum(ys) / len(ys)


@dataclass(frozen=True)
class Scene:
    """Groups in canonical order (left to right by mean x), the order captions mention them."""

    groups: tuple[ObjectGroup, ...]


@dataclass(frozen=True)
class WorldConfig:
    """How scenes are drawn; the defaults keep a 64 px image legible.

    `grid` lays objects out in the cells of a grid × grid layout, each near its cell's centre
    (`grid_jitter` of the side either way); 0 puts them anywhere. The default 4 × 4 matches the
    built-in captioner's 16 px patches at 64 px, one cell a patch. Why: a small vision transformer
    learns shapes from objects that sit in a patch in minutes, and from objects cut anywhere by
    patch borders far more slowly, and the built-in captioner has minutes. Measured on 2 cores:
    after 3 minutes the captioner's patch probe tells shapes apart with accuracy 0.94 on the grid
    and 0.54 anywhere; after its 6 minutes the captioner gets 12 % of content words wrong on the
    grid and 28 % anywhere (`bench/captioner_quality.py`). Placement on a grid is also a draw among
    free cells instead of rejection sampling: training examples are made twice as fast.
    """

    image_size: int = 64
    grid: int = 4
    grid_jitter: float = 0.02
    max_groups: int = 4
    group_count_weights: tuple[float, ...] = (0.35, 0.35, 0.2, 0.1)
    count_weights: tuple[float, ...] = (0.55, 0.25, 0.12, 0.08)
    max_count: int = 4
    max_objects: int = 6
    letter_probability: float = 0.5


def scene_relation(a: ObjectGroup, b: ObjectGroup) -> str | None:
    """The relation of `a` to `b` when one axis clearly dominates, else None (image y grows down)."""
    dx, dy = _offset(a, b)
    if abs(dx) > DOMINANCE * abs(dy) and abs(dx) >= MIN_OFFSET:
        return "left of" if dx < 0 else "right of"
    if abs(dy) > DOMINANCE * abs(dx) and abs(dy) >= MIN_OFFSET:
        return "above" if dy < 0 else "below"
    return None


def relation_holds(relation: str, a: ObjectGroup, b: ObjectGroup) -> bool:
    """Whether a caption may say `a <relation> b`: the direction is right and not clearly the other axis.

    Weaker than `scene_relation` on purpose: of two diagonal groups, both "left of" and "above" are
    fair words, while the opposite direction, or an axis the other one dominates, is never true.
    """
    dx, dy = _offset(a, b)
    along, across, sign = {
        "left of": (dx, dy, -1),
        "right of": (dx, dy, 1),
        "above": (dy, dx, -1),
        "below": (dy, dx, 1),
    }[relation]
    return along * sign >= MIN_OFFSET and abs(across) <= DOMINANCE * abs(along)


def scene_reflected(scene: Scene, line: Literal["vertical", "horizontal", "diagonal"]) -> Scene:
    """The scene reflected across the image's vertical or horizontal midline, or its main diagonal.

    A vertical line turns every left into right, a horizontal one every above into below, and the
    diagonal (x and y swapped) turns left of into above and right of into below: the wrong axis,
    which is how a captioner most often gets a relation wrong. Nothing else changes (objects stay
    upright, so letters still read), so a true caption of the scene is wrong on the reflected
    image in its relation words alone. The groups are put back in canonical order (left to right).
    """

    def reflect(position: tuple[float, float]) -> tuple[float, float]:
        x, y = position
        if line == "vertical":
            return round(1 - x, 4), y
        if line == "horizontal":
            return x, round(1 - y, 4)
        return y, x

    groups = [dataclasses.replace(g, positions=tuple(map(reflect, g.positions))) for g in scene.groups]
    return Scene(groups=_in_canonical_order(groups))


def _in_canonical_order(groups: list[ObjectGroup]) -> tuple[ObjectGroup, ...]:
    """Left to right by mean x: the order `Scene` keeps its groups in and captions mention them."""
    return tuple(sorted(groups, key=lambda g: g.centre[0]))


def _offset(a: ObjectGroup, b: ObjectGroup) -> tuple[float, float]:
    (ax, ay), (bx, by) = a.centre, b.centre
    return ax - bx, ay - by


def scene_sample(rng: random.Random, config: WorldConfig = WorldConfig()) -> Scene:
    """Draw a scene whose objects never overlap and whose consecutive groups have a clear relation and order.

    The number of groups is drawn first so rejections do not skew it towards small scenes; rejection
    sampling with a bounded number of tries keeps it deterministic given the rng state (should every
    try fail, fewer groups are tried, and at last a single small object is returned).
    """
    weights = config.group_count_weights[: config.max_groups]
    n_groups = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
    for n in range(n_groups, 0, -1):
        for _ in range(_SCENE_TRIES):
            scene = _scene_try(rng, n, config)
            if scene is not None:
                return scene
    return Scene(groups=(ObjectGroup("circle", "red", "small", 1, None, ((0.5, 0.5),)),))


def _scene_try(rng: random.Random, n_groups: int, config: WorldConfig) -> Scene | None:
    kinds = rng.sample([(s, c, z) for s in SHAPES for c in COLOURS for z in SIZES], n_groups)
    counts = _counts_sample(rng, n_groups, config)
    placed: list[tuple[float, float, float]] = []  # (x, y, radius) of every object so far
    groups = []
    for (shape, colour, size), count in zip(kinds, counts, strict=True):
        if config.grid:
            positions = _group_place_in_cells(rng, count, RADIUS[size], placed, config)
        else:
            positions = _group_place(rng, count, RADIUS[size], placed)
        if positions is None:
            return None
        can_bear = size == "large" and count == 1 and shape in LETTER_SHAPES
        wants_letter = can_bear and rng.random() < config.letter_probability
        letter = rng.choice(LETTERS) if wants_letter else None
        groups.append(ObjectGroup(shape, colour, size, count, letter, positions))
    ordered = _in_canonical_order(groups)
    if any(
        scene_relation(a, b) is None or b.centre[0] - a.centre[0] < MIN_ORDER_GAP
        for a, b in itertools.pairwise(ordered)
    ):
        return None
    return Scene(groups=ordered)


def _counts_sample(rng: random.Random, n_groups: int, config: WorldConfig) -> list[int]:
    """Objects per group, keeping the scene total under `max_objects` so 64 px stays readable."""
    counts = []
    budget = config.max_objects
    for i in range(n_groups):
        most = min(config.max_count, budget - (n_groups - i - 1))
        options = list(range(1, most + 1))
        count = rng.choices(options, weights=config.count_weights[: len(options)])[0]
        counts.append(count)
        budget -= count
    return counts


def _group_place(
    rng: random.Random, count: int, radius: float, placed: list[tuple[float, float, float]]
) -> tuple[tuple[float, float], ...] | None:
    """Positions for one group clustered around a centre, so the group reads as one thing."""
    spread = 0.0 if count == 1 else radius * (1.6 + 0.5 * count)
    for _ in range(_CENTRE_TRIES):
        cx, cy = rng.uniform(radius, 1 - radius), rng.uniform(radius, 1 - radius)
        trial = list(placed)
        positions = []
        for _ in range(count):
            spot = _object_place(rng, cx, cy, spread, radius, trial)
            if spot is None:
                break
            trial.append((*spot, radius))
            positions.append(spot)
        if len(positions) == count:
            placed[:] = trial
            return tuple(positions)
    return None


def _group_place_in_cells(
    rng: random.Random, count: int, radius: float, placed: list[tuple[float, float, float]], config: WorldConfig
) -> tuple[tuple[float, float], ...] | None:
    """Positions for one group in free cells of the layout grid: the first cell anywhere, the rest near it.

    "Near" is within one cell of the first object for small objects and two for large ones, which
    cannot sit in neighbouring cells; the group then still reads as one thing.
    """
    side = config.grid
    reach = (1 if radius <= RADIUS["small"] else 2) / side + 1e-9
    centres = [((i + 0.5) / side, (j + 0.5) / side) for j in range(side) for i in range(side)]
    trial = list(placed)
    positions: list[tuple[float, float]] = []
    for _ in range(count):
        if positions:
            first_x, first_y = positions[0]
            cells = [(x, y) for x, y in centres if max(abs(x - first_x), abs(y - first_y)) <= reach]
        else:
            cells = centres
        # The first clear cell in a random order: a uniform draw among the free ones.
        for cell in rng.sample(cells, len(cells)):
            spot = _cell_spot(rng, cell, radius, config.grid_jitter)
            if _clear_of(spot, radius, trial):
                break
        else:
            return None
        trial.append((*spot, radius))
        positions.append(spot)
    placed[:] = trial
    return tuple(positions)


def _cell_spot(rng: random.Random, cell: tuple[float, float], radius: float, jitter: float) -> tuple[float, float]:
    """A jittered point near the cell's centre, moved inside the image if the object would cross its edge."""
    x, y = (min(max(c + rng.uniform(-jitter, jitter), radius), 1 - radius) for c in cell)
    return round(x, 4), round(y, 4)


def _clear_of(spot: tuple[float, float], radius: float, placed: list[tuple[float, float, float]]) -> bool:
    x, y = spot
    return all(math.hypot(x - px, y - py) >= radius + pr + GAP for px, py, pr in placed)


def _object_place(
    rng: random.Random,
    cx: float,
    cy: float,
    spread: float,
    radius: float,
    placed: list[tuple[float, float, float]],
) -> tuple[float, float] | None:
    for _ in range(_OBJECT_TRIES):
        x = min(max(cx + rng.uniform(-spread, spread), radius), 1 - radius)
        y = min(max(cy + rng.uniform(-spread, spread), radius), 1 - radius)
        if _clear_of((x, y), radius, placed):
            return round(x, 4), round(y, 4)
    return None


def scene_to_dict(scene: Scene) -> dict:
    """A JSON-ready form of the scene (the record stored next to every image)."""
    return {
        "groups": [
            {
                "shape": g.shape,
                "colour": g.colour,
                "size": g.size,
                "count": g.count,
                "letter": g.letter,
                "positions": [list(p) for p in g.positions],
            }
            for g in scene.groups
        ]
    }


def scene_from_dict(record: dict) -> Scene:
    """Inverse of `scene_to_dict`."""
    return Scene(
        groups=tuple(
            ObjectGroup(
                shape=g["shape"],
                colour=g["colour"],
                size=g["size"],
                count=int(g["count"]),
                letter=g["letter"],
                positions=tuple((float(x), float(y)) for x, y in g["positions"]),
            )
            for g in record["groups"]
        )
    )
