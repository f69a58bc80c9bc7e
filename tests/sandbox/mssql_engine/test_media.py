"""Striped and mirrored backups: msdb media rows, RESTORE needing every family, edition limits."""

from __future__ import annotations

import pytest

from sandbox.mssql.results import SqlError
from tests.sandbox.mssql_engine.conftest import HOSTILE, Runner, make_instance
from tests.sandbox.mssql_engine.helpers import dicts, lit, quote

DB = quote(HOSTILE)
MEDIA = (
    "SELECT bms.media_family_count, bms.mirror_count, bmf.family_sequence_number, bmf.media_family_id, "
    "bmf.media_count, bmf.logical_device_name, bmf.physical_device_name, bmf.device_type, "
    "bmf.physical_block_size, bmf.mirror, bs.first_family_number, bs.last_family_number, bs.backup_set_id "
    "FROM msdb.dbo.backupset AS bs JOIN msdb.dbo.backupmediaset AS bms ON bms.media_set_id = bs.media_set_id "
    "JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id "
    "ORDER BY bmf.mirror, bmf.family_sequence_number"
)


def disk(name: str) -> str:
    return "DISK = " + lit("D:\\Backups\\" + name)


def rows_of(inst) -> list[tuple]:
    return Runner(inst).rows(f"SELECT id, customer, amount FROM {DB}.dbo.orders ORDER BY id")


def test_striped_backup_needs_every_family(source, tmp_path):
    r = Runner(source)
    r.run(f"BACKUP DATABASE {DB} TO {disk('s1.bak')}, {disk('s2.bak')} WITH INIT, FORMAT, COMPRESSION")
    media = dicts(r.result(MEDIA))
    assert [(m["family_sequence_number"], m["mirror"]) for m in media] == [(1, 0), (2, 0)]
    assert {m["media_family_count"] for m in media} == {2} and {m["mirror_count"] for m in media} == {1}
    assert [m["physical_device_name"] for m in media] == ["D:\\Backups\\s1.bak", "D:\\Backups\\s2.bak"]
    assert {(m["device_type"], m["media_count"], m["physical_block_size"]) for m in media} == {(2, 1, 512)}
    assert media[0]["media_family_id"] != media[1]["media_family_id"]
    assert media[0]["logical_device_name"] is None
    assert (media[0]["first_family_number"], media[0]["last_family_number"]) == (1, 2)
    assert len({m["backup_set_id"] for m in media}) == 1  # one backup set, one row per file
    folder = tmp_path / "backups"
    assert (folder / "s1.bak").stat().st_size > 0 and (folder / "s2.bak").stat().st_size > 0
    # HEADERONLY reads one stripe alone; its CompressedBackupSize is that of the whole set.
    header = r.result(f"RESTORE HEADERONLY FROM {disk('s2.bak')}")
    fields = dict(zip([c.name for c in header.columns], header.rows[0], strict=True))
    assert fields["BackupType"] == 1 and fields["DatabaseName"] == HOSTILE
    assert (
        fields["CompressedBackupSize"]
        == (folder / "s1.bak").stat().st_size + (folder / "s2.bak").stat().st_size
    )
    label = dicts(r.result(f"RESTORE LABELONLY FROM {disk('s2.bak')}"))[0]
    assert (label["FamilyCount"], label["FamilySequenceNumber"], label["MirrorCount"]) == (2, 2, 1)

    target = make_instance(tmp_path, "TGT")
    t = Runner(target)
    error, messages = t.error(f"RESTORE DATABASE {DB} FROM {disk('s1.bak')} WITH RECOVERY")
    assert error.number == 3013 and messages[0].number == 3132
    assert messages[0].text == (
        "The media set has 2 media families but only 1 are provided. All members must be provided."
    )
    error, messages = t.error(f"RESTORE DATABASE {DB} FROM {disk('s1.bak')}, {disk('s1.bak')}")
    assert (
        messages[0].number == 3227 and "media family 1 which has already been processed" in messages[0].text
    )
    error, messages = t.error(f"RESTORE VERIFYONLY FROM {disk('s2.bak')}")
    assert messages[0].number == 3132
    t.run(f"RESTORE VERIFYONLY FROM {disk('s2.bak')}, {disk('s1.bak')}")
    assert t.messages()[-1].number == 3262
    t.run(f"RESTORE DATABASE {DB} FROM {disk('s2.bak')}, {disk('s1.bak')} WITH RECOVERY")  # any order
    assert rows_of(target) == rows_of(source)
    restored = dicts(t.result(MEDIA))
    assert [m["physical_device_name"] for m in restored] == ["D:\\Backups\\s1.bak", "D:\\Backups\\s2.bak"]
    # Two unrelated single-file backups are not one media set.
    r.run(f"BACKUP DATABASE {DB} TO {disk('other.bak')} WITH INIT")
    error, messages = t.error(
        f"RESTORE DATABASE {DB} FROM {disk('s1.bak')}, {disk('other.bak')} WITH REPLACE"
    )
    assert messages[0].number == 3231


def test_striped_log_backups_restore_through_the_python_api(source, target, tmp_path):
    r = Runner(source)
    r.run(f"BACKUP DATABASE {DB} TO {disk('f.bak')} WITH INIT")
    r.run(f"UPDATE {DB}.dbo.orders SET amount = amount + 1 WHERE id < 20")
    r.run(f"BACKUP LOG {DB} TO {disk('l_1.trn')}, {disk('l_2.trn')}, {disk('l_3.trn')} WITH INIT")
    folder = tmp_path / "backups"
    target.restore_file(HOSTILE, folder / "f.bak", recovery=False)
    with pytest.raises(SqlError) as info:
        target.restore_file(HOSTILE, [folder / "l_1.trn", folder / "l_3.trn"], recovery=True)
    assert info.value.number == 3132 and "3 media families but only 2" in info.value.message
    target.restore_file(HOSTILE, [folder / f"l_{n}.trn" for n in (3, 1, 2)], recovery=True)
    assert rows_of(target) == rows_of(source)


def test_mirrored_backup_either_mirror_restores_alone(source, tmp_path):
    r = Runner(source)
    r.run(f"BACKUP DATABASE {DB} TO {disk('m0.bak')} MIRROR TO {disk('m1.bak')} WITH INIT, FORMAT, CHECKSUM")
    media = dicts(r.result(MEDIA))
    assert [(m["family_sequence_number"], m["mirror"]) for m in media] == [(1, 0), (1, 1)]
    assert [m["physical_device_name"] for m in media] == ["D:\\Backups\\m0.bak", "D:\\Backups\\m1.bak"]
    assert {m["mirror_count"] for m in media} == {2} and {m["media_family_count"] for m in media} == {1}
    assert media[0]["media_family_id"] == media[1]["media_family_id"]  # one family, two copies
    folder = tmp_path / "backups"
    assert (folder / "m0.bak").read_bytes() == (folder / "m1.bak").read_bytes()
    for name in ("m0.bak", "m1.bak"):
        target = make_instance(tmp_path, "T_" + name[:2])
        Runner(target).run(f"RESTORE DATABASE {DB} FROM {disk(name)} WITH RECOVERY")
        assert rows_of(target) == rows_of(source)
    # Striped and mirrored: two families, each copied twice; one copy of each family restores.
    r.run(
        f"BACKUP DATABASE {DB} TO {disk('a1.bak')}, {disk('a2.bak')} MIRROR TO {disk('b1.bak')}, "
        f"{disk('b2.bak')} WITH INIT, FORMAT"
    )
    target = make_instance(tmp_path, "T_MIX")
    Runner(target).run(f"RESTORE DATABASE {DB} FROM {disk('a1.bak')}, {disk('b2.bak')} WITH RECOVERY")
    assert rows_of(target) == rows_of(source)


def test_mirror_rules(source, tmp_path):
    r = Runner(source)
    error, messages = r.error(
        f"BACKUP DATABASE {DB} TO {disk('x0.bak')} MIRROR TO {disk('x1.bak')} WITH INIT"
    )
    assert error.number == 3013 and messages[0].number == 3215
    assert messages[0].text == "Use WITH FORMAT to create a new mirrored backup set."
    error, messages = r.error(
        f"BACKUP DATABASE {DB} TO {disk('x0.bak')}, {disk('x2.bak')} MIRROR TO {disk('x1.bak')} WITH FORMAT"
    )
    assert messages[0].number == 3010
    mirrors = " ".join(f"MIRROR TO {disk(f'y{n}.bak')}" for n in range(1, 5))
    error, messages = r.error(f"BACKUP DATABASE {DB} TO {disk('y0.bak')} {mirrors} WITH FORMAT")
    assert messages[0].number == 3214 and "Only 4 are allowed" in messages[0].text
    assert not list((tmp_path / "backups").glob("x*")) and not list((tmp_path / "backups").glob("y*"))

    standard = make_instance(
        tmp_path, "STD", edition="Standard Edition (64-bit)", databases={"std db": {"recovery_model": "FULL"}}
    )
    s = Runner(standard)
    error, messages = s.error(
        f"BACKUP DATABASE [std db] TO {disk('s0.bak')} MIRROR TO {disk('s1.bak')} WITH FORMAT"
    )
    assert messages[0].number == 3218
    assert messages[0].text.startswith("Backup mirroring is not available in this edition of SQL Server.")
    s.run(f"BACKUP DATABASE [std db] TO {disk('s0.bak')}, {disk('s1.bak')} WITH FORMAT")  # striping is fine


def as_version_1(path) -> None:
    """Rewrite an uncompressed single-family backup as format 1 wrote it: no media info, naive log times."""
    import hashlib
    import json

    from sandbox.mssql.engine import backupfile as bf

    data = path.read_bytes()
    body, pos, frames = data[: -bf.TRAILER.size], bf.FILE_HEADER.size, []
    while pos < len(body):
        kind, flags, length = bf.FRAME.unpack_from(body, pos)
        payload = body[pos + bf.FRAME.size : pos + bf.FRAME.size + length]
        pos += bf.FRAME.size + length
        assert flags == 0
        if kind == bf.FRAME_LOG:
            records = [json.loads(line) for line in payload.splitlines()]
            for record in records:
                record["time"] = record["time"][:26]  # drop the UTC offset
            payload = b"".join(json.dumps(r).encode() + b"\n" for r in records)
        elif kind == bf.FRAME_HEADER:
            header = json.loads(payload)
            del header["Sandbox"]["media"]
            header["Sandbox"]["format_version"] = 1
            payload = json.dumps(header).encode()
        frames.append((kind, payload))
    out = bf.FILE_HEADER.pack(bf.MAGIC, 1, 0)
    for kind, payload in frames:
        if kind == bf.FRAME_HEADER:
            offset = len(out)
        out += bf.FRAME.pack(kind, 0, len(payload)) + payload
    path.write_bytes(out + bf.TRAILER.pack(bf.TRAILER_MAGIC, offset, hashlib.sha256(out).digest()))


def test_version_1_files_still_restore(source, target, tmp_path):
    r = Runner(source)
    r.run(f"BACKUP DATABASE {DB} TO {disk('v1.bak')} WITH INIT")
    r.run(f"UPDATE {DB}.dbo.orders SET created = SYSDATETIME() WHERE id < 10")
    r.run(f"BACKUP LOG {DB} TO {disk('v1.trn')} WITH INIT")
    folder = tmp_path / "backups"
    for name in ("v1.bak", "v1.trn"):
        as_version_1(folder / name)
        assert (folder / name).read_bytes()[8:10] == b"\x01\x00"
    header = target.read_backup_header(folder / "v1.trn")
    assert "media" not in header["Sandbox"] and header["BackupType"] == 2
    target.restore_file(HOSTILE, folder / "v1.bak", recovery=False)
    target.restore_file(HOSTILE, folder / "v1.trn", recovery=True)
    query = f"SELECT id, created FROM {DB}.dbo.orders ORDER BY id"
    assert Runner(target).rows(query) == r.rows(query)
    label = dicts(Runner(target).result(f"RESTORE LABELONLY FROM {disk('v1.bak')}"))[0]
    assert (label["FamilyCount"], label["FamilySequenceNumber"], label["MirrorCount"]) == (1, 1, 1)
