"""The one exception type for problems a user can fix, shared by every package.

It lives in ``benchmark.core``, the bottom layer of the import contract (``.importlinter``):
every other package may import it, and ``core`` imports none of them.
"""


class BenchmarkError(Exception):
    """A problem with the user's input: the message names the problem and the fix.

    The command line prints it as one line (``error: ...``) and exits with status 2;
    anything else that escapes is a bug and keeps its traceback.
    """
