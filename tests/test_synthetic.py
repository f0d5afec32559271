import time

import numpy as np
import pytest

from utils.synthetic import ACTIONS, bowling_divergence_frame, render_clip, render_pair


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_renders_deterministically(action):
    a = render_clip(action, 7)
    b = render_clip(action, 7)
    assert a.shape == (16, 96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, render_clip(action, 8)), "seeds must vary the clip"
    assert not np.array_equal(a[0], a[-1]), "something must move"


def test_at_least_four_other_actions():
    assert ACTIONS[0] == "bowling" and len(ACTIONS) >= 5


@pytest.mark.parametrize("seed", [0, 42, 12345])
def test_matched_pair_identical_until_divergence_then_different(seed):
    strike, gutter = render_pair(seed)
    div = bowling_divergence_frame(16)
    np.testing.assert_array_equal(strike[:div], gutter[:div])
    assert not np.array_equal(strike[div:], gutter[div:])
    # the last frames differ clearly: pins down vs standing, ball elsewhere
    assert np.abs(strike[-1].astype(int) - gutter[-1].astype(int)).mean() > 1.0


def test_partial_outcome_and_pair_at_paper_resolution():
    p = render_clip("bowling", 3, "partial")
    assert p.shape == (16, 96, 96, 3)
    s, g = render_pair(3, num_frames=32, size=224)
    assert s.shape == (32, 224, 224, 3)
    np.testing.assert_array_equal(s[: bowling_divergence_frame(32)], g[: bowling_divergence_frame(32)])


def test_strike_knocks_pins_down_gutter_leaves_them():
    # the pin deck region (top middle of the frame) changes a lot after impact in a strike only
    strike, gutter = render_pair(42)
    rows, cols = slice(20, 45), slice(25, 71)
    change_s = np.abs(strike[-1, rows, cols].astype(int) - strike[0, rows, cols].astype(int)).mean()
    change_g = np.abs(gutter[-1, rows, cols].astype(int) - gutter[0, rows, cols].astype(int)).mean()
    assert change_s > 2 * change_g


def test_rendering_is_fast():
    t = time.perf_counter()
    render_clip("bowling", 1, "strike")
    assert time.perf_counter() - t < 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown action"):
        render_clip("tennis", 0)
    with pytest.raises(ValueError, match="outcome"):
        render_clip("bowling", 0, "spare")
    with pytest.raises(ValueError, match="bowling only"):
        render_clip("juggling", 0, "strike")


# ----------------------------------------------------------------------------- null pairs

# Sum of every pixel level of clips rendered before null pairs were added (the code of commit
# d90ea09): adding them must not move an existing clip (every trained model and cached activation
# rests on them). A sum, not a hash: another CPU's libm may round a pixel the other way, which a
# hash would call a change; a changed ball path or pin moves the sum by thousands of levels.
_CLIP_SUMS = {
    ("bowling", 0, "strike"): 38343684,
    ("bowling", 0, "gutter"): 38502155,
    ("bowling", 0, "partial"): 38448183,
    ("bowling", 42, "strike"): 32763086,
    ("bowling", 42, "gutter"): 32858383,
    ("bowling", 12345, "partial"): 35636408,
    ("billiards", 3, None): 30700072,
    ("curling", 3, None): 67384999,
}
ROUNDING_LEVELS = 64  # pixel levels another machine's float rounding may move a whole clip by


@pytest.mark.parametrize("key", list(_CLIP_SUMS), ids=lambda k: "-".join(map(str, k)))
def test_existing_clips_are_unchanged(key):
    action, seed, outcome = key
    total = int(render_clip(action, seed, outcome).astype(np.int64).sum())
    assert abs(total - _CLIP_SUMS[key]) <= ROUNDING_LEVELS, (total, _CLIP_SUMS[key])


NULL_SEEDS = range(20)  # seeds over which null and outcome pairs are size-matched


@pytest.fixture(scope="module")
def pair_sizes():
    """``pair_pixel_difference`` of each seed's strike/gutter pair and of its two null pairs."""
    from utils.synthetic import pair_pixel_difference, render_null_pair

    sizes = {"outcome": [], "strike": [], "gutter": []}
    for seed in NULL_SEEDS:
        strike, gutter = render_pair(seed)
        sizes["outcome"].append(pair_pixel_difference(strike, gutter))
        for outcome, first in (("strike", strike), ("gutter", gutter)):
            a, b = render_null_pair(seed, outcome)
            np.testing.assert_array_equal(a, first)  # the first clip is the seed's own
            sizes[outcome].append(pair_pixel_difference(a, b))
    return {k: np.array(v) for k, v in sizes.items()}


@pytest.mark.parametrize("outcome", ["strike", "gutter"])
@pytest.mark.parametrize("seed", [0, 42, 12345])
def test_null_pair_identical_until_divergence_then_different(seed, outcome):
    from utils.synthetic import render_null_pair

    a, b = render_null_pair(seed, outcome)
    div = bowling_divergence_frame(16)
    assert a.shape == b.shape == (16, 96, 96, 3) and b.dtype == np.uint8
    np.testing.assert_array_equal(a[:div], b[:div])
    assert not np.array_equal(a[div], b[div]), "the paths part at the divergence frame"
    np.testing.assert_array_equal(b, render_null_pair(seed, outcome)[1])  # deterministic


@pytest.mark.parametrize("seed", [0, 42, 12345])
def test_null_pair_keeps_the_outcome(seed):
    """By the last frame the ball has left the picture, so it shows the pins alone: two gutter
    balls leave the very same standing pins; two strikes each leave a deck unlike the gutter's."""
    from utils.synthetic import pair_pixel_difference, render_null_pair

    strike, gutter = render_pair(seed)
    g1, g2 = render_null_pair(seed, "gutter")
    np.testing.assert_array_equal(g2[-1], gutter[-1])
    for clip in render_null_pair(seed, "strike"):
        assert pair_pixel_difference(clip[-1:], gutter[-1:], start=0) > 1.0
    assert pair_pixel_difference(strike[-1:], gutter[-1:], start=0) > 1.0


def test_null_paths_have_the_outcome_and_pins_fall_in_time():
    from utils import synthetic as syn

    rng = np.random.default_rng(0)
    for side in (-1.0, 1.0):
        strike = syn._other_ball_path(rng, "strike", side)
        gutter = syn._other_ball_path(rng, "gutter", side)
        assert strike.hits.all() and not gutter.hits.any()
        assert -side * strike.u_end > 0 and abs(strike.u_end) < 1  # the other pocket, on the lane
        assert gutter.u_end == pytest.approx(-1.15 * side)  # the other gutter
    # the latest pin of a second strike lies down (1.5 frames after it is hit) before the last
    # frame: latest impact (0.68 of the clip, as _bowling draws it), then the slowest pin wave
    n = 16
    latest_pin = 3 * syn.NULL_ROW_DELAY[1] + 0.8 * (3 * syn._PIN_DU + syn.NULL_POCKET[1])
    assert 0.68 * (n - 1) + latest_pin + 1.5 < n - 1
    with pytest.raises(ValueError, match="null pair"):
        syn.render_null_pair(0, "partial")


def test_null_strike_pairs_differ_as_much_as_outcome_pairs(pair_sizes):
    """Size-matched control: two strikes differ by about as many pixel levels as strike and
    gutter (within 25% on average over seeds)."""
    outcome, null_strike = pair_sizes["outcome"].mean(), pair_sizes["strike"].mean()
    assert (pair_sizes["outcome"] > 0).all() and (pair_sizes["strike"] > 0).all()
    assert null_strike == pytest.approx(outcome, rel=0.25), (null_strike, outcome)


def test_null_gutter_pairs_differ_by_the_ball_alone(pair_sizes):
    """A gutter path can only move the ball (the pins stand in both clips), while most of a
    strike/gutter difference is the pins: null gutter pairs are far smaller. Use null strike
    pairs where a size-matched control is needed."""
    assert (pair_sizes["gutter"] > 0).all()
    assert pair_sizes["gutter"].mean() < 0.5 * pair_sizes["outcome"].mean()


def test_pair_pixel_difference():
    from utils.synthetic import pair_pixel_difference

    a = np.zeros((16, 4, 4, 3), np.uint8)
    b = a.copy()
    div = bowling_divergence_frame(16)
    b[div:] = 200  # a uint8 subtraction would wrap around
    assert pair_pixel_difference(a, b) == pytest.approx(200.0)
    assert pair_pixel_difference(b, a) == pytest.approx(200.0)
    assert pair_pixel_difference(a, b, start=0) == pytest.approx(200.0 * (16 - div) / 16)
    with pytest.raises(ValueError, match="shape"):
        pair_pixel_difference(a, b[:, :2])
