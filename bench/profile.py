"""The top frames of a py-spy profile, as text for a report.

    py-spy record -f raw -o router.txt --pid PID --duration 30
    python -m bench.profile router.txt --top 12

py-spy's raw format is one collapsed stack per line, `outer;...;inner COUNT`. Self time is
where the samples' innermost frame is; inclusive time counts a frame once per sample it is on.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def parse(lines) -> list[tuple[list[str], int]]:
    stacks = []
    for line in lines:
        line = line.rstrip()
        if not line or " " not in line:
            continue
        frames, count = line.rsplit(" ", 1)
        if count.isdigit():
            stacks.append(([_short(f) for f in frames.split(";")], int(count)))
    return stacks


def _short(frame: str) -> str:
    """`name (path/to/file.py:12)` -> `name (file.py)`: lines split one function into many rows."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['name']} ({match['file'].rsplit('/', 1)[-1]})"


def top_frames(stacks, n: int = 10) -> dict[str, list[tuple[str, float]]]:
    """The `n` frames with most self and most inclusive time, as shares of all samples."""
    total = sum(count for _, count in stacks) or 1
    own, inclusive = Counter(), Counter()
    for frames, count in stacks:
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return {"self": [(f, round(c / total, 3)) for f, c in own.most_common(n)],
            "inclusive": [(f, round(c / total, 3)) for f, c in inclusive.most_common(n)],
            "samples": total}


def as_text(title: str, top: dict) -> str:
    lines = [f"## {title} ({top['samples']} samples)", "", "self:"]
    lines += [f"  {share:6.1%}  {frame}" for frame, share in top["self"]]
    lines += ["inclusive:"]
    lines += [f"  {share:6.1%}  {frame}" for frame, share in top["inclusive"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="py-spy raw (collapsed) profiles")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    for path in args.files:
        print(as_text(path.stem, top_frames(parse(path.read_text().splitlines()), args.top)))


if __name__ == "__main__":
    main()
