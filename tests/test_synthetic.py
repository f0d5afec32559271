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
