"""One exception type for every user-facing failure.

Library code raises :class:`UplrError` with a message that names the file (or parameter) at fault,
what is wrong with it and how to fix it; the command line turns it into one line on stderr and a
non-zero exit status, without a traceback.

An error raised inside a ``torch.utils.data.DataLoader`` worker process reaches the main process
re-built from a text holding the worker's whole traceback; :class:`UplrError` keeps only the original
message from it (see :func:`unwrap_worker_message`), so it is still one line naming the file.
"""

from __future__ import annotations

import re

_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")


def unwrap_worker_message(message: str, class_name: str) -> str:
    """The original message inside torch's "Caught X in DataLoader worker process N" text, else ``message``."""
    if not _WORKER.match(message):
        return message
    hits = list(re.finditer(rf"^(?:[\w.]+\.)?{re.escape(class_name)}: ", message, re.MULTILINE))
    if not hits:
        return message
    worker = re.search(r"worker process \d+", message)
    return f"{message[hits[-1].end():].strip()} (in DataLoader {worker.group(0) if worker else 'worker'})"


class UplrError(Exception):
    """A problem the user can fix: bad input, missing file, wrong parameter."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (unwrap_worker_message(args[0], type(self).__name__),)
        super().__init__(*args)
