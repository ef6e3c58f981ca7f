"""The top frames of a py-spy profile, as text for a report.

    py-spy record --gil -f raw -o router.txt --pid PID --duration 30
    python -m bench.pipeline.profile router.txt --top 12

py-spy's raw format is one collapsed stack per line, `outer;...;inner COUNT`. Self time is
where the samples' innermost frame is; inclusive time counts a frame once per sample it is on.
Layers put each sample in the innermost library it is running (pydantic, aiokafka, Faust, ...),
which says more than single frames when, as in these processors, no frame stands out.

Record with `--gil`: samples are then taken only from the thread holding the GIL, so they
show where Python CPU goes. Without it, a thread back from a socket write that waits for the
GIL (Faust runs its consumer in a second thread) is counted as writing, and socket writes look
like a quarter of every processor.
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
    return {
        "self": [(f, round(c / total, 3)) for f, c in own.most_common(n)],
        "inclusive": [(f, round(c / total, 3)) for f, c in inclusive.most_common(n)],
        "samples": total,
    }


# Innermost match wins; the order only breaks ties inside one frame's path.
LAYERS = (
    ("pydantic validation", ("pydantic/", "pydantic_core/")),
    ("psycopg", ("psycopg/",)),
    ("prometheus-client", ("prometheus_client/",)),
    ("aiokafka", ("aiokafka/",)),
    ("faust and mode", ("faust/", "mode/")),
    ("our code", ("services/", "events/", "projections/", "bench/")),
)
OTHER = "event loop and standard library"


def layers(lines) -> dict[str, float]:
    """Share of samples by the innermost library each one is running, aiokafka split by side."""
    shares, total = Counter(), 0
    for line in lines:
        line = line.rstrip()
        if " " not in line or not line.rsplit(" ", 1)[1].isdigit():
            continue
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        total += int(count)
        shares[_layer(frames)] += int(count)
    return {name: round(count / max(total, 1), 3) for name, count in shares.most_common()}


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        match = _FRAME.match(frame.strip())
        path = match["file"] if match else frame
        for name, markers in LAYERS:
            if any(marker in path for marker in markers):
                if name == "aiokafka":
                    side = (
                        "producer"
                        if any("aiokafka/producer" in f for f in frames)
                        else "consumer"
                        if any("aiokafka/consumer" in f for f in frames)
                        else "client"
                    )
                    return f"aiokafka {side}"
                return name
    return OTHER


def as_text(title: str, top: dict) -> str:
    lines = [f"## {title} ({top['samples']} samples)", "", "self:"]
    lines += [f"  {share:6.1%}  {frame}" for frame, share in top["self"]]
    lines += ["inclusive:"]
    lines += [f"  {share:6.1%}  {frame}" for frame, share in top["inclusive"]]
    if top.get("layers"):
        lines += ["by layer:"]
        lines += [f"  {share:6.1%}  {name}" for name, share in top["layers"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="py-spy raw (collapsed) profiles")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    for path in args.files:
        lines = path.read_text().splitlines()
        print(as_text(path.stem, {**top_frames(parse(lines), args.top), "layers": layers(lines)}))


if __name__ == "__main__":
    main()
