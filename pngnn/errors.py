"""One exception type for every user-facing failure.

Each message is a single line that names the problem and the fix, so the CLI can
print it as is and exit non-zero instead of dumping a traceback.
"""


class PngnnError(Exception):
    """A problem the user can fix (bad input, missing file, unknown name, missing server)."""
