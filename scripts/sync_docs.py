#!/usr/bin/env python3
"""Keep code in docs/ identical to the tested files it shows (as Airflow's provider docs include examples).

In a Markdown file, a line ``<!-- include: PATH -->`` or ``<!-- include: PATH#NAME -->`` must be followed by a
fenced code block; the block holds the file (or the lines between ``[START NAME]`` and ``[END NAME]``
markers in it). ``python scripts/sync_docs.py`` rewrites the blocks; tests/test_docs.py fails when they
differ, so documentation can't drift from the code and YAML that tests exercise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_INCLUDE = re.compile(r"^<!-- include: (?P<path>[^#\s]+)(?:#(?P<name>[\w-]+))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```",
                      re.M | re.S)


def snippet(path: str, name: str | None) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    if name is None:
        return text
    m = re.search(rf"^[^\n]*\[START {re.escape(name)}\][^\n]*\n(?P<body>.*?)^[^\n]*\[END {re.escape(name)}\]", text,
                  re.M | re.S)
    if not m:
        raise KeyError(f"{path}: no [START {name}] … [END {name}] markers")
    return m.group("body")


def sync(doc: Path, *, write: bool) -> list[str]:
    """Return the includes that differ; with ``write`` rewrite them."""
    text = doc.read_text(encoding="utf-8")
    stale: list[str] = []

    def replace(m: re.Match) -> str:
        want = snippet(m.group("path"), m.group("name"))
        if not want.endswith("\n"):
            want += "\n"
        if m.group("body") != want:
            stale.append(f"{doc.relative_to(ROOT)}: {m.group('path')}" + (f"#{m.group('name')}" if m.group("name") else ""))
        head = m.group(0).split("\n", 1)[0]
        return f"{head}\n```{m.group('lang')}\n{want}```"

    new = _INCLUDE.sub(replace, text)
    if write and new != text:
        doc.write_text(new, encoding="utf-8")
    return stale


def main() -> int:
    stale = [s for doc in sorted((ROOT / "docs").rglob("*.md")) for s in sync(doc, write=True)]
    for s in stale:
        print("updated", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
