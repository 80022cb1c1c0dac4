"""LeaseBatches: the claim and release batchers that every store's leases share.

Concurrent claims go out as one batch (a pipeline, one statement of a group commit), and so do
concurrent releases. A claim whose caller was cancelled while it was on its way is given back once
it lands, if it won: a lease nobody holds must not keep other processes waiting out its ttl
(``capabilities.LeaseStore.claim``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import final

from .._loops import LoopBinding
from ._batch import MicroBatcher

__all__ = ["LeaseBatches"]

Claim = tuple[str, str, float]  # key, token, ttl
Release = tuple[str, str]  # key, token


@final
class LeaseBatches:
    """``claims`` and ``releases`` batchers over a store's own batch functions.

    ``shares_outage``: the store's test for a failure that what is queued would only meet again
    (``MicroBatcher``): a claim behind one that waited out a lock fails with it, at once.
    ``loop_binding``: the store's ``LoopBinding``, which both batchers share with its other parts.
    """

    __slots__ = ("claims", "releases")

    def __init__(
        self,
        claim_batch: Callable[[list[Claim]], Awaitable[Sequence[bool]]],
        release_batch: Callable[[list[Release]], Awaitable[Sequence[None]]],
        *,
        shares_outage: Callable[[Exception], bool] | None = None,
        loop_binding: LoopBinding | None = None,
    ) -> None:
        self.claims: MicroBatcher[Claim, bool] = MicroBatcher(
            claim_batch,
            on_abandoned=self._give_back,
            shares_outage=shares_outage,
            loop_binding=loop_binding,
        )
        self.releases: MicroBatcher[Release, None] = MicroBatcher(
            release_batch, shares_outage=shares_outage, loop_binding=loop_binding
        )

    def _give_back(self, claim: Claim, won: bool) -> None:
        if won:
            key, token, _ = claim
            self.releases.submit_detached((key, token))

    async def settle(self) -> None:
        """Return once every queued claim, and the release of any given back, has landed."""
        await self.claims.wait_idle()
        await self.releases.wait_idle()
