"""What `make demo` shows on the terminal: one line per materialization, with a bar while a step counts its work.

Where progress comes from: the demo runs each materialization as a `dagster asset materialize` process and reads
its console output line by line (every line also goes to the log file). A heavy step reports progress as Pipes
log messages (tessy_dagster/steps/runner.py), which Dagster prints as

    2026-12-03 04:12:05 +0000 - dagster - INFO - __ASSET_JOB - <run id> - student_model - step 50/400, loss 2.07

A message that starts with `<word> <done>/<total>` (`step 50/400, ...`, `shard 3/4 written`, `epoch 2/8 of
B_T: ...`) is counted: the demo draws a bar from it. Any other message is the step's latest status, shown as it
is. The steps word their progress lines that way on purpose; nothing else is needed from them.

On a terminal (a TTY) the running steps are redrawn in place; elsewhere (CI logs, a pipe) the demo prints plain
lines: a step's start, its counted progress at each quarter (or a status line at most once a minute), its end.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field

COUNTED = re.compile(r"^[A-Za-z][\w-]* (\d+)/(\d+)\b")
# a log message of Dagster's console logger: level, job, run id, step key (the asset), message
LOG_LINE = re.compile(r" - (?:INFO|WARNING) - \S+ - [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} - "
                      r"(?P<step>[\w.\[\]/-]+) - (?P<message>.*)$")
REUSED = ("reusing it", ": reused ")  # what an asset logs when its artifact was up to date (assets/common.py)
PLAIN_STATUS_EVERY_S = 60.0


def label_of(asset: str, partition: str | None) -> str:
    """How the demo names one materialization: `sft_corpus [tessy]`, `prompts`."""
    return f"{asset} [{partition}]" if partition else asset


@dataclass(frozen=True)
class Progress:
    text: str
    done: int | None = None  # set when the line is counted
    total: int | None = None

    @property
    def fraction(self) -> float | None:
        return None if self.done is None else min(1.0, self.done / self.total)


def parse_progress(message: str) -> Progress:
    """A progress message: counted when it starts with `<word> <done>/<total>` (total above 0)."""
    message = message.strip()
    match = COUNTED.match(message)
    if match and int(match.group(2)) > 0:
        return Progress(message, int(match.group(1)), int(match.group(2)))
    return Progress(message)


def step_message(line: str, asset: str) -> str | None:
    """The message of a Dagster console line logged by `asset`'s step, else None (events, warnings of
    libraries, tracebacks). Dagster's own plumbing messages (`[pipes] ...`) are not progress."""
    match = LOG_LINE.search(line.rstrip("\n"))
    if not match or match.group("step") != asset or match.group("message").startswith("[pipes]"):
        return None
    return match.group("message")


def elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def bar(fraction: float, width: int = 20) -> str:
    filled = round(fraction * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


@dataclass
class StepView:
    """One materialization as the terminal shows it."""
    label: str
    started: float | None = None
    ended: float | None = None
    status: str = "waiting"  # waiting, running, ok, reused, FAILED, skipped
    progress: Progress | None = None
    note: str = ""  # why it failed or was skipped
    _plain_quarter: int = field(default=-1, repr=False)
    _plain_status_at: float = field(default=0.0, repr=False)

    def seconds(self, now: float) -> float:
        return ((self.ended or now) - self.started) if self.started is not None else 0.0


def running_line(step: StepView, now: float, width: int, label_width: int) -> str:
    """`  student_checkpoint [tessy]   1m02s  [#####...............] step 12/48, epoch 0.75, loss 0.91`"""
    head = f"  {step.label:<{label_width}}  {elapsed(step.seconds(now)):>6}  "
    p = step.progress
    if p is not None and p.fraction is not None:
        head += bar(p.fraction) + " "
    text = p.text if p is not None else "starting"
    return (head + text)[:max(width - 1, 20)]


def finished_line(step: StepView, label_width: int) -> str:
    """`ok       teacher_model                 3m05s` (with the reason after a failure or a skip)."""
    if step.started is None:  # skipped: it never ran
        return f"{step.status:<8} {step.label}  {step.note}".rstrip()
    line = f"{step.status:<8} {step.label:<{label_width}}  {elapsed(step.seconds(step.ended or 0.0)):>6}"
    return (line + (f"  {step.note}" if step.note else "")).rstrip()


class Console:
    """The demo's terminal: finished steps as lines that stay, running steps live (TTY) or sparse (plain)."""

    def __init__(self, stream=None, live: bool | None = None, label_width: int = 28, log=None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.label_width = label_width
        self.log = log  # a callable that keeps every line printed, for the log file
        self.running: list[StepView] = []
        self._drawn = 0  # lines of the live area currently on the screen
        self._lock = threading.Lock()

    def say(self, text: str = "") -> None:
        """A line that stays (headers, the table at the end)."""
        with self._lock:
            self._clear_live()
            self._write(text + "\n")
            self._draw_live()
        if self.log:
            for line in text.splitlines() or [""]:
                self.log(line)

    def start(self, step: StepView, now: float) -> None:
        step.status, step.started, step._plain_status_at = "running", now, now
        with self._lock:
            self.running.append(step)
            if self.live:
                self._redraw()
            else:
                self._write(f"...      {step.label}\n")

    def progress(self, step: StepView, message: str, now: float) -> None:
        if any(marker in message for marker in REUSED):
            step.status = "reused"
        step.progress = parse_progress(message)
        with self._lock:
            if self.live:
                self._redraw()
            elif self._plain_due(step, now):
                self._write(f"...      {step.label:<{self.label_width}}  {elapsed(step.seconds(now)):>6}  "
                            f"{step.progress.text}\n")

    def finish(self, step: StepView, now: float, ok: bool, note: str = "") -> None:
        step.ended = now
        if not ok:
            step.status = "FAILED"
        elif step.status != "reused":
            step.status = "ok"
        step.note = note
        self._settle(step)

    def skip(self, step: StepView, note: str) -> None:
        step.status, step.note = "skipped", note
        self._settle(step)

    def tick(self, now: float) -> None:
        """Redraw the live area (the elapsed times move)."""
        if self.live:
            with self._lock:
                self._redraw(now)

    def _settle(self, step: StepView) -> None:
        line = finished_line(step, self.label_width)
        with self._lock:
            if step in self.running:
                self.running.remove(step)
            self._clear_live()
            self._write(line + "\n")
            self._draw_live()
        if self.log:
            self.log(line)

    def _plain_due(self, step: StepView, now: float) -> bool:
        """Plain output: a counted step at each new quarter, a status line at most once a minute."""
        fraction = step.progress.fraction
        if fraction is not None:
            quarter = int(fraction * 4)
            if quarter > step._plain_quarter:
                step._plain_quarter = quarter
                return True
            return False
        if now - step._plain_status_at >= PLAIN_STATUS_EVERY_S:
            step._plain_status_at = now
            return True
        return False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _width(self) -> int:
        import shutil

        return shutil.get_terminal_size((100, 24)).columns

    def _clear_live(self) -> None:
        if self.live and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # up to the live area's first line, clear below
            self._drawn = 0

    def _draw_live(self, now: float | None = None) -> None:
        if not self.live:
            return
        now = time.monotonic() if now is None else now
        width = self._width()
        lines = [running_line(s, now, width, self.label_width) for s in self.running]
        self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()
        self._drawn = len(lines)

    def _redraw(self, now: float | None = None) -> None:
        self._clear_live()
        self._draw_live(now)
