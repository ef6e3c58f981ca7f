"""The docs stay true: their links resolve, the README stays short, and the quick commands they
show still run.

The commands are read from the docs themselves (fenced ``sh`` blocks), so a changed command in
a doc is the command tested. Only commands that need neither Kafka nor PostgreSQL are run, with
both endpoints pointed at closed ports so that one starting to need them fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220
SHELL_FENCES = {"sh", "bash", "shell", "console"}
COMMAND_TIMEOUT_S = 60
# What the docs must keep showing, as (subcommand words and flags) after `orchestrator`.
REQUIRED_COMMANDS = {
    ("config",),
    ("topics", "list", "--json"),
    ("topics", "partition", "shell-1"),
    ("--help",),
    ("bench", "--help"),
    ("replay", "--help"),
}
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def blocks(text: str):
    """(fence language or None for prose, line) for every line outside the fence markers."""
    language = None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else (fence.group(2).lower() or "text")
            continue
        yield language, line


def slug(title: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to '-'."""
    text = CODE_SPAN.sub(lambda m: m.group(2), title)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for language, line in blocks(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line) if language is None else None
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    # Prose is read as a whole, so that a link's text may run over a line break; code spans may
    # hold brackets and parentheses: their place is kept, their content dropped.
    prose = "\n".join(line if language is None else "" for language, line in blocks(path.read_text(encoding="utf-8")))
    return LINK.findall(CODE_SPAN.sub("code", prose))


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith("//")


def test_docs_exist_and_readme_links_every_page():
    pages = DOCS[1:]
    assert pages, "docs/*.md is empty"
    readme_targets = {(README.parent / t.split("#")[0]).resolve() for t in links(README) if _relative(t)}
    missing = [p.relative_to(ROOT).as_posix() for p in pages if p.resolve() not in readme_targets]
    assert not missing, f"README.md links no page {missing}"


def test_readme_is_short():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines, at most {README_MAX_LINES}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path):
    broken = []
    checked = 0
    for target in links(doc):
        if not _relative(target):
            continue
        checked += 1
        path_part, _, anchor = target.partition("#")
        file = (doc.parent / path_part).resolve() if path_part else doc
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT).as_posix()}")
    assert not broken, f"{doc.relative_to(ROOT).as_posix()}: " + "; ".join(broken)
    if doc == README:
        assert checked, "README.md has no relative links at all"


def test_the_anchor_rule_is_githubs():
    assert slug("Metrics, alerts, dashboard") == "metrics-alerts-dashboard"
    assert slug("Read models (for analysts)") == "read-models-for-analysts"
    assert slug("The `event_type` header") == "the-event_type-header"
    assert slug("How the hot path is built, and why") == "how-the-hot-path-is-built-and-why"


# --- the quick commands the docs show -------------------------------------------------------


def shell_lines(text: str):
    """Each logical line of the fenced shell blocks, continuations joined, prompts dropped."""
    pending = ""
    for language, line in blocks(text):
        if language not in SHELL_FENCES:
            pending = ""
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield re.sub(r"^\s*\$\s+", "", pending + line)
        pending = ""


def _words(command: str) -> list[str] | None:
    command = re.split(r"\s#", command, maxsplit=1)[0].strip()
    try:
        return shlex.split(command)
    except ValueError:
        return None


def quick(args: list[str]) -> bool:
    """A command that reads nothing but the code: no broker, no database, no side effect."""
    if "--help" in args or "-h" in args:
        return all(not a.startswith("-") or a in ("--help", "-h") for a in args)
    if args == ["config"]:
        return True
    if args[:2] == ["topics", "list"]:
        return set(args[2:]) <= {"--json"}
    if args[:2] == ["topics", "partition"]:
        rest = args[2:]
        return len(rest) == 1 or (len(rest) == 3 and "--topic" in rest)
    return False


def documented_commands() -> list[tuple[str, ...]]:
    found: dict[tuple[str, ...], None] = {}
    for doc in DOCS:
        for line in shell_lines(doc.read_text(encoding="utf-8")):
            candidates = [line, *re.findall(r"\$\((orchestrator[^)]*)\)", line)]
            for candidate in candidates:
                words = _words(candidate)
                if words and words[0] == "orchestrator" and quick(words[1:]):
                    found[tuple(words[1:])] = None
    return list(found)


COMMANDS = documented_commands()


def test_the_docs_show_the_quick_commands():
    missing = sorted(" ".join(("orchestrator", *c)) for c in REQUIRED_COMMANDS - set(COMMANDS))
    assert not missing, f"no ```sh block of README.md or docs/ shows {missing}"


def _run(args: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Closed ports: a command that started to need either would fail here, not pass quietly.
    env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:9"
    env["DATABASE_URL"] = "postgresql://nobody:nothing@127.0.0.1:9/none"
    # The console script is services.cli:main; run through this interpreter, it is this checkout's.
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    with ThreadPoolExecutor(max_workers=max(1, len(COMMANDS))) as pool:
        return dict(zip(COMMANDS, pool.map(_run, COMMANDS)))


@pytest.mark.parametrize("args", COMMANDS, ids=lambda c: " ".join(("orchestrator", *c)))
def test_documented_command_runs(args: tuple[str, ...], runs):
    result = runs[args]
    assert result.returncode == 0, (
        f"`orchestrator {' '.join(args)}` exited {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )
    assert result.stdout.strip(), f"`orchestrator {' '.join(args)}` printed nothing"
    if args[:2] == ("topics", "list") and "--json" in args:
        assert {t["logical_name"] for t in json.loads(result.stdout)} >= {"agents", "tasks", "assignments"}
    if args[:2] == ("topics", "partition"):
        assert result.stdout.strip().isdigit()
