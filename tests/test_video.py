"""Decoding real files the project writes, and every way a file can be unusable."""

import warnings
from fractions import Fraction

import av
import numpy as np
import pytest

from utils.synthetic import render_clip
from utils.video import VideoError, paper_indices, read_video, uniform_indices, write_video


@pytest.fixture(scope="module")
def clip():
    return render_clip("bowling", 5, "strike", num_frames=24, size=64)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory, clip):
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", clip, fps=8)


def _write(path, frames, codec="libx264", pix_fmt="yuv420p", fmt=None, pts=None, audio_first=False,
           rate=8):
    with av.open(str(path), "w", format=fmt) as out:
        audio = out.add_stream("aac", rate=16000) if audio_first else None
        if audio is not None:
            audio.layout = "mono"
        v = out.add_stream(codec, rate=rate)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if pts is not None:
            v.time_base = v.codec_context.time_base = Fraction(1, 1000)
        if audio is not None:
            samples = np.zeros((1, 1024), np.float32)
            for k in range(4):
                af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, k * 1024
                for pkt in audio.encode(af):
                    out.mux(pkt)
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts is not None:
                f.pts, f.time_base = pts[i], Fraction(1, 1000)
            for pkt in v.encode(f):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        if audio is not None:
            for pkt in audio.encode():
                out.mux(pkt)
    return path


def test_roundtrip_of_a_project_mp4(mp4, clip):
    frames = read_video(mp4, 24)
    assert frames.shape == clip.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - clip.astype(int)).mean() < 6  # H.264 at crf 12


def test_uniform_sampling_spans_the_whole_clip(mp4, clip):
    frames = read_video(mp4, 4)  # frames 0, 8, 15, 23 of 24
    want = clip[[0, 8, 15, 23]].astype(int)
    errs = [[np.abs(f.astype(int) - w).mean() for w in want] for f in frames]
    assert [int(np.argmin(e)) for e in errs] == [0, 1, 2, 3]


def test_uniform_indices_by_time_handle_variable_frame_rate():
    ts = np.array([0, 10, 20, 30, 1000, 1010, 1020, 2000])  # bursts and gaps
    np.testing.assert_array_equal(uniform_indices(ts, 3), [0, 4, 7])


def test_variable_frame_rate_file(tmp_path, clip):
    pts = [0, 40, 80, 120, 1000, 1040, 1080, 2000]
    path = _write(tmp_path / "vfr.mp4", clip[:8], pts=pts)
    frames = read_video(path, 3)
    assert frames.shape == (3, 64, 64, 3)
    # picks frames 0, 4 and 7 (nearest to 0, 1000, 2000 ms)
    for got, k in zip(frames, (0, 4, 7), strict=False):
        assert np.abs(got.astype(int) - clip[k].astype(int)).mean() < 8


def test_short_clip_repeats_frames_evenly_and_warns_once(tmp_path, clip):
    path = write_video(tmp_path / "short.mp4", clip[:5])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = read_video(path, 16)
    assert frames.shape[0] == 16
    assert len([w for w in caught if "only 5 frames" in str(w.message)]) == 1


def test_odd_size_grayscale_yuv444_and_audio_first(tmp_path):
    rng = np.random.default_rng(0)
    odd = rng.integers(0, 255, (6, 33, 47, 3), dtype=np.uint8)
    gray = np.repeat(rng.integers(0, 255, (6, 32, 32, 1), dtype=np.uint8), 3, axis=-1)
    cases = {
        "odd.mkv": _write(tmp_path / "odd.mkv", odd, codec="ffv1", pix_fmt="yuv444p"),
        "gray.mkv": _write(tmp_path / "gray.mkv", gray, codec="ffv1", pix_fmt="gray"),
        "yuv444.mp4": _write(tmp_path / "yuv444.mp4", gray, pix_fmt="yuv444p"),
        "audio_first.mp4": _write(tmp_path / "audio_first.mp4", gray, audio_first=True),
    }
    assert read_video(cases["odd.mkv"], 3).shape == (3, 33, 47, 3)
    g = read_video(cases["gray.mkv"], 3)
    assert g.shape == (3, 32, 32, 3) and (g[..., 0] == g[..., 1]).all()
    assert read_video(cases["yuv444.mp4"], 3).shape == (3, 32, 32, 3)
    with av.open(str(cases["audio_first.mp4"])) as c:
        assert c.streams[0].type == "audio"
    assert read_video(cases["audio_first.mp4"], 3).shape == (3, 32, 32, 3)


# The author's notebook's indices, computed once with its own code (paper.md: np.random.seed(42);
# end = randint(128, n_frames); start = end - 128; linspace(start, end, 32) clipped to end - 1)
# and written out, so the test never re-derives what it checks.
PAPER_INDICES = {
    300: [102, 106, 110, 114, 118, 122, 126, 130, 135, 139, 143, 147, 151, 155, 159, 163,
          168, 172, 176, 180, 184, 188, 192, 196, 201, 205, 209, 213, 217, 221, 225, 229],  # end = 230
    200: [51, 55, 59, 63, 67, 71, 75, 79, 84, 88, 92, 96, 100, 104, 108, 112,
          117, 121, 125, 129, 133, 137, 141, 145, 150, 154, 158, 162, 166, 170, 174, 178],  # end = 179
    129: [0, 4, 8, 12, 16, 20, 24, 28, 33, 37, 41, 45, 49, 53, 57, 61,
          66, 70, 74, 78, 82, 86, 90, 94, 99, 103, 107, 111, 115, 119, 123, 127],  # end = 128: the clip
}


@pytest.mark.parametrize("n_frames", sorted(PAPER_INDICES))
def test_paper_sampling_reproduces_the_notebook(n_frames):
    got = paper_indices(n_frames)
    assert got.dtype == np.int64
    assert got.tolist() == PAPER_INDICES[n_frames]


def test_paper_sampling_refuses_short_clips():
    with pytest.raises(VideoError, match="more than 128 frames"):
        paper_indices(128)


def test_write_video_pads_odd_sizes(tmp_path):
    frames = np.zeros((3, 31, 45, 3), np.uint8)
    assert read_video(write_video(tmp_path / "o.mp4", frames), 3).shape == (3, 32, 46, 3)


# ------------------------------------------------------------------ unusable inputs


def _bad_inputs(tmp_path, mp4):
    data = mp4.read_bytes()
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    corrupted = tmp_path / "corrupted.mp4"
    rng = np.random.default_rng(0)
    corrupted.write_bytes(rng.integers(0, 255, 400, dtype=np.uint8).tobytes() + data[400:])
    audio_only = tmp_path / "audio.m4a"
    with av.open(str(audio_only), "w") as out:
        s = out.add_stream("aac", rate=16000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate = 16000
        for pkt in list(s.encode(f)) + list(s.encode()):
            out.mux(pkt)
    no_frames = tmp_path / "no_frames.mp4"  # a valid index, but every frame's data zeroed
    start, end = data.index(b"mdat") + 4, data.index(b"moov") - 4
    no_frames.write_bytes(data[:start] + bytes(end - start) + data[end:])
    folder = tmp_path / "a_folder.mp4"
    folder.mkdir()
    return {
        "missing": (tmp_path / "nope.mp4", "does not exist"),
        "folder": (folder, "is a folder"),
        "empty": (empty, "empty"),
        "not a video": (text, "not a video"),
        "truncated": (truncated, "truncated"),
        "corrupted": (corrupted, "not a video|corrupted"),
        "audio only": (audio_only, "no video stream"),
        "zero frames": (no_frames, "no frame could be decoded|corrupted"),
    }


def test_every_unusable_input_raises_video_error_naming_the_file(tmp_path, mp4):
    for case, (path, message) in _bad_inputs(tmp_path, mp4).items():
        with pytest.raises(VideoError, match=message) as info:
            read_video(path, 8)
        assert str(path) in str(info.value), case
        assert isinstance(info.value, ValueError)
        assert info.value.__cause__ is None, f"{case}: a PyAV traceback leaked"


def test_long_clip_is_streamed_not_loaded(tmp_path):
    """1200 frames decoded to sample 16: numpy never holds more than a few frames at once."""
    import tracemalloc

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (1200, 64, 64, 3), dtype=np.uint8)
    path = _write(tmp_path / "long.mp4", frames, rate=30)
    del frames
    tracemalloc.start()
    out = read_video(path, 16)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frame_bytes = 64 * 64 * 3
    assert out.shape == (16, 64, 64, 3)
    assert peak < 60 * frame_bytes, f"peak {peak / frame_bytes:.0f} frames held in memory"
