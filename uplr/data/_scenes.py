"""Drawing and rendering of one synthetic street scene (private to :mod:`uplr.data.synthetic`).

A scene is drawn in a simple pinhole geometry (flat ground, camera 1.5 m high, horizon row ``yh``,
vanishing column ``vx``, focal length ``f`` in pixels): a road with sidewalks, a street canyon of
facade segments on either side (building, vegetation, wall, fence or a gap), a second row of buildings
behind them, a backdrop at ``z_max`` and sky; then objects stand on the ground, drawn far to near.
Drawing yields an instance map (each instance has a Cityscapes labelId and a canonical colour) and the
surface coordinates (metres) that textures are laid out in. Rendering turns that into an RGB image
under a domain :class:`Style`: per-class colour gains, colour transform and per-class colour offsets,
texture, lighting, blur and noise. The layout statistics per domain are data (:class:`Layout`), not
constants in the code.

Longer than 400 lines because it is one renderer: the drawing of each class shares the scene's geometry
and instance bookkeeping, and splitting it would spread one picture over several files.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from cityscapesscripts.helpers.labels import name2label

CAMERA_HEIGHT = 1.5  # metres
Z_NEAR = 0.5  # metres: facades start here
OFFSET_ENTROPY = 7919  # fixed key of the per-class colour offsets: the gap is a property of the benchmark


def lid(name: str) -> int:
    """Cityscapes labelId of a class name (from cityscapesscripts, not retyped)."""
    return int(name2label[name].id)


# Canonical ("real world") colour of each class before a domain's style is applied. Things whose
# colour varies per instance (vehicles, clothes, signs) draw theirs from the tables below.
CANONICAL: dict[str, tuple[float, float, float]] = {
    "sky": (150, 185, 225),
    "road": (95, 95, 100),
    "sidewalk": (150, 142, 135),
    "building": (125, 105, 92),
    "wall": (165, 155, 135),
    "fence": (135, 120, 100),
    "pole": (115, 115, 118),
    "traffic light": (45, 45, 40),
    "traffic sign": (200, 200, 200),
    "vegetation": (70, 112, 50),
    "terrain": (135, 148, 80),
    "person": (60, 60, 80),
    "rider": (60, 60, 80),
    "car": (120, 120, 125),
    "truck": (170, 170, 160),
    "bus": (200, 180, 60),
    "train": (170, 175, 185),
    "motorcycle": (40, 40, 45),
    "bicycle": (50, 50, 55),
    "ego vehicle": (30, 30, 35),
    "static": (90, 100, 85),
}
VEHICLE_COLOURS = np.array(
    [
        (230, 230, 230),
        (25, 25, 28),
        (160, 162, 168),
        (150, 30, 30),
        (30, 50, 120),
        (90, 90, 95),
        (200, 190, 150),
        (40, 90, 60),
        (220, 120, 30),
        (110, 60, 40),
    ],
    dtype=np.float32,
)
CLOTHES_COLOURS = np.array(
    [
        (30, 30, 35),
        (200, 200, 195),
        (40, 60, 120),
        (140, 30, 40),
        (90, 80, 60),
        (60, 110, 70),
        (180, 150, 110),
        (120, 120, 125),
    ],
    dtype=np.float32,
)
SIGN_COLOURS = np.array([(30, 70, 170), (210, 30, 30), (235, 200, 30), (235, 235, 235)], dtype=np.float32)
GLASS = (40, 48, 60)
TYRE = (25, 25, 25)
SKIN = (200, 160, 130)
PAINT = (235, 235, 225)  # lane markings (part of the road)


# ----------------------------------------------------------------------------------------------------
# per-domain data


@dataclass(frozen=True)
class Layout:
    """What a domain's scenes contain: expected object counts (Poisson means) and probabilities.

    The geometry prior (horizon, road and sidewalk widths, facade depth) is shared by both domains;
    these numbers are what shifts the class frequencies between them.
    """

    cars: float
    trucks: float
    bus: float  # probability that an image has a bus
    train: float  # probability that an image has a train (tram)
    persons: float
    riders: float  # each on a bicycle or a motorcycle
    rider_on_motorcycle: float  # probability that a rider's vehicle is a motorcycle
    parked_bicycles: float
    parked_motorcycles: float
    poles: float
    light_on_pole: float  # probability that a pole carries a traffic light
    sign_on_pole: float  # probability that a pole carries a traffic sign
    trees: float
    static_objects: float  # bins, boxes: Cityscapes "static" (void)
    ego_vehicle: float  # probability of an ego-vehicle hood at the bottom (void)
    segment_weights: dict[str, float] = field(default_factory=dict)  # front facade segment classes
    terrain_strip: float = 0.3  # probability that the strip between sidewalk and facade is terrain


@dataclass(frozen=True)
class Style:
    """A domain's appearance: the part of the gap a segmenter has to bridge.

    Low-frequency part: colour transform (hue rotation, saturation, per-channel gain, bias) and fixed
    per-class colour offsets, per-image brightness/contrast/colour cast and a vertical light gradient.
    Per-class part: :attr:`class_gain` recolours whole classes, so that some look like a different class
    of the other domain; shapes, layout and relative brightness stay as the shared cues.
    High-frequency part: texture (``cartoon``: flat colours with crisp stripes/checkers; ``natural``:
    multi-scale noise), blur and sensor noise.
    """

    hue_deg: float
    saturation: float
    gain: tuple[float, float, float]
    bias: float
    class_offset: float  # amplitude of the fixed per-class RGB offsets
    instance_shade: float  # +- relative brightness per instance
    texture: str  # "cartoon" | "natural"
    texture_strength: float
    blur_sigma: tuple[float, float]  # pixels, relative to a 256-pixel-wide image
    noise_sigma: tuple[float, float]  # grey levels
    brightness: tuple[float, float]
    contrast: tuple[float, float]
    cast: float  # +- per-channel gain per image
    gradient: float  # +- top-to-bottom light gradient
    vignette: float  # darkening at the corners
    offset_key: int  # selects the fixed per-class offsets
    # per-class RGB gains on the canonical colours, before the colour transform: the misleading part of
    # the gap (a class of one domain looking like another class of the other). Multiplicative, so the
    # relative brightness inside an object (glass, tyres, trunk) is kept as a shared cue.
    class_gain: tuple[tuple[str, tuple[float, float, float]], ...] = ()


SOURCE_LAYOUT = Layout(
    cars=6.0,
    trucks=0.9,
    bus=0.25,
    train=0.07,
    persons=2.0,
    riders=0.35,
    rider_on_motorcycle=0.55,
    parked_bicycles=0.15,
    parked_motorcycles=0.12,
    poles=3.0,
    light_on_pole=0.3,
    sign_on_pole=0.35,
    trees=1.0,
    static_objects=0.5,
    ego_vehicle=0.0,
    segment_weights={"building": 0.62, "vegetation": 0.12, "wall": 0.1, "fence": 0.08, "gap": 0.08},
    terrain_strip=0.25,
)
TARGET_LAYOUT = Layout(
    cars=3.5,
    trucks=0.25,
    bus=0.12,
    train=0.04,
    persons=5.0,
    riders=0.8,
    rider_on_motorcycle=0.2,
    parked_bicycles=1.2,
    parked_motorcycles=0.1,
    poles=4.0,
    light_on_pole=0.3,
    sign_on_pole=0.45,
    trees=3.0,
    static_objects=0.8,
    ego_vehicle=1.0,
    segment_weights={"building": 0.5, "vegetation": 0.26, "wall": 0.07, "fence": 0.09, "gap": 0.08},
    terrain_strip=0.45,
)
SOURCE_STYLE = Style(
    hue_deg=10.0,
    saturation=1.25,
    gain=(1.08, 1.0, 0.9),
    bias=8.0,
    class_offset=8.0,
    instance_shade=0.12,
    texture="cartoon",
    texture_strength=1.0,
    blur_sigma=(0.0, 0.0),
    noise_sigma=(0.0, 1.0),
    brightness=(0.75, 1.2),
    contrast=(0.9, 1.25),
    cast=0.1,
    gradient=0.2,
    vignette=0.0,
    offset_key=1,
)
TARGET_STYLE = Style(
    hue_deg=-20.0,
    saturation=0.95,
    gain=(0.85, 0.95, 1.1),
    bias=0.0,
    class_offset=8.0,
    instance_shade=0.15,
    texture="natural",
    texture_strength=1.0,
    blur_sigma=(0.5, 1.1),
    noise_sigma=(3.0, 7.0),
    brightness=(0.85, 1.15),
    contrast=(0.85, 1.05),
    cast=0.08,
    gradient=0.25,
    vignette=0.15,
    offset_key=2,
    # the target city's look, misleading for a source-trained model: autumn trees the colour of the
    # source's brick buildings, grey-blue concrete buildings, lush green terrain like the source's
    # trees, dark sidewalks like the source's road, green-painted poles, yellow traffic-light housings
    class_gain=(
        ("vegetation", (2.2, 1.0, 1.3)),
        ("building", (1.2, 1.35, 1.55)),
        ("terrain", (0.5, 1.0, 0.5)),
        ("wall", (0.9, 0.75, 0.65)),
        ("sidewalk", (0.85, 0.85, 0.8)),
        ("pole", (0.45, 0.65, 0.5)),
        ("traffic light", (4.0, 3.4, 1.0)),
    ),
)
LAYOUTS = {"source": SOURCE_LAYOUT, "target": TARGET_LAYOUT}
STYLES = {"source": SOURCE_STYLE, "target": TARGET_STYLE}


# ----------------------------------------------------------------------------------------------------
# drawing


@dataclass
class Scene:
    """A drawn scene: instance map, per-instance labelId and canonical colour, surface coordinates."""

    inst: np.ndarray  # int32 HxW, index into label_of / colour_of
    label_of: np.ndarray  # int labelId per instance
    colour_of: np.ndarray  # float32 Nx3 canonical RGB per instance
    su: np.ndarray  # float32 HxW surface coordinate 1 (metres): ground X from road centre, facade depth
    sv: np.ndarray  # float32 HxW surface coordinate 2 (metres): ground depth, facade height

    @property
    def labels(self) -> np.ndarray:
        """HxW uint8 Cityscapes labelIds."""
        return self.label_of.astype(np.uint8)[self.inst]


class _Canvas:
    """Instance map plus the camera that projects world rectangles onto it."""

    def __init__(self, h: int, w: int, f: float, vx: float, yh: float) -> None:
        self.h, self.w, self.f, self.vx, self.yh = h, w, f, vx, yh
        self.inst = np.zeros((h, w), np.int32)
        self.labels: list[int] = []
        self.colours: list[tuple[float, float, float]] = []

    def new(self, name: str, colour: tuple[float, float, float] | np.ndarray | None = None) -> int:
        self.labels.append(lid(name))
        self.colours.append(tuple(CANONICAL[name] if colour is None else colour))  # type: ignore[arg-type]
        return len(self.labels) - 1

    def px(self, x: float, z: float) -> float:
        return self.vx + self.f * x / z

    def py(self, y: float, z: float) -> float:
        return self.yh + self.f * (CAMERA_HEIGHT - y) / z

    def rect(self, i: int, x0: float, x1: float, y0: float, y1: float, z: float) -> None:
        """World rectangle [x0,x1] x [y0,y1] (metres, y up) standing at depth z; at least 1 pixel."""
        a, b = self.px(x0, z), self.px(x1, z)
        top, bot = self.py(y1, z), self.py(y0, z)
        ia, ib = int(math.floor(a)), max(int(math.floor(a)), int(math.ceil(b)) - 1)
        it, ibt = int(math.floor(top)), max(int(math.floor(top)), int(math.ceil(bot)) - 1)
        if ib < 0 or ia >= self.w or ibt < 0 or it >= self.h:
            return
        self.inst[max(it, 0) : min(ibt, self.h - 1) + 1, max(ia, 0) : min(ib, self.w - 1) + 1] = i

    def ellipse(
        self, i: int, x: float, y: float, rx: float, ry: float, z: float, thickness: int = -1
    ) -> None:
        c = (int(round(self.px(x, z))), int(round(self.py(y, z))))
        ax = (max(int(round(self.f * rx / z)), 1), max(int(round(self.f * ry / z)), 1))
        cv2.ellipse(self.inst, c, ax, 0, 0, 360, int(i), thickness)

    def poly(self, i: int, pts: list[tuple[float, float]], z: float) -> None:
        arr = np.array([[round(self.px(x, z)), round(self.py(y, z))] for x, y in pts], np.int32)
        cv2.fillPoly(self.inst, [arr], int(i))

    def line(self, i: int, p: tuple[float, float], q: tuple[float, float], width: float, z: float) -> None:
        a = (int(round(self.px(p[0], z))), int(round(self.py(p[1], z))))
        b = (int(round(self.px(q[0], z))), int(round(self.py(q[1], z))))
        cv2.line(self.inst, a, b, int(i), max(int(round(self.f * width / z)), 1))


def _pick(rng: np.random.Generator, table: np.ndarray) -> np.ndarray:
    return table[rng.integers(len(table))] + rng.uniform(-12, 12, 3).astype(np.float32)


def _segments(
    rng: np.random.Generator, z_max: float, weights: dict[str, float]
) -> tuple[np.ndarray, list[str]]:
    """Facade segments along one side: edges (metres of depth) and a class per segment."""
    edges = [Z_NEAR]
    while edges[-1] < z_max:
        edges.append(edges[-1] + float(rng.uniform(5.0, 22.0)))
    names = list(weights)
    p = np.array([weights[n] for n in names], float)
    kinds = [names[k] for k in rng.choice(len(names), size=len(edges) - 1, p=p / p.sum())]
    return np.asarray(edges), kinds


# Depth ranges (metres) objects are placed at, and the sizes of the thin ones: near and large enough
# that a stride-8 segmenter at the benchmark's resolution can learn them from target labels.
DEPTH: dict[str, tuple[float, float]] = {
    "car": (5.0, 55.0),
    "truck": (8.0, 50.0),
    "bus": (8.0, 45.0),
    "train": (10.0, 40.0),
    "person": (3.0, 25.0),
    "rider": (3.0, 18.0),
    "parked two-wheeler": (3.0, 16.0),
    "pole": (3.0, 30.0),
    "tree": (5.0, 50.0),
    "static": (4.0, 30.0),
}
POLE_HALF_WIDTH = 0.2  # metres
LAMP_SIZE = (0.45, 1.6)  # half width, height (metres)
SIGN_SIZE = (0.45, 0.7)  # half side (metres), uniform range
BICYCLE_STROKE = (0.08, 0.09)  # frame, tyre line width (metres)
PERSON_HALF_WIDTH = 0.18  # shoulders, relative to the height

SEGMENT_HEIGHT = {  # metres (low, high)
    "building": (7.0, 26.0),
    "vegetation": (2.0, 9.0),
    "wall": (1.0, 3.0),
    "fence": (1.0, 2.2),
    "gap": (0.0, 0.0),
}


def draw_scene(rng: np.random.Generator, h: int, w: int, layout: Layout) -> Scene:
    """Draw one street scene under ``layout`` (all randomness from ``rng``)."""
    f = w * float(rng.uniform(0.55, 0.68))
    yh = h * float(rng.uniform(0.36, 0.47))
    vx = w * (0.5 + float(rng.uniform(-0.07, 0.07)))
    cv = _Canvas(h, w, f, vx, yh)
    cv.new("sky")  # instance 0
    z_max = float(rng.uniform(70.0, 120.0))
    road_c = float(rng.uniform(-1.2, 1.2))
    road_half = float(rng.uniform(3.2, 7.0))
    walk = (float(rng.uniform(1.5, 4.0)), float(rng.uniform(1.5, 4.0)))  # left, right
    strip = (float(rng.uniform(0.0, 3.0)), float(rng.uniform(0.0, 3.0)))

    ys = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) + 0.5)[None, :]
    dy = ys - yh
    dx = xs - vx
    zbuf = np.full((h, w), np.inf, np.float32)
    inst = cv.inst
    su = np.zeros((h, w), np.float32)
    sv = np.zeros((h, w), np.float32)

    def put(hit: np.ndarray, z: np.ndarray, ids: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        m = hit & (z < zbuf)
        np.copyto(zbuf, z, where=m)
        np.copyto(inst, ids, where=m, casting="unsafe")
        np.copyto(su, u, where=m)
        np.copyto(sv, v, where=m)

    # backdrop: a row of blocks at z_max
    col_h = np.zeros(w, np.float32)
    col_i = np.zeros(w, np.int32)
    x = 0
    while x < w:
        bw = max(int(w * rng.uniform(0.03, 0.12)), 1)
        name = "building" if rng.random() < 0.75 else "vegetation"
        col_i[x : x + bw] = cv.new(name)
        col_h[x : x + bw] = rng.uniform(4.0, 30.0)
        x += bw
    yw = CAMERA_HEIGHT - dy * z_max / f
    zb = np.broadcast_to(np.float32(z_max), (h, w))
    put(
        (yw >= 0) & (yw <= col_h[None, :]),
        zb,
        np.broadcast_to(col_i[None, :], (h, w)),
        np.broadcast_to(dx * z_max / f, (h, w)),
        np.broadcast_to(yw, (h, w)),
    )

    # facades: back row (always buildings) then the front segments, on both sides
    fronts = []
    for side, sgn in ((0, -1.0), (1, 1.0)):
        x_walk = road_half + walk[side]
        x_front = x_walk + strip[side]
        x_back = x_front + float(rng.uniform(4.0, 12.0))
        edges, kinds = _segments(rng, z_max, {"building": 1.0})
        _facade(cv, rng, put, edges, kinds, sgn * x_back + road_c, dx, dy, z_max)
        edges, kinds = _segments(rng, z_max, layout.segment_weights)
        _facade(cv, rng, put, edges, kinds, sgn * x_front + road_c, dx, dy, z_max)
        strip_ids = np.array(
            [cv.new("terrain" if rng.random() < layout.terrain_strip else "sidewalk") for _ in kinds],
            np.int32,
        )
        fronts.append((edges, strip_ids, x_walk, x_front))

    # ground
    below = dy > 0
    zg = np.where(below, f * CAMERA_HEIGHT / np.maximum(dy, 1e-3), np.inf).astype(np.float32)
    xg = np.where(below, dx * CAMERA_HEIGHT / np.maximum(dy, 1e-3) - road_c, 0.0).astype(np.float32)
    gid = np.full((h, w), cv.new("road"), np.int32)
    beyond = cv.new("terrain")
    for side, sgn in ((0, -1.0), (1, 1.0)):
        edges, strip_ids, x_walk, x_front = fronts[side]
        lat = sgn * xg
        seg = np.clip(np.searchsorted(edges, zg[:, 0]) - 1, 0, len(strip_ids) - 1)
        gid = np.where(lat > road_half, cv.new("sidewalk"), gid)
        gid = np.where(lat > x_walk, strip_ids[seg][:, None], gid)
        gid = np.where(lat > x_front, beyond, gid)
    put(np.broadcast_to(below, (h, w)), np.broadcast_to(zg, (h, w)), gid, xg, np.broadcast_to(zg, (h, w)))

    geom = _Geometry(road_c, road_half, walk, z_max)
    for _, draw in sorted(_objects(rng, layout, geom, cv), key=lambda t: -t[0]):
        draw()
    if rng.random() < layout.ego_vehicle:
        _ego(cv, rng)
    return Scene(inst, np.asarray(cv.labels, np.int32), np.asarray(cv.colours, np.float32), su, sv)


def _facade(
    cv: _Canvas,
    rng: np.random.Generator,
    put: Callable[..., None],
    edges: np.ndarray,
    kinds: list[str],
    x_plane: float,
    dx: np.ndarray,
    dy: np.ndarray,
    z_max: float,
) -> None:
    """Vertical plane x = x_plane split into segments along depth, each with its class and height."""
    ids = np.array([cv.new(k if k != "gap" else "building") for k in kinds], np.int32)
    heights = np.array([rng.uniform(*SEGMENT_HEIGHT[k]) for k in kinds], np.float32)
    side_ok = (dx * np.sign(x_plane)) > 0
    z = np.where(side_ok, cv.f * abs(x_plane) / np.where(side_ok, np.abs(dx), 1.0), np.inf).astype(np.float32)
    seg = np.clip(np.searchsorted(edges, z[0]) - 1, 0, len(kinds) - 1)
    col_h = heights[seg]
    veg = np.array([k == "vegetation" for k in kinds])[seg]
    if veg.any():  # ragged tree tops
        bumps = np.interp(np.arange(cv.w), np.linspace(0, cv.w, 12), rng.uniform(-1.5, 1.5, 12))
        col_h = np.where(veg, col_h + bumps, col_h).astype(np.float32)
    yw = CAMERA_HEIGHT - dy * z / cv.f
    hit = (z >= Z_NEAR) & (z <= z_max) & (yw >= 0) & (yw <= col_h[None, :])
    put(
        hit,
        np.broadcast_to(z, hit.shape),
        np.broadcast_to(ids[seg][None, :], hit.shape),
        np.broadcast_to(z, hit.shape),
        yw,
    )


@dataclass(frozen=True)
class _Geometry:
    road_c: float
    road_half: float
    walk: tuple[float, float]
    z_max: float

    def lane_x(self, rng: np.random.Generator) -> float:
        return self.road_c + float(rng.uniform(-0.7, 0.7)) * self.road_half

    def walk_x(self, rng: np.random.Generator) -> float:
        side = -1.0 if rng.random() < 0.5 else 1.0
        k = 0 if side < 0 else 1
        return self.road_c + side * (self.road_half + float(rng.uniform(0.3, 0.9)) * self.walk[k])

    def edge_x(self, rng: np.random.Generator) -> float:
        side = -1.0 if rng.random() < 0.5 else 1.0
        return self.road_c + side * (self.road_half - float(rng.uniform(0.8, 1.5)))


def _objects(
    rng: np.random.Generator, lay: Layout, g: _Geometry, cv: _Canvas
) -> list[tuple[float, Callable[[], None]]]:
    """Sample the objects of one scene: (depth, draw function) pairs."""
    out: list[tuple[float, Callable[[], None]]] = []

    def add(z: float, fn: Callable[..., None], *args: object) -> None:
        out.append((z, functools.partial(fn, cv, rng, *args, z)))

    for _ in range(rng.poisson(lay.cars)):
        parked = rng.random() < 0.4
        add(float(rng.uniform(*DEPTH["car"])), _car, g.edge_x(rng) if parked else g.lane_x(rng), parked)
    for _ in range(rng.poisson(lay.trucks)):
        add(float(rng.uniform(*DEPTH["truck"])), _truck, g.lane_x(rng))
    if rng.random() < lay.bus:
        add(float(rng.uniform(*DEPTH["bus"])), _bus, g.lane_x(rng), "bus")
    if rng.random() < lay.train:
        add(
            float(rng.uniform(*DEPTH["train"])),
            _bus,
            g.road_c + float(rng.uniform(-0.4, 0.4)) * g.road_half,
            "train",
        )
    for _ in range(rng.poisson(lay.persons)):
        crossing = rng.random() < 0.15
        add(
            float(rng.uniform(*DEPTH["person"])),
            _person,
            g.lane_x(rng) if crossing else g.walk_x(rng),
            "person",
            0.0,
        )
    for _ in range(rng.poisson(lay.riders)):
        moto = rng.random() < lay.rider_on_motorcycle
        add(float(rng.uniform(*DEPTH["rider"])), _two_wheeler, g.edge_x(rng), moto, True)
    for _ in range(rng.poisson(lay.parked_bicycles)):
        add(float(rng.uniform(*DEPTH["parked two-wheeler"])), _two_wheeler, g.walk_x(rng), False, False)
    for _ in range(rng.poisson(lay.parked_motorcycles)):
        add(float(rng.uniform(*DEPTH["parked two-wheeler"])), _two_wheeler, g.edge_x(rng), True, False)
    for _ in range(rng.poisson(lay.poles)):
        side = -1.0 if rng.random() < 0.5 else 1.0
        x = g.road_c + side * (g.road_half + 0.4)
        light = rng.random() < lay.light_on_pole
        sign = rng.random() < lay.sign_on_pole
        add(float(rng.uniform(*DEPTH["pole"])), _pole, x, side, light, sign)
    for _ in range(rng.poisson(lay.trees)):
        add(float(rng.uniform(*DEPTH["tree"])), _tree, g.walk_x(rng))
    for _ in range(rng.poisson(lay.static_objects)):
        add(float(rng.uniform(*DEPTH["static"])), _static, g.walk_x(rng))
    return out


def _car(cv: _Canvas, rng: np.random.Generator, x: float, parked: bool, z: float) -> None:
    w = float(rng.uniform(2.6, 4.2)) if parked else float(rng.uniform(1.7, 2.0))
    h = float(rng.uniform(1.35, 1.6))
    body = cv.new("car", _pick(rng, VEHICLE_COLOURS))
    glass = cv.new("car", GLASS)
    tyre = cv.new("car", TYRE)
    x0, x1 = x - w / 2, x + w / 2
    cv.rect(tyre, x0 + 0.05 * w, x0 + 0.25 * w, 0.0, 0.4, z)
    cv.rect(tyre, x1 - 0.25 * w, x1 - 0.05 * w, 0.0, 0.4, z)
    cv.rect(body, x0, x1, 0.2, 0.6 * h, z)
    inset = 0.15 * w
    cv.poly(body, [(x0, 0.6 * h), (x1, 0.6 * h), (x1 - inset, h), (x0 + inset, h)], z)
    cv.poly(
        glass,
        [
            (x0 + 0.1 * w, 0.64 * h),
            (x1 - 0.1 * w, 0.64 * h),
            (x1 - 0.2 * w, 0.93 * h),
            (x0 + 0.2 * w, 0.93 * h),
        ],
        z,
    )


def _truck(cv: _Canvas, rng: np.random.Generator, x: float, z: float) -> None:
    w, h = float(rng.uniform(2.3, 2.6)), float(rng.uniform(2.9, 3.9))
    box = cv.new("truck", _pick(rng, VEHICLE_COLOURS))
    tyre = cv.new("truck", TYRE)
    cv.rect(tyre, x - w / 2, x + w / 2, 0.0, 0.6, z)
    cv.rect(box, x - w / 2, x + w / 2, 0.5, h, z)


def _bus(cv: _Canvas, rng: np.random.Generator, x: float, kind: str, z: float) -> None:
    long = kind == "train"
    w = float(rng.uniform(2.6, 9.0 if long else 6.0))
    h = float(rng.uniform(3.4, 3.9)) if long else float(rng.uniform(3.0, 3.3))
    colour = np.asarray(CANONICAL[kind], np.float32) + rng.uniform(-25, 25, 3).astype(np.float32)
    body = cv.new(kind, colour)
    glass = cv.new(kind, GLASS)
    tyre = cv.new(kind, TYRE)
    cv.rect(tyre, x - w / 2, x + w / 2, 0.0, 0.5, z)
    cv.rect(body, x - w / 2, x + w / 2, 0.35, h, z)
    cv.rect(glass, x - w / 2 + 0.2, x + w / 2 - 0.2, 0.55 * h, 0.85 * h, z)
    if long:  # pantograph
        cv.line(body, (x - 0.4, h), (x + 0.2, h + 0.8), 0.08, z)


def _person(cv: _Canvas, rng: np.random.Generator, x: float, name: str, base: float, z: float) -> None:
    h = float(rng.uniform(1.55, 1.95))
    shirt = cv.new(name, _pick(rng, CLOTHES_COLOURS))
    legs = cv.new(name, _pick(rng, CLOTHES_COLOURS))
    skin = cv.new(name, SKIN)
    if base == 0.0:
        leg = PERSON_HALF_WIDTH - 0.01
        cv.rect(legs, x - leg * h, x - 0.03 * h, 0.0, 0.5 * h, z)
        cv.rect(legs, x + 0.03 * h, x + leg * h, 0.0, 0.5 * h, z)
    else:  # seated: one leg down to the pedal
        cv.rect(legs, x - 0.05, x + 0.08, base - 0.5, base + 0.1, z)
    top = base + (0.5 * h if base == 0.0 else 0.0)
    cv.rect(shirt, x - PERSON_HALF_WIDTH * h, x + PERSON_HALF_WIDTH * h, top, top + 0.35 * h, z)
    cv.ellipse(skin, x, top + 0.42 * h, 0.065 * h, 0.075 * h, z)


def _two_wheeler(cv: _Canvas, rng: np.random.Generator, x: float, moto: bool, ridden: bool, z: float) -> None:
    name = "motorcycle" if moto else "bicycle"
    frame = cv.new(name, _pick(rng, VEHICLE_COLOURS) if moto else None)
    tyre = cv.new(name, TYRE)
    r = 0.32 if moto else 0.34
    half = 0.6 if moto else 0.55
    stroke, tyre_w = BICYCLE_STROKE
    thick = -1 if moto else max(int(round(cv.f * tyre_w / z)), 1)
    cv.ellipse(tyre, x - half, r, r, r, z, thick)
    cv.ellipse(tyre, x + half, r, r, r, z, thick)
    if moto:
        cv.poly(frame, [(x - half, r), (x - 0.2, 0.95), (x + 0.4, 0.95), (x + half, r + 0.1), (x, 0.3)], z)
    else:
        cv.line(frame, (x - half, r), (x, r), stroke, z)
        cv.line(frame, (x, r), (x - 0.1, 0.85), stroke, z)
        cv.line(frame, (x - 0.1, 0.85), (x + half - 0.1, 0.9), stroke, z)
        cv.line(frame, (x + half, r), (x + half - 0.1, 0.95), stroke, z)
    if ridden:
        _person(cv, rng, x - 0.05, "rider", 0.95 if not moto else 0.9, z)


def _pole(
    cv: _Canvas, rng: np.random.Generator, x: float, side: float, light: bool, sign: bool, z: float
) -> None:
    h = float(rng.uniform(3.5, 7.5))
    pole = cv.new("pole")
    cv.rect(pole, x - POLE_HALF_WIDTH, x + POLE_HALF_WIDTH, 0.0, h, z)
    if light:
        lamp = cv.new("traffic light")
        bulb = cv.new("traffic light", [(220, 40, 30), (40, 200, 60), (240, 170, 20)][int(rng.integers(3))])
        lx = x
        if rng.random() < 0.4:  # on an arm over the road
            lx = x - side * float(rng.uniform(1.5, 3.5))
            cv.rect(pole, min(lx, x), max(lx, x), h - 0.15, h, z)
        lw, lh = LAMP_SIZE
        cv.rect(lamp, lx - lw, lx + lw, h - lh, h, z)
        cv.ellipse(bulb, lx, h - 0.3, 0.1, 0.1, z)
    if sign:
        plate = cv.new("traffic sign", _pick(rng, SIGN_COLOURS))
        sy, s = float(rng.uniform(2.0, 3.0)), float(rng.uniform(*SIGN_SIZE))
        shape = int(rng.integers(3))
        if shape == 0:
            cv.ellipse(plate, x, sy, s, s, z)
        elif shape == 1:
            cv.rect(plate, x - s, x + s, sy - s, sy + s, z)
        else:
            cv.poly(plate, [(x - s, sy + s), (x + s, sy + s), (x, sy - s)], z)


def _tree(cv: _Canvas, rng: np.random.Generator, x: float, z: float) -> None:
    veg = cv.new("vegetation")
    trunk = cv.new("vegetation", (80, 60, 45))
    top = float(rng.uniform(3.0, 6.0))
    cv.rect(trunk, x - 0.15, x + 0.15, 0.0, top, z)
    r = float(rng.uniform(1.3, 2.6))
    cv.ellipse(veg, x, top + 0.5 * r, r, r * float(rng.uniform(0.8, 1.3)), z)


def _static(cv: _Canvas, rng: np.random.Generator, x: float, z: float) -> None:
    i = cv.new("static")
    w, h = float(rng.uniform(0.5, 1.2)), float(rng.uniform(0.7, 1.3))
    cv.rect(i, x - w / 2, x + w / 2, 0.0, h, z)


def _ego(cv: _Canvas, rng: np.random.Generator) -> None:
    """Ego-vehicle hood at the bottom of the image (Cityscapes labelId 1, void)."""
    hood = cv.new("ego vehicle")
    depth = cv.h * float(rng.uniform(0.05, 0.1))
    centre = (int(round(cv.w / 2)), int(round(cv.h + cv.w * 0.9 - depth)))
    cv2.ellipse(cv.inst, centre, (int(cv.w * 2.0), int(cv.w * 0.9)), 0, 0, 360, int(hood), -1)


# ----------------------------------------------------------------------------------------------------
# rendering


def colour_matrix(hue_deg: float, saturation: float, gain: tuple[float, float, float]) -> np.ndarray:
    """3x3 RGB transform: rotate hue about the grey axis, scale saturation, then per-channel gain."""
    k = np.ones(3) / math.sqrt(3.0)
    t = math.radians(hue_deg)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = math.cos(t) * np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * np.outer(k, k)
    grey = np.outer(np.ones(3), [0.299, 0.587, 0.114])
    return np.diag(gain) @ (grey + saturation * rot @ (np.eye(3) - grey))


@functools.cache
def class_offsets(style: Style) -> np.ndarray:
    """Fixed per-labelId RGB offsets of a style (the same for every seed: part of the benchmark)."""
    rng = np.random.default_rng(np.random.SeedSequence(OFFSET_ENTROPY, spawn_key=(style.offset_key,)))
    off = rng.uniform(-1.0, 1.0, (256, 3)).astype(np.float32) * style.class_offset
    off.setflags(write=False)
    return off


@functools.cache
def class_gains(style: Style) -> np.ndarray:
    """Per-labelId RGB gains of a style (1 where :attr:`Style.class_gain` names no gain)."""
    gain = np.ones((256, 3), np.float32)
    for name, g in style.class_gain:
        gain[lid(name)] = g
    gain.setflags(write=False)
    return gain


def fractal_noise(rng: np.random.Generator, h: int, w: int, scales: tuple[int, ...]) -> np.ndarray:
    """Sum of bilinearly upsampled Gaussian noise grids (cell size ``s`` pixels), unit-ish std."""
    out = np.zeros((h, w), np.float32)
    for s in scales:
        gh, gw = max(h // s, 1) + 2, max(w // s, 1) + 2
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)
    return out / math.sqrt(len(scales))


def _texture(scene: Scene, rng: np.random.Generator, style: Style) -> np.ndarray:
    """Per-pixel relative brightness modulation (HxW) from the style's texture kind."""
    h, w = scene.inst.shape
    lab = scene.labels
    su, sv = scene.su, scene.sv
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    px = max(w / 256.0, 1e-3)  # textures scale with the image
    t = np.zeros((h, w), np.float32)
    windows = ((np.mod(su, 3.2) > 1.0) & (np.mod(sv, 3.0) > 1.0)).astype(np.float32)

    def put(name: str, value: np.ndarray | float) -> None:
        np.copyto(t, np.asarray(value, np.float32), where=lab == lid(name), casting="unsafe")

    if style.texture == "cartoon":
        put("building", 0.08 - 0.4 * windows)
        put("sidewalk", 0.12 * ((np.floor(su / 1.0) + np.floor(sv / 1.0)) % 2) - 0.06)
        put("vegetation", 0.3 * (np.mod((xx + yy) / (4 * px), 1.0) < 0.5) - 0.15)
        put("terrain", 0.25 * (np.mod(yy / (3 * px), 1.0) < 0.5) - 0.12)
        put("wall", 0.2 * (np.mod(sv / 0.5, 1.0) < 0.15))
        put("fence", 0.5 * (np.mod(su / 0.5, 1.0) < 0.4) - 0.25)
        for name in ("car", "truck", "bus", "train"):
            put(name, 0.15 * (np.mod((xx - yy) / (6 * px), 1.0) < 0.2))
    else:
        fine = fractal_noise(rng, h, w, tuple(sorted({max(int(round(s * px)), 1) for s in (1, 2, 4)})))
        coarse = fractal_noise(rng, h, w, tuple(sorted({max(int(round(s * px)), 1) for s in (8, 32)})))
        amp = {
            "vegetation": 0.3,
            "terrain": 0.18,
            "building": 0.1,
            "wall": 0.1,
            "fence": 0.12,
            "sidewalk": 0.07,
            "road": 0.05,
            "sky": 0.0,
        }
        for name, a in amp.items():
            put(name, a * fine)
        put("building", 0.1 * fine - 0.3 * windows)
        put("fence", 0.12 * fine - 0.3 * (np.mod(su / 0.3, 1.0) < 0.3))
        put("sky", 0.08 * coarse)
    # lane markings (paint is on the road in both domains)
    road = lab == lid("road")
    lanes = (np.abs(su) < 0.12) & (np.mod(sv, 9.0) < 4.0)
    t[road & lanes] = 1.3 if style.texture == "cartoon" else 0.8
    return t * style.texture_strength


def render(scene: Scene, rng: np.random.Generator, style: Style) -> np.ndarray:
    """RGB uint8 image of ``scene`` in ``style`` (per-image lighting, blur and noise drawn from ``rng``)."""
    h, w = scene.inst.shape
    n = len(scene.label_of)
    shade = 1.0 + rng.uniform(-style.instance_shade, style.instance_shade, (n, 1)).astype(np.float32)
    lut = scene.colour_of * shade * class_gains(style)[scene.label_of]
    lut = lut @ colour_matrix(style.hue_deg, style.saturation, style.gain).T.astype(np.float32)
    lut = lut + style.bias + class_offsets(style)[scene.label_of]
    img = lut.astype(np.float32)[scene.inst]
    img *= 1.0 + _texture(scene, rng, style)[:, :, None]

    # lighting: per-image brightness, contrast, colour cast, vertical gradient, vignette
    yy = (np.arange(h, dtype=np.float32) / max(h - 1, 1))[:, None, None]
    xx = (np.arange(w, dtype=np.float32) / max(w - 1, 1))[None, :, None]
    grad = 1.0 + float(rng.uniform(-style.gradient, style.gradient)) * (yy - 0.5)
    cast = 1.0 + rng.uniform(-style.cast, style.cast, 3).astype(np.float32)
    img *= grad * cast[None, None, :] * float(rng.uniform(*style.brightness))
    if style.vignette:
        r2 = (xx - 0.5) ** 2 + (yy - 0.5) ** 2
        img *= 1.0 - style.vignette * r2 / 0.5
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = (img - mean) * float(rng.uniform(*style.contrast)) + mean

    sigma = float(rng.uniform(*style.blur_sigma)) * w / 256.0
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = float(rng.uniform(*style.noise_sigma))
    if noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
