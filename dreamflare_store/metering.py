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

        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            store: Store = args[0]  # type: ignore[assignment]
            call = Call()
            store._local.call = call
            try:
                result = method(*args, **kwargs)
            except BaseException:
                store._count_call(signature, operation, args, kwargs, call, error=True)
                raise
            store._count_call(signature, operation, args, kwargs, call, error=False)
            return result

        return wrapper

    return decorate


class Call:
    """Bytes a call moved, noted by the operation for API usage."""

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
