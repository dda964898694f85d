"""Domain errors: each becomes one clear line and a non-zero exit in the CLI."""


class CrmseError(Exception):
    """A user-facing error. The message is one line, says what is wrong and how to fix it."""

    exit_code: int = 1


class NotFoundError(CrmseError):
    """A run, dataset, checkpoint or file that was asked for does not exist."""


class DataError(CrmseError):
    """Input data is malformed: wrong keys, shapes, non-finite values, bad checksum."""


class NetworkError(CrmseError):
    """A download failed (no network, HTTP error, truncated transfer)."""
