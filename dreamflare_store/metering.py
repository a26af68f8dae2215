"""API usage metering: every documented operation counts, failed calls as errors."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from .store import Store

P = ParamSpec("P")
R = TypeVar("R")


def metered(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count every call of a documented operation in API usage, failed ones as errors."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(method)
        names = list(signature.parameters)
        position = names.index("user_id")  # every documented operation names its user
        default = signature.parameters["user_id"].default

        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            store: Store = args[0]  # type: ignore[assignment]
            call = Call()
            store._local.call = call
            try:
                result = method(*args, **kwargs)
            except BaseException:
                try:
                    user = signature.bind(*args, **kwargs).arguments.get("user_id")
                except TypeError:
                    pass  # arguments that do not even bind charge nobody
                else:
                    store._count_call(operation, user, call, error=True)
                raise
            # The call bound, so the user is where the signature puts it (a few hundred
            # nanoseconds instead of a full bind on every read).
            if "user_id" in kwargs:
                user = kwargs["user_id"]
            else:
                user = args[position] if len(args) > position else default
            store._count_call(operation, user, call, error=False)
            return result

        return wrapper

    return decorate


class Call:
    """Bytes a call moved, noted by the operation for API usage."""

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
