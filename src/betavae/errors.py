"""The one exception users see: a one-line message that names the problem and the fix."""


class BetaVAEError(Exception):
    """A problem the user can fix (bad input, missing data, bad config); printed as one line, no traceback."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type's name), to quote inside a one-line error."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]
