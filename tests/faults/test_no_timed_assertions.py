"""No test asserts how long something took (an upper bound fails on a busy machine): speed lives in bench/.
A lower bound that proves a wait happened (Retry-After honoured: ``>= 1.0``) is behaviour and stays."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# an assert line comparing a time or a duration against an upper bound
_TIMED = re.compile(r"\bassert\b.*(perf_counter|monotonic|time\.time|elapsed|seconds|took|duration)[^\n]*?(<|<=)\s*[\d.]+")


def test_no_test_asserts_an_upper_bound_on_time():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _TIMED.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(TESTS)}:{n}: {line.strip()}")
    assert offenders == [], "timed assertions (move the figure to bench/):\n" + "\n".join(offenders)
