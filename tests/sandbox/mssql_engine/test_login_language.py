"""Default database (4060/4064) and language at login; SET LANGUAGE/DATEFORMAT; strings read as dates."""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox.mssql.results import EnvChange, SqlError
from tests.sandbox.mssql_engine.conftest import Runner
from tests.sandbox.mssql_engine.security_config import DB, PW, q, secure_instance

PYMSSQL_LITERAL = "'2026-11-24 10:15:00.000'"  # how pymssql renders datetime(2026, 11, 24, 10, 15)
OUT_OF_RANGE = "The conversion of a {} data type to a {} data type resulted in an out-of-range value."
NOT_A_DATE = "Conversion failed when converting date and/or time from character string."


@pytest.fixture
def inst(tmp_path):
    return secure_instance(tmp_path)


def error_of(runner: Runner, sql: str) -> tuple[int, int, str]:
    error, _ = runner.error(sql)
    return error.number, error.severity, error.message


# -- default database ---------------------------------------------------------------------------------
def test_login_without_a_database_opens_the_default_database(inst):
    assert inst.login("app_default", PW).database == DB
    assert inst.login("app", PW).database == "master"


@pytest.mark.parametrize(
    ("make_unusable", "cause"),
    [
        (lambda inst: inst.database(DB).__setattr__("state", "OFFLINE"), 942),
        (lambda inst: inst.set_user_access(DB, "RESTRICTED_USER"), 923),
        (lambda inst: (inst.set_user_access(DB, "SINGLE_USER"), inst.login("app", PW, DB)), 924),
        (
            lambda inst: Runner(inst, "sa", PW).run(
                f"BACKUP DATABASE {q(DB)} TO DISK = 'D:\\Backups\\f.bak' WITH INIT; "
                f"BACKUP LOG {q(DB)} TO DISK = 'D:\\Backups\\t.trn' WITH INIT, NORECOVERY"
            ),
            927,
        ),
    ],
    ids=["offline", "restricted", "single-user-taken", "restoring"],
)
def test_an_unusable_default_database_fails_the_login_with_4064_and_master_still_works(
    inst, make_unusable, cause
):
    make_unusable(inst)
    with pytest.raises(SqlError) as info:
        inst.login("app_default", PW)
    assert (info.value.number, info.value.severity, info.value.message) == (
        4064,
        11,
        "Cannot open user default database. Login failed.",
    )
    assert info.value.__cause__.number == cause
    assert inst.login("app_default", PW, "master").database == "master"
    with pytest.raises(SqlError) as info:
        inst.login("app_default", PW, DB)  # asked for explicitly: 4060
    assert info.value.number == 4060


def test_default_database_that_does_not_exist_or_has_no_user(inst):
    with pytest.raises(SqlError) as info:
        inst.login("ghost", PW)
    assert info.value.number == 4064 and info.value.__cause__.number == 911
    inst.create_database("Gone")
    with pytest.raises(SqlError) as info:
        inst.login("ghost", PW)
    assert info.value.number == 4064 and info.value.__cause__.number == 916
    assert inst.login("ghost", PW, "master").database == "master"


# -- language at login ---------------------------------------------------------------------------------
def test_default_language_applies_when_the_client_sends_none(inst):
    brit = Runner(inst, "brit", PW)
    assert brit.rows("SELECT @@LANGUAGE, @@DATEFIRST") == [("British", 1)]
    assert Runner(inst, "app", PW).rows("SELECT @@LANGUAGE, @@DATEFIRST") == [("us_english", 7)]


def test_the_language_the_client_sends_wins_and_an_unknown_one_fails(inst):
    # FreeTDS (pymssql) sends 'us_english' in LOGIN7 unless freetds.conf says otherwise.
    session = inst.login("brit", PW, None, language_name="us_english")
    assert (session.language, session.dateformat) == ("us_english", "mdy")
    assert inst.login("app", PW, None, language_name="Deutsch").dateformat == "dmy"
    with pytest.raises(SqlError) as info:
        inst.login("app", PW, None, language_name="Klingon")
    assert info.value.number == 4019 and "Klingon" in info.value.message


def test_set_language_dateformat_datefirst(inst):
    r = Runner(inst, "app", PW)
    items = r.run("SET LANGUAGE British")
    assert [(i.kind, i.new, i.old) for i in items if isinstance(i, EnvChange)] == [
        ("language", "British", "us_english")
    ]
    assert [(m.number, m.text) for m in r.messages()] == [(5703, "Changed language setting to British.")]
    assert r.rows("SELECT @@LANGUAGE") == [("British",)]
    r.run("SET LANGUAGE [Português (Brasil)]")
    assert r.rows("SELECT @@LANGUAGE, @@DATEFIRST") == [("Português (Brasil)", 7)]
    r.run("DECLARE @l sysname = N'German'; SET LANGUAGE @l")  # alias, through a variable
    assert r.rows("SELECT @@LANGUAGE") == [("Deutsch",)]
    assert error_of(r, "SET LANGUAGE Klingon") == (
        2740,
        16,
        "SET LANGUAGE failed because 'Klingon' is not an official language name or a language alias on this "
        "SQL Server.",
    )
    assert error_of(r, "SET DATEFORMAT xyz") == (2741, 16, "SET DATEFORMAT date order 'xyz' is invalid.")
    assert error_of(r, "SET DATEFIRST 9") == (2742, 16, "SET DATEFIRST 9 is out of range.")
    r.run("SET DATEFIRST 3; SET DATEFORMAT ydm")
    assert r.rows(
        "SELECT language, date_format, date_first FROM sys.dm_exec_sessions WHERE session_id = @@SPID"
    ) == [("Deutsch", "ydm", 3)]
    assert r.rows("SELECT dateformat FROM sys.syslanguages WHERE alias = N'British English'") == [("dmy",)]


# -- strings read as datetime ----------------------------------------------------------------------------
def test_day_first_session_reads_the_pymssql_literal_as_year_day_month(inst):
    brit = Runner(inst, "brit", PW, DB)
    assert error_of(brit, f"SELECT CAST({PYMSSQL_LITERAL} AS datetime)") == (
        242,
        16,
        OUT_OF_RANGE.format("varchar", "datetime"),
    )
    assert error_of(brit, "SELECT CONVERT(smalldatetime, N'2026-11-24 10:15')") == (
        242,
        16,
        OUT_OF_RANGE.format("nvarchar", "smalldatetime"),
    )
    # day <= 12: no error, day and month silently swapped
    assert brit.rows("SELECT CAST('2026-11-05 10:15:00.000' AS datetime)") == [
        (dt.datetime(2026, 5, 11, 10, 15),)
    ]
    # unaffected: ISO 8601 with T, unseparated, style 126/120, datetime2 and date targets
    assert brit.rows(
        "SELECT CAST('2026-11-24T10:15:00' AS datetime), CAST('20261124 10:15' AS datetime), "
        "CONVERT(datetime, '2026-11-24T10:15:00.000', 126), CONVERT(datetime, '2026-11-24 10:15:00', 120), "
        f"CAST({PYMSSQL_LITERAL} AS datetime2), CAST('2026-11-24' AS date), CONVERT(datetime, '24/11/2026', 103)"
    ) == [
        (
            dt.datetime(2026, 11, 24, 10, 15),
            dt.datetime(2026, 11, 24, 10, 15),
            dt.datetime(2026, 11, 24, 10, 15),
            dt.datetime(2026, 11, 24, 10, 15),
            dt.datetime(2026, 11, 24, 10, 15),
            dt.datetime(2026, 11, 24),
            dt.datetime(2026, 11, 24),
        )
    ]
    assert Runner(inst, "app", PW).rows(f"SELECT CAST({PYMSSQL_LITERAL} AS datetime)") == [
        (dt.datetime(2026, 11, 24, 10, 15),)
    ]


def test_insert_and_comparison_convert_implicitly_under_the_session_dateformat(inst):
    brit = Runner(inst, "brit", PW, DB)
    brit.run("CREATE TABLE dbo.events (id int PRIMARY KEY, at datetime, at2 datetime2)")
    assert error_of(brit, f"INSERT INTO dbo.events (id, at) VALUES (1, {PYMSSQL_LITERAL})")[0] == 242
    assert error_of(brit, f"INSERT INTO dbo.events VALUES (1, {PYMSSQL_LITERAL}, NULL)")[0] == 242
    brit.run(f"INSERT INTO dbo.events (id, at, at2) VALUES (2, '2026-11-05 10:15:00.000', {PYMSSQL_LITERAL})")
    assert brit.rows("SELECT at, at2 FROM dbo.events") == [
        (dt.datetime(2026, 5, 11, 10, 15), dt.datetime(2026, 11, 24, 10, 15))
    ]
    assert error_of(brit, f"SELECT id FROM dbo.events WHERE at >= {PYMSSQL_LITERAL}")[0] == 242
    assert error_of(brit, f"UPDATE dbo.events SET at = {PYMSSQL_LITERAL} WHERE id = 2")[0] == 242
    assert brit.rows("SELECT id FROM dbo.events WHERE at = '2026-11-05 10:15'") == [(2,)]
    assert brit.rows("SELECT id FROM dbo.events WHERE at BETWEEN '2026-01-05' AND '2026-31-05'") == [(2,)]
    us = Runner(inst, "app", PW, DB)
    assert us.rows("SELECT id FROM dbo.events AS e WHERE e.at = '2026-05-11 10:15'") == [(2,)]
    assert us.rows("SELECT id FROM dbo.events WHERE at = '2026-11-05 10:15'") == []
    # columns: a string column is read under DATEFORMAT when the query runs; a date column stays a date
    brit.run(f"CREATE TABLE dbo.raw (s varchar(30)); INSERT INTO dbo.raw VALUES ({PYMSSQL_LITERAL})")
    assert error_of(brit, "SELECT CAST(s AS datetime) FROM dbo.raw") == (
        242,
        16,
        OUT_OF_RANGE.format("varchar", "datetime"),
    )
    assert us.rows("SELECT CONVERT(datetime, s) FROM dbo.raw") == [(dt.datetime(2026, 11, 24, 10, 15),)]
    assert brit.rows("SELECT CAST(at AS datetime2), CONVERT(datetime, s, 121) FROM dbo.events, dbo.raw") == [
        (dt.datetime(2026, 5, 11, 10, 15), dt.datetime(2026, 11, 24, 10, 15))
    ]
    # the product's history query, run by a day-first session
    history = "SELECT COUNT(*) FROM msdb.dbo.backupset AS bs WHERE bs.backup_start_date >= {}"
    assert us.rows(history.format(PYMSSQL_LITERAL)) == [(0,)]
    assert error_of(brit, history.format(PYMSSQL_LITERAL))[0] == 242


def test_variables_and_sp_executesql_parameters(inst):
    brit = Runner(inst, "brit", PW)
    assert error_of(brit, f"DECLARE @d datetime = {PYMSSQL_LITERAL}")[0] == 242
    assert error_of(brit, f"DECLARE @s varchar(30) = {PYMSSQL_LITERAL}; SELECT CAST(@s AS datetime)") == (
        242,
        16,
        OUT_OF_RANGE.format("varchar", "datetime"),
    )
    assert error_of(brit, f"DECLARE @s nvarchar(30) = {PYMSSQL_LITERAL}; SELECT CAST(@s AS datetime)")[2] == (
        OUT_OF_RANGE.format("nvarchar", "datetime")
    )
    assert (
        error_of(
            brit,
            "EXEC sp_executesql N'SELECT CAST(@p AS datetime)', N'@p datetime', @p = " + PYMSSQL_LITERAL,
        )[0]
        == 242
    )
    assert brit.rows("DECLARE @d datetime = '2026-11-24T10:15:00'; SELECT CAST(@d AS datetime2)") == [
        (dt.datetime(2026, 11, 24, 10, 15),)
    ]


def test_strings_that_are_not_dates_and_precision(inst):
    r = Runner(inst, "app", PW)
    assert error_of(r, "SELECT CAST('hello' AS datetime)") == (241, 16, NOT_A_DATE)
    assert error_of(r, "SELECT CAST('2026-11-24 10:15:00.1234' AS datetime)")[0] == 241  # 3 digits at most
    assert error_of(r, "SELECT CAST('1700-01-01' AS datetime)")[0] == 242
    assert error_of(r, "SELECT CAST('2080-01-01' AS smalldatetime)")[0] == 242
    r.run("SET DATEFORMAT dmy")
    assert (
        error_of(r, "SELECT CAST('12/31/2008 09:01:01.1234567' AS datetime2)")[0] == 241
    )  # SET DATEFORMAT doc
    assert r.rows(
        "SELECT CAST('31/12/2008 09:01:01.1234567' AS datetime2), CAST('2026-11-24 10:15:00.125' AS datetime2), "
        "CAST('2026-24-11 10:15:00.125' AS datetime), CAST('2026-24-11 10:15:29.999' AS smalldatetime), "
        "CAST('' AS datetime)"
    ) == [
        (
            dt.datetime(2008, 12, 31, 9, 1, 1, 123456),
            dt.datetime(2026, 11, 24, 10, 15, 0, 125000),
            dt.datetime(2026, 11, 24, 10, 15, 0, 127000),  # datetime ticks: .125 -> .127
            dt.datetime(2026, 11, 24, 10, 16),  # smalldatetime rounds to the minute
            dt.datetime(1900, 1, 1),
        )
    ]
    r.run("SET DATEFORMAT ymd")
    assert r.rows(f"SELECT CAST({PYMSSQL_LITERAL} AS datetime)") == [(dt.datetime(2026, 11, 24, 10, 15),)]
