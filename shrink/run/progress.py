"""Progress of a run: a line per stage with its duration, indented lines for what a stage does,
tqdm bars for long loops (on a terminal only), and the same lines, timestamped, in logs/run.log."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Iterator, TextIO

from tqdm import tqdm

INDENT = "      "
# Routine lines of the stages' own progress: kept in the log, not repeated on the terminal.
ROUTINE_PREFIXES = ("warmed up ", "loaded ")
MAX_TERMINAL_LINE = 160  # longer lines are cut on the terminal; the log keeps them whole


class Reporter:
    """Where a run says what it is doing. `quiet` silences the terminal, never the log file."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self._log: TextIO | None = None

    @property
    def bars(self) -> bool:
        """Progress bars only on a terminal: in a log or a pipe they are noise."""
        return not self.quiet and self.stream.isatty()

    def attach_log(self, path: Path) -> None:
        """Append to `path` from now on (a log is append-only, so a crash keeps what came before)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def line(self, text: str) -> None:
        if not self.quiet:
            shown = text if len(text) <= MAX_TERMINAL_LINE else text[: MAX_TERMINAL_LINE - 3] + "..."
            print(shown, file=self.stream, flush=True)
        self.log_only(text)

    def log_only(self, text: str) -> None:
        if self._log is not None:
            stamp = dt.datetime.now().isoformat(timespec="seconds")
            self._log.write(f"{stamp}  {text}\n")
            self._log.flush()

    def say(self, text: str) -> None:
        """A line inside the current stage."""
        self.line(INDENT + text)

    def detail(self, text: str) -> None:
        """A stage's own progress line: routine ones (every warmup, every loaded file) go to the log only."""
        if text.startswith(ROUTINE_PREFIXES):
            self.log_only(INDENT + text)
        else:
            self.say(text)

    def stage(self, index: int, total: int, name: str, what: str) -> None:
        self.line(f"[{index}/{total}] {name}: {what}")


class ReporterHandler(logging.Handler):
    """Routes the stages' own log records (shrink.*) to the reporter, e.g. an exporter fallback."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(level=logging.INFO)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self.reporter.say(f"{record.levelname.lower()}: {record.getMessage()}")


class ProgressSplit:
    """A split whose batches advance a tqdm bar. It has the interface every stage reads (info,
    len, subset, to, batches), so a stage shows progress without knowing about it."""

    def __init__(self, split, desc: str, enabled: bool) -> None:
        self.split, self.desc, self.enabled = split, desc, enabled
        self.info = split.info

    def __len__(self) -> int:
        return len(self.split)

    def subset(self, indices) -> "ProgressSplit":
        return ProgressSplit(self.split.subset(indices), self.desc, self.enabled)

    def to(self, device: str) -> "ProgressSplit":
        return ProgressSplit(self.split.to(device), self.desc, self.enabled)

    def batches(self, options) -> Iterator:
        bar = tqdm(total=len(self.split), desc=INDENT + self.desc, unit="img", leave=False, disable=not self.enabled)
        try:
            for x, y in self.split.batches(options):
                yield x, y
                bar.update(len(y))
        finally:
            bar.close()
