"""One exception type for every user-facing failure.

Library code raises :class:`UplrError` with a message that names the file (or parameter) at fault,
what is wrong with it and how to fix it; the command line turns it into one line on stderr and a
non-zero exit status, without a traceback.
"""


class UplrError(Exception):
    """A problem the user can fix: bad input, missing file, wrong parameter."""
