"""Uploads being received: one at a time per dataset, and a few in all (issue 19, also seen).

A snapshot upload (up to `max_upload_bytes`, 2 GiB by default) used to stream to disk before
the dataset's lock was taken, so concurrent uploads of one dataset could fill the disk and only
then queue. A slot is now taken before the first byte is read: a second upload of a dataset
being received is refused at once (409), and past `MAX_UPLOADS` uploads in all the answer is
503 with Retry-After. The slot is held until the upload is loaded or refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gateway.errors import Conflict, Unavailable
from gateway.runtime.parts import Runtime

MAX_UPLOADS = 2


class UploadSlots:
    def __init__(self, runtime: Runtime) -> None:
        self.receiving: set[str] = set()

    @contextlib.contextmanager
    def slot(self, dataset: str) -> Iterator[None]:
        if dataset in self.receiving:
            raise Conflict(f"an upload of {dataset!r} is already being received; send again when it is done")
        if len(self.receiving) >= MAX_UPLOADS:
            raise Unavailable("other uploads are being received; try again shortly", retry_after=5)
        self.receiving.add(dataset)
        try:
            yield
        finally:
            self.receiving.discard(dataset)


def upload_slots(runtime: Runtime) -> UploadSlots:
    return runtime.owned(UploadSlots)
