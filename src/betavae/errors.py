"""The one exception users see: a one-line message that names the problem and the fix."""


class BetaVAEError(Exception):
    """A problem the user can fix (bad input, missing data, bad config); printed as one line, no traceback."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type's name), to quote inside a one-line error."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


OUT_OF_MEMORY = ("can't allocate memory", "Cannot allocate memory", "out of memory")  # torch's CPU and CUDA words


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an error is the machine (or the GPU) running out of memory: too large a batch, image or model."""
    return isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and
                                              any(words in str(error) for words in OUT_OF_MEMORY))
