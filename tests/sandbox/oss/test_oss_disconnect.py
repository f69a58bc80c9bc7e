"""A client that goes away mid-upload (a killed worker) is logged as a cut request, not a 500."""

from __future__ import annotations

import time

import pytest

from tests.sandbox.oss.conftest import BUCKET


def test_client_leaving_mid_put_is_status_0(oss_server, bucket):
    class DyingFile:
        """Ten chunks announced, one delivered: the worker dies mid-body."""

        sent = False

        def __len__(self):
            return 10 * 65536

        def read(self, size=-1):
            if self.sent:
                raise RuntimeError("worker killed")
            self.sent = True
            return b"x" * 65536

    with pytest.raises(Exception):  # noqa: B017 - whatever the client library makes of it
        bucket.put_object("half.bak", DyingFile())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        puts = [r for r in oss_server.requests if r.method == "PUT" and r.key == "half.bak"]
        if puts:
            break
        time.sleep(0.05)
    assert puts and puts[-1].status == 0 and puts[-1].fault == "client_disconnect"
    assert oss_server.store.head(BUCKET, "half.bak") is None
