"""What a person watching a run reads: "round i of ≈N" and, on a terminal, whole log lines above a
live progress bar (one console for both)."""
from __future__ import annotations

import logging

from prunepeft.run import progress as progress_log
from prunepeft.run.progress import EpochLogger, estimate_rounds, log_round


def test_round_i_of_about_n_from_the_budget_and_k(caplog):
    caplog.set_level(logging.INFO, logger="prunepeft")
    # 10 units of 100 params, B = 420: 6 units to remove, k = 2 -> ≈3 rounds
    n = estimate_rounds(1000, 420, 10, 2)
    assert n == 3
    EpochLogger({"warmup": 1, "round": n, "retrain": 1})  # what commands/search.py builds
    log_round(1, None, {"3:lora": 0.9}, 800, 420, None, 1.0)
    log_round(3, None, {"5:lora": 0.8}, 500, 420, None, 1.0)  # still above B: one more, not "3 of ≈3"
    log_round(4, None, {"6:lora": 0.7}, 400, 420, None, 1.0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("round ")]
    assert lines[0].startswith("round 1 of ≈3: removed 3:lora (p=0.900)")
    assert lines[1].startswith("round 3 of ≈4:") and lines[2].startswith("round 4 of ≈4:")
    # a run without rounds (a baseline) prints no estimate
    EpochLogger({"train": 2})
    log_round(1, None, {}, 10, 5, None, 1.0)
    assert caplog.records[-1].getMessage().startswith("round 1: ")
    assert progress_log._round_plan["rounds"] is None


# -- one console: log lines whole above a live bar, on a terminal ------------------------------------

_BAR_AND_LOG = r"""
import logging, sys, time
from prunepeft.run.progress import ConsoleHandler, EpochLogger
from prunepeft.train.loop import _progress  # the bar every phase shows

handler = ConsoleHandler(sys.stderr) if sys.argv[1] == "console" else logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.INFO)
epochs = EpochLogger({"train": 3})
with _progress(True) as bar:
    task = bar.add_task("train", total=30, info="loss 0.69")
    for epoch in (1, 2, 3):
        for _ in range(10):
            bar.advance(task)
            bar.refresh()
            time.sleep(0.005)
        epochs.on_eval("train", epoch, 0.5, {"validation": {"accuracy": 0.5}})
        for _ in range(3):  # the bar goes on drawing after the line
            bar.refresh()
            time.sleep(0.005)
print("END", flush=True)
"""


def _screen(data: str) -> list[str]:
    """The lines a terminal shows after `data`: printable text, CR/LF and the cursor and erase
    sequences rich's live display uses (up/down/column, erase in line); other sequences ignored."""
    import re

    lines, row, col = [[]], 0, 0
    for token in re.finditer(r"\x1b\[([?0-9;]*)([A-Za-z])|\x1b\][^\x07]*\x07|(.)", data, re.S):
        args, op, char = token.group(1), token.group(2), token.group(3)
        while len(lines) <= row:
            lines.append([])
        if op:
            n = int(args) if args and args.isdigit() else None
            if op == "A":
                row = max(0, row - (n or 1))
            elif op == "B":
                row += n or 1
            elif op == "G":
                col = (n or 1) - 1
            elif op == "K":
                lines[row] = [] if n == 2 else lines[row][:col] if not n else lines[row]
            continue
        if char is None:
            continue
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
        elif char >= " ":
            line = lines[row]
            line.extend(" " * (col - len(line) + 1))
            line[col] = char
            col += 1
    return ["".join(line).rstrip() for line in lines]


def _run_on_a_terminal(mode: str) -> tuple[str, list[str]]:
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # wide: no wrapping
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "40"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-c", _BAR_AND_LOG, mode], stdin=follower, stdout=follower,
                            stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    raw = b"".join(chunks).decode("utf-8", "replace")
    return raw, _screen(raw)


def test_epoch_lines_print_whole_above_a_live_bar_on_a_terminal():
    raw, screen = _run_on_a_terminal("console")
    assert "━" in raw and "train" in raw  # the bar was live on this terminal
    epoch_lines = [line for line in screen if "train epoch" in line]
    assert len(epoch_lines) == 3, screen
    for i, line in enumerate(epoch_lines, 1):  # whole: from the log prefix to the whole-run ETA
        assert line.startswith("[") and f"][prunepeft][INFO] - train epoch {i}/3: train loss 0.5000 | dev " \
               "validation.accuracy=0.5000 | elapsed " in line and " | ETA " in line, line
    assert "END" in screen[-2:] or "END" in screen[-1], screen[-3:]
    # the bar is transient: gone at the end, the log lines stay
    assert not any("━" in line for line in screen)


def test_without_the_shared_console_the_bar_overwrites_the_lines():
    """The emulator sees the bug this fixes: a plain stderr handler loses (parts of) its lines."""
    _, screen = _run_on_a_terminal("plain")
    whole = [line for line in screen if line.startswith("[") and "train epoch" in line and " | ETA " in line]
    assert len(whole) < 3, screen


def test_the_console_handler_never_raises_on_a_closed_stream():
    """A handler left configured on a stream that was closed since (pytest's capture, a detached
    terminal) must not raise into the run: logging never stops a search (StreamHandler's contract)."""
    import io
    import logging

    from prunepeft.run.progress import ConsoleHandler

    stream = io.StringIO()
    handler = ConsoleHandler(stream)
    stream.close()
    record = logging.LogRecord("prunepeft", logging.INFO, __file__, 1, "round 1 of ≈2", None, None)
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        handler.emit(record)  # no exception
    finally:
        logging.raiseExceptions = raise_exceptions
