"""A procedurally rendered toy world of short action clips, with matched bowling pairs.

Every clip is drawn with numpy alone (no game engine): a scene in simple perspective,
a few moving objects, lighting and sensor noise. The toy ViViT is trained to name the
*action* of a clip (``ACTIONS``); the bowling *outcome* is never a label.

The point of the world is the matched pair. ``render_clip("bowling", seed, "strike")`` and
``render_clip("bowling", seed, "gutter")`` share every nuisance factor drawn from ``seed``
(lane and ball colours, camera offset and zoom, ball speed, lighting, sensor noise), so
their frames are identical, pixel for pixel, until the frame at which the ball's path
diverges (``bowling_divergence_frame``). Whatever differs between the two runs of a model
is caused by the outcome alone - a control the paper's two unrelated Kinetics clips lack.

The null pair is the control's control. ``render_null_pair(seed, "strike")`` (or ``"gutter"``)
renders two clips of one seed with the *same* outcome, identical until the same divergence
frame, whose balls then take two different paths (two strikes through opposite pockets, or two
gutter balls in opposite gutters). A model that tells a null pair apart as well as a
strike/gutter pair is telling paths apart, not outcomes. ``pair_pixel_difference`` measures
how far the two clips of any pair differ, so that null and outcome pairs can be size-matched.

Shapes: a clip is ``uint8 (frame, row, col, 3)``, RGB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIONS: tuple[str, ...] = ("bowling", "billiards", "juggling", "dribbling", "pendulum", "curling")
OUTCOMES: tuple[str, ...] = ("strike", "gutter", "partial")
NULL_OUTCOMES: tuple[str, ...] = ("strike", "gutter")  # outcomes a null pair can share

DEFAULT_NUM_FRAMES = 16  # frames per clip, as the toy model expects
DEFAULT_SIZE = 96  # pixels per side, as the toy model expects
# a null pair's second ball path (``render_null_pair``), drawn from its own stream; tuned so that a
# null strike pair differs in pixels about as much as the seed's strike/gutter pair
NULL_PATH_STREAM = 1  # extra seed key of the stream that draws a null pair's second ball path
NULL_POCKET = (0.05, 0.25)  # |u| of a second strike's pocket, across the head pin from the seed's (0.15)
NULL_ROW_DELAY = (0.1, 0.3)  # frames per pin row of a second strike's pin wave (the seed's: 0.5)
NULL_FALL_SPEED = (1.2, 2.0)  # fall speed factors of a second strike's pins (the seed's: 0.6 to 1.4)
NULL_GUTTER_DROP = (1.5, 4.0)  # frames a second gutter ball takes to drop into its gutter (the seed's: 2.5)


# ----------------------------------------------------------------------------- drawing


class Canvas:
    """A float32 RGB image ``(row, col, 3)`` in [0, 1] with anti-aliased primitives.

    Each primitive is evaluated only inside a box that holds every pixel it can touch (its
    coverage is exactly 0 elsewhere, where blending leaves a pixel as it is), so the result is
    bitwise that of blending over the whole image, at a fraction of the cost.
    """

    def __init__(self, base: np.ndarray):
        self.img = base.astype(np.float32, copy=True)
        h, w, _ = self.img.shape
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5

    def _box(self, x0, y0, x1, y1) -> tuple[slice, slice] | None:
        """Rows and columns whose pixel centres may lie in [x0, x1] x [y0, y1] (one pixel of
        margin); None if the box misses the image."""
        h, w, _ = self.img.shape
        c0, c1 = max(int(np.floor(x0)) - 1, 0), min(int(np.ceil(x1)) + 1, w)
        r0, r1 = max(int(np.floor(y0)) - 1, 0), min(int(np.ceil(y1)) + 1, h)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def _blend(self, box, alpha_fn, color) -> None:
        """Blend ``color`` with coverage ``alpha_fn(yy, xx)`` (evaluated on the box) into the image.
        The image takes the dtype the blend promotes to, as a whole-image blend would."""
        if box is None:
            return
        color = np.asarray(color, np.float32)
        alpha = alpha_fn(self.yy[box], self.xx[box])
        dtype = np.result_type(self.img, alpha, color)
        if dtype != self.img.dtype:
            self.img = self.img.astype(dtype)
        a = alpha[..., None]
        self.img[box] = self.img[box] * (1 - a) + a * color

    def ellipse(self, cx, cy, rx, ry, color, angle=0.0) -> None:
        """Filled ellipse centred at (cx, cy) pixels, radii (rx, ry), rotated by angle (rad)."""
        rx, ry = max(rx, 0.35), max(ry, 0.35)
        c, s = np.cos(angle), np.sin(angle)

        def alpha(yy, xx):
            dx, dy = xx - cx, yy - cy
            u = (c * dx + s * dy) / rx
            v = (-s * dx + c * dy) / ry
            r = np.sqrt(u * u + v * v)
            # signed distance in pixels, approximately; one-pixel soft edge for anti-aliasing
            dist = (r - 1.0) * min(rx, ry)
            return np.clip(0.5 - dist, 0.0, 1.0)

        # coverage needs r < 1 + 0.5 / min(rx, ry), and r >= (distance from the centre) / max(rx, ry)
        reach = max(rx, ry) * (1.0 + 0.5 / min(rx, ry)) + 1.0
        self._blend(self._box(cx - reach, cy - reach, cx + reach, cy + reach), alpha, color)

    def disk(self, cx, cy, r, color) -> None:
        self.ellipse(cx, cy, r, r, color)

    def line(self, x0, y0, x1, y1, width, color) -> None:
        dx, dy = x1 - x0, y1 - y0

        def alpha(yy, xx):
            px, py = xx - x0, yy - y0
            t = np.clip((px * dx + py * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
            d = np.hypot(px - t * dx, py - t * dy)
            return np.clip(width / 2 + 0.5 - d, 0.0, 1.0)

        reach = width / 2 + 1.5  # coverage needs a distance below width / 2 + 0.5 from the segment
        self._blend(self._box(min(x0, x1) - reach, min(y0, y1) - reach, max(x0, x1) + reach,
                              max(y0, y1) + reach), alpha, color)

    def rect(self, x0, y0, x1, y1, color) -> None:
        def alpha(yy, xx):
            ax = np.clip(np.minimum(xx - x0, x1 - xx) + 0.5, 0, 1)
            ay = np.clip(np.minimum(yy - y0, y1 - yy) + 0.5, 0, 1)
            return ax * ay

        self._blend(self._box(x0 - 1.5, y0 - 1.5, x1 + 1.5, y1 + 1.5), alpha, color)


@dataclass(frozen=True)
class Look:
    """Nuisance factors shared by every frame of a clip: camera, light and sensor."""

    size: int
    zoom: float  # camera zoom factor
    cam_dx: float  # camera offset, fraction of the frame width
    cam_dy: float  # camera offset, fraction of the frame height
    gain: np.ndarray  # (3,) per-channel lighting gain (brightness and colour temperature)
    noise: float  # sensor noise standard deviation, in [0, 1] units
    noise_seed: int


def _look(rng: np.random.Generator, size: int) -> Look:
    warm = rng.uniform(-0.06, 0.06)
    return Look(
        size=size,
        zoom=rng.uniform(0.9, 1.1),
        cam_dx=rng.uniform(-0.06, 0.06),
        cam_dy=rng.uniform(-0.04, 0.04),
        gain=rng.uniform(0.8, 1.15) * np.array([1 + warm, 1.0, 1 - warm], np.float32),
        noise=rng.uniform(0.01, 0.04),
        noise_seed=int(rng.integers(2**31)),
    )


def _finish(frames: list[np.ndarray], look: Look) -> np.ndarray:
    """Lighting, sensor noise (the same noise stream for every clip drawn from one seed)."""
    video = np.stack(frames) * look.gain  # (frame, row, col, 3)
    noise_rng = np.random.default_rng(look.noise_seed)
    video = video + noise_rng.normal(0.0, look.noise, video.shape).astype(np.float32)
    return (np.clip(video, 0, 1) * 255 + 0.5).astype(np.uint8)


def _colour(rng, lo=0.0, hi=1.0) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


# ----------------------------------------------------------------------------- bowling


class _Lane:
    """Perspective projection of lane coordinates: u across (-1..1 lane, |u|>1 gutter),
    v along (0 = foul line near the camera, 1 = pin deck)."""

    DEPTH = 3.0  # the far end is this many times farther than the near end

    def __init__(self, look: Look):
        s = look.size
        self.s = s
        self.cx = s * (0.5 + look.cam_dx)
        self.scale_y = s * 0.9 * look.zoom  # screen y of v is horizon + scale_y / z(v)
        self.horizon = s * (0.97 + look.cam_dy) - self.scale_y  # v=0 near the bottom edge
        self.scale_x = s * 0.42 * look.zoom

    def z(self, v):
        return 1.0 + v * (self.DEPTH - 1.0)

    def project(self, u, v):
        """(u, v) lane coordinates -> (x, y) pixels and the scale (pixels per lane unit)."""
        z = self.z(v)
        return self.cx + u * self.scale_x / z, self.horizon + self.scale_y / z, self.scale_x / z

    def background(self, wood, gutter, wall, deck) -> np.ndarray:
        s = self.s
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.scale_y / (yy - self.horizon)
            v = (z - 1.0) / (self.DEPTH - 1.0)
            u = (xx - self.cx) * z / self.scale_x
        img = np.empty((s, s, 3), np.float32)
        img[:] = wall
        on_floor = (yy > self.horizon) & (v >= 0)
        lane = on_floor & (v <= 1.08) & (np.abs(u) <= 1.0)
        gut = on_floor & (v <= 1.08) & (np.abs(u) > 1.0) & (np.abs(u) <= 1.3)
        deck_region = (yy > self.horizon) & (v > 1.08) & (np.abs(u) <= 1.3)
        # wood boards: faint stripes across u
        boards = 0.92 + 0.08 * (np.floor(np.where(lane, u, 0) * 10) % 2)
        img[lane] = wood * boards[lane][:, None]
        img[gut] = gutter
        img[deck_region] = deck
        # side floor beyond the gutters
        side = on_floor & (np.abs(u) > 1.3)
        img[side] = wall * 0.7
        return img


# pin positions in lane units (a real lane: 12-inch pin spacing, 21-inch half width):
# head pin nearest the bowler, then rows of 2, 3 and 4
_PIN_DU, _PIN_DV, _PIN_V0 = 0.285, 0.035, 0.9
_PIN_ROWS = [(0.0,), (-1, 1), (-2, 0, 2), (-3, -1, 1, 3)]
_PINS = np.array(
    [(k * _PIN_DU, _PIN_V0 + _PIN_DV * r) for r, row in enumerate(_PIN_ROWS) for k in row],
    np.float32,
)  # (10, 2): (u, v)


def bowling_divergence_frame(num_frames: int = DEFAULT_NUM_FRAMES) -> int:
    """Index of the first frame at which a strike and a gutter clip of one seed may differ."""
    return int(round(0.3 * num_frames)) + 1


@dataclass(frozen=True)
class _BallPath:
    """Where a bowling ball goes after the divergence frame, and what it does to the pins."""

    u_end: float  # lane coordinate across (u) the ball reaches: pocket (strike) or gutter
    hits: np.ndarray  # (10,) bool: which pins fall
    fall_dir: np.ndarray  # (10,) per-pin fall direction in [-1, 1] (sideways share)
    fall_speed: np.ndarray  # (10,) per-pin fall speed factor
    drop_frames: float = 2.5  # frames a gutter ball takes to drop into the gutter
    row_delay: float = 0.5  # frames the pin wave takes from one pin row to the next


def _seed_ball_path(outcome: str, side: float, partial_hits: np.ndarray, fall_dir: np.ndarray,
                    fall_speed: np.ndarray) -> _BallPath:
    """The path ``render_clip`` draws for ``outcome`` from the seed's own stream."""
    if outcome == "strike":
        return _BallPath(0.15 * side, np.ones(10, bool), fall_dir, fall_speed)
    if outcome == "gutter":
        return _BallPath(1.15 * side, np.zeros(10, bool), fall_dir, fall_speed)
    if outcome == "partial":
        hits = (side * _PINS[:, 0] > 0.2) | partial_hits & (side * _PINS[:, 0] > -0.1)
        return _BallPath(0.6 * side, hits, fall_dir, fall_speed)
    raise ValueError(f"unknown bowling outcome {outcome!r}; choose one of {OUTCOMES}")


def _other_ball_path(path_rng: np.random.Generator, outcome: str, side: float) -> _BallPath:
    """A second path with the same ``outcome`` ("strike" or "gutter"), drawn from ``path_rng``
    (a stream separate from the seed's): the ball heads for the *other* side of the lane
    (the other pocket, or the other gutter), so the two paths part from the divergence frame.

    A second strike comes through the other pocket and hits harder: the pins go down together
    (a quicker pin wave) and fly faster, each its own way (fall directions drawn afresh); every
    pin still lies down well before the last frame. A second gutter ball drops into the other
    gutter at its own pace. A gutter path can only move the ball (no pin falls in either clip),
    so a null gutter pair differs far less than a strike/gutter pair, whose difference is mostly
    the pins; see ``tests/test_synthetic.py`` for the sizes."""
    if outcome == "strike":
        pocket = path_rng.uniform(*NULL_POCKET)
        fall_dir = path_rng.uniform(-1, 1, 10)
        fall_speed = path_rng.uniform(*NULL_FALL_SPEED, 10)
        row_delay = path_rng.uniform(*NULL_ROW_DELAY)
        return _BallPath(-side * pocket, np.ones(10, bool), fall_dir, fall_speed, row_delay=row_delay)
    if outcome == "gutter":
        drop = path_rng.uniform(*NULL_GUTTER_DROP)
        return _BallPath(-side * 1.15, np.zeros(10, bool), np.zeros(10), np.ones(10), drop_frames=drop)
    raise ValueError(f"a null pair's outcome is one of {NULL_OUTCOMES}, got {outcome!r}")


def _bowling(rng: np.random.Generator, look: Look, num_frames: int, outcome: str,
             path_rng: np.random.Generator | None = None) -> np.ndarray:
    """A bowling clip. Every nuisance factor comes from ``rng`` (the seed's stream), drawn in
    the same order whatever the outcome; the ball's path after the divergence frame is the
    seed's own for ``outcome``, or, given ``path_rng``, another path with the same outcome
    (``_other_ball_path``)."""
    lane = _Lane(look)
    wood = np.array([0.78, 0.6, 0.38], np.float32) * rng.uniform(0.85, 1.1, 3)
    gutter = _colour(rng, 0.15, 0.35)
    wall = _colour(rng, 0.1, 0.5)
    deck = wall * 0.5
    ball_col = _colour(rng, 0.05, 0.9) * np.array([1, 0.6, 1], np.float32)
    pin_white = np.array([0.97, 0.97, 0.95], np.float32)
    stripe = np.array([0.85, 0.1, 0.1], np.float32)
    t_hit = rng.uniform(0.55, 0.68) * (num_frames - 1)  # frame at which the ball meets the pins
    side = rng.choice([-1.0, 1.0])  # which gutter, which pocket
    u0 = rng.uniform(-0.25, 0.25)  # ball's start across the lane
    drift = rng.uniform(-0.02, 0.02)  # per-frame drift before the divergence
    t_div = bowling_divergence_frame(num_frames) - 1  # last shared frame
    # per-pin fall directions and speeds: drawn for every outcome, so all share the stream
    fall_dir = rng.uniform(-1, 1, 10)
    fall_speed = rng.uniform(0.6, 1.4, 10)
    partial_hits = rng.random(10) < 0.5
    bg = lane.background(wood, gutter, wall, deck)

    v_pin = _PINS[0, 1]
    speed = v_pin / t_hit  # lane units per frame
    u_div = u0 + drift * t_div
    path = _seed_ball_path(outcome, side, partial_hits, fall_dir, fall_speed)
    if path_rng is not None:
        path = _other_ball_path(path_rng, outcome, side)
    u_end, hits, fall_dir, fall_speed = path.u_end, path.hits, path.fall_dir, path.fall_speed

    frames = []
    for t in range(num_frames):
        cv = Canvas(bg)
        # pins: those hit start to fall once the ball (or the pin wave) reaches them
        pins = []
        for i, (pu, pv) in enumerate(_PINS):
            delay = (pv - v_pin) / _PIN_DV * path.row_delay + abs(pu - u_end) * 0.8
            tau = t - (t_hit + delay) if hits[i] else -1.0
            if tau <= 0:
                pins.append((pv, pu, 0.0, 0.0))
            else:
                fall = min(tau / 1.5, 1.0)  # 0 standing .. 1 lying
                du = fall_dir[i] * 0.35 * fall_speed[i] * tau
                dv = 0.03 * fall_speed[i] * tau
                pins.append((pv + dv, pu + du, fall, np.sign(fall_dir[i]) or 1.0))
        # ball position
        if t <= t_div:
            u = u0 + drift * t
        else:
            frac = min((t - t_div) / max(t_hit - t_div, 1e-3), 1.0)
            if outcome == "gutter":
                frac = min((t - t_div) / path.drop_frames, 1.0)  # drops into the gutter within a few frames
            u = u_div + (u_end - u_div) * frac
        vb = speed * t
        if outcome == "strike" and t > t_hit:
            vb = v_pin + (t - t_hit) * speed * 0.6  # slowed by the pins, carries through
        # draw far to near: pins beyond the ball first
        items = [(pv, "pin", (pu, f, d)) for pv, pu, f, d in pins]
        if vb <= 1.1:
            items.append((vb, "ball", u))
        for depth, kind, data in sorted(items, key=lambda it: -it[0]):
            if kind == "pin":
                pu, f, d = data
                x, y, k = lane.project(pu, depth)
                h, w = 0.55 * k, 0.12 * k
                ang = d * f * np.pi / 2
                cx, cy = x + np.sin(ang) * h * 0.5, y - np.cos(ang) * h * 0.5 + f * h * 0.1
                cv.ellipse(cx, cy, w, h * 0.55, pin_white, angle=ang)
                cv.ellipse(cx - np.sin(-ang) * h * 0.18, cy - np.cos(ang) * h * 0.18,
                           w * 0.9, h * 0.08, stripe, angle=ang)
            else:
                x, y, k = lane.project(data, depth)
                r = 0.2 * k
                cv.disk(x, y - r * 0.8, r, ball_col)
                cv.disk(x - r * 0.3, y - r * 1.15, r * 0.3, np.minimum(ball_col + 0.35, 1))
        frames.append(cv.img)
    return _finish(frames, look)


# ----------------------------------------------------------------------------- other actions


def _billiards(rng, look, num_frames):
    s = look.size
    felt = np.array([0.1, rng.uniform(0.4, 0.65), 0.2], np.float32) * rng.uniform(0.8, 1.1)
    rail = _colour(rng, 0.2, 0.45) * np.array([1.0, 0.7, 0.5], np.float32)
    bg = np.empty((s, s, 3), np.float32)
    bg[:] = rail
    m = s * (0.1 + look.cam_dy)
    bg[int(m): int(s - m * 0.8), int(s * 0.08): int(s * 0.92)] = felt
    balls = [(_colour(rng, 0.1, 1.0), rng.uniform(0.3, 0.7, 2)) for _ in range(rng.integers(2, 5))]
    cue_pos = np.array([rng.uniform(0.25, 0.4), rng.uniform(0.4, 0.7)])
    target = balls[0][1]
    direction = (target - cue_pos) / np.linalg.norm(target - cue_pos)
    t_hit = rng.uniform(0.35, 0.55) * num_frames
    speed = np.linalg.norm(target - cue_pos) / t_hit
    r = s * 0.035 * look.zoom
    frames = []
    for t in range(num_frames):
        cv = Canvas(bg)
        moved = target + direction * speed * 0.8 * max(t - t_hit, 0)
        cue = cue_pos + direction * speed * min(t, t_hit)
        if t < t_hit * 0.5:  # the cue stick draws back and strikes
            back = cue_pos - direction * (0.1 + 0.05 * np.sin(t))
            tip = back - direction * 0.35
            cv.line(back[0] * s, back[1] * s, tip[0] * s, tip[1] * s, s * 0.015, (0.6, 0.45, 0.25))
        for k, (col, p) in enumerate(balls):
            q = np.clip(moved if k == 0 else p, 0.12, 0.88)
            cv.disk(q[0] * s, q[1] * s, r, col)
        cv.disk(cue[0] * s, cue[1] * s, r, (0.95, 0.95, 0.92))
        frames.append(cv.img)
    return _finish(frames, look)


def _person(cv, x, y, s, col):
    cv.rect(x - 0.06 * s, y, x + 0.06 * s, y + 0.3 * s, col)  # torso
    cv.disk(x, y - 0.06 * s, 0.05 * s, (0.85, 0.7, 0.55))  # head


def _juggling(rng, look, num_frames):
    s = look.size
    bg = np.empty((s, s, 3), np.float32)
    bg[:] = _colour(rng, 0.3, 0.9)
    bg[int(s * 0.8):] = _colour(rng, 0.1, 0.5)
    shirt = _colour(rng)
    cols = [_colour(rng, 0.2, 1.0) for _ in range(3)]
    x0 = s * (0.5 + look.cam_dx)
    period = rng.uniform(5, 9)
    phase = rng.uniform(0, 1)
    frames = []
    for t in range(num_frames):
        cv = Canvas(bg)
        _person(cv, x0, s * 0.5, s, shirt)
        for k in range(3):
            ph = ((t / period) + phase + k / 3) % 1.0
            side = 1 if (int((t / period) + phase + k / 3) % 2) else -1
            x = x0 + side * (0.18 - 0.36 * ph) * s * look.zoom
            y = s * (0.55 - 1.6 * ph * (1 - ph) * 0.5 * look.zoom)
            cv.disk(x, y, s * 0.035, cols[k])
        frames.append(cv.img)
    return _finish(frames, look)


def _dribbling(rng, look, num_frames):
    s = look.size
    bg = np.empty((s, s, 3), np.float32)
    bg[:] = _colour(rng, 0.4, 0.9)
    floor_y = s * (0.82 + look.cam_dy)
    bg[int(floor_y):] = np.array([0.75, 0.55, 0.3], np.float32) * rng.uniform(0.8, 1.1)
    shirt = _colour(rng)
    ball = np.array([0.9, 0.45, 0.1], np.float32) * rng.uniform(0.8, 1.1)
    period = rng.uniform(3.5, 6)
    phase = rng.uniform(0, 1)
    walk = rng.uniform(-0.015, 0.015) * s
    x0 = s * (0.45 + look.cam_dx)
    frames = []
    for t in range(num_frames):
        cv = Canvas(bg)
        x = x0 + walk * t
        _person(cv, x, s * 0.45, s, shirt)
        ph = ((t / period) + phase) % 1.0
        h = abs(np.cos(np.pi * ph))  # 1 at the hand, 0 on the floor
        y = floor_y - s * 0.05 - h * (floor_y - s * 0.62)
        cv.disk(x + 0.12 * s, y, s * 0.05 * look.zoom, ball)
        frames.append(cv.img)
    return _finish(frames, look)


def _pendulum(rng, look, num_frames):
    s = look.size
    bg = np.empty((s, s, 3), np.float32)
    bg[:] = _colour(rng, 0.2, 0.9)
    bob = _colour(rng, 0.0, 1.0)
    px, py = s * (0.5 + look.cam_dx), s * (0.1 + look.cam_dy)
    length = s * rng.uniform(0.45, 0.7) * look.zoom
    amp = rng.uniform(0.4, 0.9)
    period = rng.uniform(6, 12)
    phase = rng.uniform(0, 2 * np.pi)
    frames = []
    for t in range(num_frames):
        cv = Canvas(bg)
        cv.rect(px - 0.15 * s, py - 0.03 * s, px + 0.15 * s, py, (0.3, 0.3, 0.3))
        a = amp * np.sin(2 * np.pi * t / period + phase)
        x, y = px + length * np.sin(a), py + length * np.cos(a)
        cv.line(px, py, x, y, max(1.0, s * 0.012), (0.15, 0.15, 0.15))
        cv.disk(x, y, s * 0.06, bob)
        frames.append(cv.img)
    return _finish(frames, look)


def _curling(rng, look, num_frames):
    """A lane in perspective like bowling, but ice, a sliding stone and a target: no pins."""
    lane = _Lane(look)
    ice = np.array([0.85, 0.9, 0.95], np.float32) * rng.uniform(0.85, 1.05)
    bg = lane.background(ice, _colour(rng, 0.5, 0.8), _colour(rng, 0.1, 0.5), ice * 0.8)
    cv0 = Canvas(bg)
    for rad, col in ((0.45, (0.2, 0.3, 0.85)), (0.3, (0.95, 0.95, 0.95)), (0.15, (0.85, 0.15, 0.15))):
        x, y, k = lane.project(0.0, 0.9)
        cv0.ellipse(x, y, rad * k, rad * k * 0.35, col)
    bg = cv0.img
    stone = _colour(rng, 0.3, 0.9)
    speed = rng.uniform(0.6, 0.95) / num_frames
    u0, curl = rng.uniform(-0.4, 0.4), rng.uniform(-0.03, 0.03)
    frames = []
    for t in range(num_frames):
        cv = Canvas(bg)
        v = speed * t * (1 - 0.3 * t / num_frames)
        x, y, k = lane.project(u0 + curl * t, v)
        cv.ellipse(x, y - 0.04 * k, 0.13 * k, 0.07 * k, (0.35, 0.35, 0.38))
        cv.ellipse(x, y - 0.09 * k, 0.05 * k, 0.03 * k, stone)
        frames.append(cv.img)
    return _finish(frames, look)


_RENDERERS = {
    "billiards": _billiards,
    "juggling": _juggling,
    "dribbling": _dribbling,
    "pendulum": _pendulum,
    "curling": _curling,
}


def _seed_stream(seed: int, action: str) -> np.random.Generator:
    """The stream every nuisance factor of a clip is drawn from. It is keyed by action (not
    outcome), so that the clips of a matched or null pair share it."""
    return np.random.default_rng([int(seed), ACTIONS.index(action)])


def render_clip(
    action: str,
    seed: int,
    outcome: str | None = None,
    num_frames: int = DEFAULT_NUM_FRAMES,
    size: int = DEFAULT_SIZE,
) -> np.ndarray:
    """Render one clip as ``uint8 (num_frames, size, size, 3)``, deterministic per arguments.

    ``outcome`` applies to bowling only (``"strike"``, ``"gutter"`` or ``"partial"``; default
    ``"strike"``). Clips of one seed share every nuisance factor whatever the outcome.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose one of {ACTIONS}")
    if outcome is not None and action != "bowling":
        raise ValueError(f"outcome applies to bowling only, got action={action!r}")
    if num_frames < 4 or size < 16:
        raise ValueError(f"need num_frames >= 4 and size >= 16, got {num_frames}, {size}")
    rng = _seed_stream(seed, action)
    look = _look(rng, size)
    if action == "bowling":
        return _bowling(rng, look, num_frames, outcome or "strike")
    return _RENDERERS[action](rng, look, num_frames)


def render_pair(seed: int, num_frames: int = DEFAULT_NUM_FRAMES, size: int = DEFAULT_SIZE):
    """The matched (strike, gutter) pair of one seed."""
    return (
        render_clip("bowling", seed, "strike", num_frames, size),
        render_clip("bowling", seed, "gutter", num_frames, size),
    )


def render_null_pair(seed: int, outcome: str, num_frames: int = DEFAULT_NUM_FRAMES, size: int = DEFAULT_SIZE):
    """A null pair: two bowling clips with the *same* ``outcome`` ("strike" or "gutter").

    The first clip is ``render_clip("bowling", seed, outcome)``; the second shares every
    nuisance factor of ``seed`` (look, lane, camera, speed, sensor noise) and so every frame
    before ``bowling_divergence_frame``, after which its ball takes another path with the same
    outcome, drawn from a stream separate from the seed's (``NULL_PATH_STREAM``): the other
    pocket for a strike, the other gutter for a gutter ball. Whatever a model tells apart
    between the two clips is not the outcome. Returns two ``uint8 (num_frames, size, size, 3)``.
    """
    if outcome not in NULL_OUTCOMES:
        raise ValueError(f"a null pair's outcome is one of {NULL_OUTCOMES}, got {outcome!r}")
    first = render_clip("bowling", seed, outcome, num_frames, size)  # also checks the arguments
    rng = _seed_stream(seed, "bowling")
    path_rng = np.random.default_rng([int(seed), ACTIONS.index("bowling"), NULL_PATH_STREAM])
    second = _bowling(rng, _look(rng, size), num_frames, outcome, path_rng=path_rng)
    return first, second


def pair_pixel_difference(clip_a: np.ndarray, clip_b: np.ndarray, start: int | None = None) -> float:
    """Size of the difference between two clips ``uint8 (frame, row, col, 3)``: the mean
    absolute difference in pixel levels (0..255) over every pixel and channel of the frames
    from ``start`` on (default ``bowling_divergence_frame``: the frames where a pair may differ)."""
    if clip_a.shape != clip_b.shape:
        raise ValueError(f"clips differ in shape: {clip_a.shape} vs {clip_b.shape}")
    start = bowling_divergence_frame(len(clip_a)) if start is None else start
    diff = clip_a[start:].astype(np.int16) - clip_b[start:].astype(np.int16)  # (frame, row, col, 3)
    return float(np.abs(diff).mean())
