"""Progress bars for long commands, drawn with rich (already installed with Airflow; one library for all bars).

Bars go to stderr and only when it is a terminal: piped or captured output (cron, Airflow task logs, tests)
stays exactly the lines the command prints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Steps:
    """A bar over a known number of steps; ``advance(label)`` marks one done and names the next."""

    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    def advance(self, label: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, step=label)

    def describe(self, label: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, step=label)


@contextlib.contextmanager
def steps(total: int, description: str) -> Iterator[Steps]:
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield Steps(None, None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[step]}"), console=console, transient=True) as bar:
        yield Steps(bar, bar.add_task(description, total=total, step=""))
