"""The one exception type the CLI turns into a one-line message and exit code 2.

Anything a user can get wrong (a model name, a suite file, a path) raises
:class:`DynbenchError` with a sentence that says what was wrong and what is
accepted; every other exception is a bug and keeps its traceback.
"""


class DynbenchError(Exception):
    """A user-facing error: bad input, never a bug."""
