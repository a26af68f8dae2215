"""The parts the ``Store`` facade hands its work to, each made on first use.

A part's module is imported when the part is first needed, not when the store opens:
``dreamflare ls`` lists contents without importing the upload path (genmeta, threads),
the search queries, the API keys or the thumbnail machinery. Start-up is most of the
time of a quick command, and every module imported is paid by every command.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from .access import Access
from .metering import Meter
from .reading import Reading
from .replica import Replica
from .thumbnails.base import check_max_pixels

if TYPE_CHECKING:
    from .contents import Contents
    from .finding import Finding
    from .keys import Keys
    from .previews import Previews
    from .reports import Reports
    from .sharing import Sharing
    from .signing import UrlSigner


class Services:
    """The store's parts over one replica: contents, keys, sharing, reports, finding,
    reading, previews and the URL signer.

    Each is made once, on first use, from the replica and the access rules; making one
    twice (two threads at once) is harmless, as they keep no state of their own, except
    the previews, which own a thread pool and are made under a lock.
    """

    def __init__(
        self, replica: Replica, meter: Meter, extract_metadata: bool, thumbnail_max_pixels: int
    ) -> None:
        self.replica = replica
        self.access = Access(replica.catalog)
        self.meter = meter
        self.reading = Reading(replica, self.access)
        self._extract = extract_metadata
        # Checked now: a bad setting is an error of Store(), not of a later thumbnail.
        self._max_pixels = check_max_pixels(thumbnail_max_pixels)
        self._previews: Previews | None = None
        self._lock = threading.Lock()

    @functools.cached_property
    def contents(self) -> Contents:
        from .contents import Contents

        return Contents(self.replica, self.access, self.meter, self._extract)

    @functools.cached_property
    def keys(self) -> Keys:
        from .keys import Keys

        return Keys(self.replica, self.access)

    @functools.cached_property
    def sharing(self) -> Sharing:
        from .sharing import Sharing

        return Sharing(self.replica, self.access)

    @functools.cached_property
    def reports(self) -> Reports:
        from .reports import Reports

        return Reports(self.replica)

    @functools.cached_property
    def finding(self) -> Finding:
        from .finding import Finding

        return Finding(self.replica, self.access)

    @functools.cached_property
    def signer(self) -> UrlSigner:
        from .signing import UrlSigner

        return UrlSigner(self.replica.catalog)

    @property
    def previews(self) -> Previews:
        if self._previews is None:
            with self._lock:
                if self._previews is None:
                    from .previews import Previews

                    self._previews = Previews(self.replica, self._max_pixels)
        return self._previews

    def close(self) -> None:
        """Stop the thumbnail threads, if any were started."""
        with self._lock:
            previews = self._previews
        if previews is not None:
            previews.close()
