"""The one exception type for problems a user can fix."""


class BenchmarkError(Exception):
    """A problem with the user's input: the message names the problem and the fix.

    The command line prints it as one line (``error: ...``) and exits with status 2;
    anything else that escapes is a bug and keeps its traceback.
    """
