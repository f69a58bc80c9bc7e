"""AppendObject (the migration ledger's write path) through oss2."""

from __future__ import annotations

import oss2
import pytest


def test_append_builds_the_object_and_checks_position(bucket):
    first = bucket.append_object("ledger/db.jsonl", 0, b'{"a":1}\n')
    assert first.next_position == 8
    second = bucket.append_object("ledger/db.jsonl", first.next_position, b'{"b":2}\n')
    assert second.next_position == 16
    assert bucket.get_object("ledger/db.jsonl").read() == b'{"a":1}\n{"b":2}\n'
    with pytest.raises(oss2.exceptions.PositionNotEqualToLength) as caught:
        bucket.append_object("ledger/db.jsonl", 8, b"late writer\n")
    assert caught.value.headers.get("x-oss-next-append-position") == "16"


def test_append_to_a_normal_object_is_refused(bucket):
    bucket.put_object("normal.txt", b"x")
    with pytest.raises(oss2.exceptions.ObjectNotAppendable):
        bucket.append_object("normal.txt", 1, b"y")
