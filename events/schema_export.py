"""Write one JSON Schema per event type to schemas/, so agents in any language can validate.

`python -m events.schema_export --check` lists files that differ and exits 1.
"""

import argparse
import sys
from pathlib import Path

import orjson

from events.catalog import EVENT_TYPES, body_class
from events.codec import encode
from events.envelope import Envelope
from events.examples import example_event
from events.topics import TOPICS, spec_as_json, topic_for_event

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "schemas"
SUFFIX = ".schema.json"


def schema_file(event_type: str) -> str:
    return f"{event_type}{SUFFIX}"


def event_schema(event_type: str) -> dict:
    cls = body_class(event_type)
    topic = topic_for_event(event_type)
    schema = Envelope[cls].model_json_schema()
    properties = schema["properties"]
    properties["event_type"] = {**properties["event_type"], "const": event_type}
    properties["version"] = {**properties["version"], "const": cls.version}
    return {
        **schema,
        "$schema": DIALECT,
        "$id": f"urn:agent-orchestrator:event:{event_type}:v{cls.version}",
        "title": f"{event_type} v{cls.version}",
        "description": f"Envelope carrying a {event_type} body; published on topic '{topic.name}', "
        f"keyed by body.{cls.key_field}.",
        "examples": [orjson.loads(encode(example_event(event_type)))],
    }


def index() -> dict:
    return {
        "events": [
            {
                "event_type": name,
                "version": cls.version,
                "topic": topic_for_event(name).name,
                "key_field": cls.key_field,
                "schema": schema_file(name),
            }
            for name, cls in sorted(EVENT_TYPES.items())
        ],
        "topics": [spec_as_json(spec) for spec in TOPICS],
    }


def render(document: dict) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def expected_files() -> dict[str, bytes]:
    files = {schema_file(name): render(event_schema(name)) for name in sorted(EVENT_TYPES)}
    files["index.json"] = render(index())
    return files


def stale_files(directory: Path) -> list[str]:
    expected = expected_files()
    leftovers = [path.name for path in directory.glob(f"*{SUFFIX}") if path.name not in expected]
    changed = [name for name, content in expected.items() if _read(directory / name) != content]
    return sorted(changed + leftovers)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def write(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    expected = expected_files()
    for old in directory.glob(f"*{SUFFIX}"):
        if old.name not in expected:
            old.unlink()
    for name, content in expected.items():
        (directory / name).write_bytes(content)
    return sorted(expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m events.schema_export", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list files that are out of date and exit 1")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"directory to write (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        if differing := stale_files(args.out):
            print(f"schemas out of date in {args.out}; run python -m events.schema_export", file=sys.stderr)
            for name in differing:
                print(f"  {name}", file=sys.stderr)
            return 1
        return 0
    written = write(args.out)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
