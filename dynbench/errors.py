"""The one exception type the CLI turns into a one-line message and exit code 2.

Anything a user can get wrong (a model name, a suite file, a path) raises
:class:`DynbenchError` with a sentence that says what was wrong and what is
accepted; every other exception is a bug and keeps its traceback.
"""

from dynbench.redact import redact


class DynbenchError(Exception):
    """A user-facing error: bad input, never a bug."""


def one_line(exc: BaseException, message: object = None) -> str:
    """``Type: message`` of ``exc`` on one line of at most 300 characters (``message``:
    another text for it, e.g. a wrapped driver error), for an error record or a one-line
    error that names an exception without its traceback; credentials in it redacted."""
    return redact(f"{type(exc).__name__}: {message or exc}".splitlines()[0])[:300]
