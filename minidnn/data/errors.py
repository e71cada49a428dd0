"""The two ways loading data can fail: the files are missing, or their content is wrong."""
from __future__ import annotations


class DataError(ValueError):
    """A data file exists but its content is wrong: bad header, truncated, corrupt, bad hash.

    The message names the file (or URL) and says what was expected and what was found.
    """


class DataNotFoundError(FileNotFoundError):
    """A data set's files are in none of the searched places.

    The message lists every path searched and how to get the data.
    """
