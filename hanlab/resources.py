"""Resource life cycles shared across hanlab (STYLE.md §6: every resource an async
context manager, stop/close safe to call twice)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class StartStop:
    """Async context manager over ``start()`` / ``stop()``; subclasses override both.

    ``stop`` must be idempotent; ``__aexit__`` always calls it, also on error or
    cancellation, and lets the outer exception propagate.
    """

    async def start(self) -> None:
        """Acquire the resources."""

    async def stop(self) -> None:
        """Release the resources; safe to call twice."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class Closing:
    """Sync and async context manager over an idempotent, synchronous ``close()``."""

    def close(self) -> None:
        """Release the resource; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
