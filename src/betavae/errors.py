"""The one exception users see: a one-line message that names the problem and the fix."""


class BetaVAEError(Exception):
    """A problem the user can fix (bad input, missing data, bad config); printed as one line, no traceback."""
