"""Domain errors: each becomes one clear line and a non-zero exit in the CLI."""


class CrmseError(Exception):
    """A user-facing error. The message is one line, says what is wrong and how to fix it."""

    exit_code: int = 1


class UsageError(CrmseError):
    """Options that cannot go together, or one missing its partner: exit 2, as click's usage errors."""

    exit_code = 2


class NotFoundError(CrmseError):
    """A run, dataset, checkpoint or file that was asked for does not exist."""


class DataError(CrmseError):
    """Input data is malformed: wrong keys, shapes, non-finite values, bad checksum."""


class NetworkError(CrmseError):
    """A download failed (no network, HTTP error, truncated transfer)."""


class DiskFullError(CrmseError):
    """A write failed because its device is full (ENOSPC) or the user's quota is spent (EDQUOT).

    Args:
        path: the file being written.
        then: what to do once space is freed (a resumable run says how to resume it).
    """

    def __init__(self, path: object, then: str = "run the same command again") -> None:
        self.path, self.then = str(path), then
        super().__init__(f"no space left on device writing {path}; free space there, then {then}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Crosses process boundaries (xTB workers): rebuild from (path, then), not from the message.
        return (type(self), (self.path, self.then))


def interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt behind ``exc``, if any (its own, its cause's or its context's).

    Ctrl-C or SIGTERM inside a library call can surface as another error raised while the library
    cleans up: a stop that lands inside ``torch.save`` ends as the zip writer's ``RuntimeError``
    ("unexpected pos") with the KeyboardInterrupt as its context. Typer turns Ctrl-C into
    ``Exit(130)`` the same way.
    """
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        if isinstance(node, KeyboardInterrupt):
            return node
        seen.add(id(node))
        node = node.__cause__ or node.__context__
    return None
