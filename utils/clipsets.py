"""Your own set of video pairs: ``PAIRS_CSV=path`` lists them, one pair a row.

    pair_id,strike_path,gutter_path,matched
    lane1,clips/lane1_strike.mp4,clips/lane1_gutter.mp4,1
    lane2,clips/lane2_strike.mp4,clips/other_gutter.mp4,0

``pair_id`` names the pair (letters, digits, ``-``, ``.``; unique), the two paths point at
videos (relative paths are read from the CSV's folder), ``matched`` (optional, default 1)
says whether the two clips share everything but the outcome (same lane, camera, bowler).
Every row is checked before anything is written: the file exists, is a video PyAV can
decode, and has at least as many frames as the model reads. All bad rows are reported in
one message, each named with its problem.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from utils.video import VideoError, probe_timestamps

COLUMNS = ("pair_id", "strike_path", "gutter_path")  # required, in any order
MATCHED = "matched"  # optional column
TRUE, FALSE = {"1", "true", "yes", "y", "matched", ""}, {"0", "false", "no", "n", "unmatched"}
PAIR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")


class PairsCSVError(ValueError):
    """A pair CSV that cannot be used; the message names the file, the rows and the fix."""


@dataclass(frozen=True)
class PairRow:
    pair_id: str
    strike: Path
    gutter: Path
    matched: bool
    line: int  # line number in the CSV (header = 1)

    @property
    def name(self) -> str:
        """The clip-id prefix: ``pair-<id>`` for matched pairs, ``unmatched-<id>`` otherwise."""
        return f"{'pair' if self.matched else 'unmatched'}-{self.pair_id}"


def read_pairs_csv(path: str | Path, min_frames: int = 1, probe: bool = True) -> list[PairRow]:
    """Parse and check ``path``; raise PairsCSVError naming every bad row and its problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise PairsCSVError(f"PAIRS_CSV={path}: no such file; pass the path of a CSV with the columns "
                            f"{', '.join(COLUMNS)}[, {MATCHED}]")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            raw = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (UnicodeDecodeError, csv.Error) as err:
        raise PairsCSVError(f"PAIRS_CSV={path} is not a readable CSV ({err})") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise PairsCSVError(f"PAIRS_CSV={path}: missing column(s) {', '.join(missing)}; the header must "
                            f"name {', '.join(COLUMNS)} (and optionally {MATCHED}), found {header or 'none'}")
    if not raw:
        raise PairsCSVError(f"PAIRS_CSV={path} lists no pairs; add one row per pair under the header")
    rows, problems, seen = [], [], {}
    for line, r in enumerate(raw, start=2):
        issues = []
        pid = r["pair_id"]
        if not PAIR_ID.fullmatch(pid):
            issues.append(f"pair_id {pid!r} must be letters, digits, '-' or '.' (not empty)")
        elif pid in seen:
            issues.append(f"pair_id {pid!r} repeats line {seen[pid]}")
        seen.setdefault(pid, line)
        flag = r.get(MATCHED, "").lower()
        if flag not in TRUE | FALSE:
            issues.append(f"matched={r.get(MATCHED)!r} is not 1/0 (true/false, yes/no)")
        videos = {}
        for col in ("strike_path", "gutter_path"):
            if not r[col]:
                issues.append(f"{col} is empty")
                continue
            video = Path(r[col]).expanduser()
            video = video if video.is_absolute() else path.parent / video
            videos[col] = video
            if not probe:
                continue
            try:
                n = len(probe_timestamps(video))
            except VideoError as err:
                issues.append(f"{col}: {err}")
                continue
            if n < min_frames:
                issues.append(f"{col}: {video} has only {n} frames; the model reads {min_frames}")
        if issues:
            problems.append(f"  line {line} (pair {pid or '?'}): " + "; ".join(issues))
        else:
            rows.append(PairRow(pid, videos["strike_path"], videos["gutter_path"], flag not in FALSE, line))
    if problems:
        raise PairsCSVError(f"PAIRS_CSV={path}: {len(problems)} bad row(s), nothing was written:\n"
                            + "\n".join(problems) + "\nFix or remove these rows and run again.")
    return rows
