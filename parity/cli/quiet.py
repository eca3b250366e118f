"""A quiet command line: the frameworks' native start-up notes kept off the terminal.

TensorFlow's C++ side writes to the process's stderr before Python's logging is involved:
"All log messages before absl::InitializeLog() ...", "oneDNN custom operations are on ...",
"Could not find cuda drivers ...", "failed call to cuInit ...", the CPU instruction notes.
No setting silences all of them, so while a command runs, file descriptor 2 goes through a
pipe, and a thread passes every line on except those notes. Python's warnings and our own
messages are kept, in order.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

# absl's native log lines: severity, date, time, thread, file:line]. Info and warning lines are
# start-up notes; errors are kept unless they only say there is no GPU.
_ABSL = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+\s+\S+:\d+\]")
_NO_GPU = re.compile(r"cuda|cudnn|cufft|cublas|cuinit|gpu", re.IGNORECASE)
_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # continues cpu_feature_guard's info line
)


def is_noise(line: str) -> bool:
    if line.startswith(_NOISE):
        return True
    match = _ABSL.match(line)
    return bool(match) and (match.group(1) in "IW" or (match.group(1) == "E" and bool(_NO_GPU.search(line))))


@contextlib.contextmanager
def filtered_stderr(enabled: bool = True):
    """Within the block, every line written to file descriptor 2 (by Python or by native code)
    reaches the terminal unless `is_noise` says it is a framework's start-up note."""
    if not enabled:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_pass_on, args=(read_end, terminal), daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes the pipe's last write end held by fd 2: the thread sees EOF
        thread.join(timeout=5)
        os.close(terminal)


def _pass_on(read_end: int, terminal: int) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for raw in pipe:  # one line at a time; a last line without a newline comes at EOF
            if not is_noise(raw.decode(errors="replace")):
                os.write(terminal, raw)
