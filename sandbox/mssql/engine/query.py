"""SELECT/INSERT/UPDATE/DELETE: T-SQL tokens translated to SQLite and run against the databases.

A SELECT runs on a private in-memory SQLite connection: user databases are ATTACHed, catalog views are
materialised as temporary tables. A write runs on the target database's own connection and is logged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.mssql.engine import datefuncs, errors, functions, language, security
from sandbox.mssql.engine.catalog import VIEWS
from sandbox.mssql.engine.functions import register_common
from sandbox.mssql.engine.lexer import Token
from sandbox.mssql.engine.parser import SqlType, syntax_error, unsupported
from sandbox.mssql.engine.types import (
    NONCOMPARABLE_TYPES,
    SINGLE_BYTE_TYPES,
    STRING_TYPES,
    affinity,
    column_for,
    format_datetime,
    from_storage,
    infer_column,
    storage_value,
)
from sandbox.mssql.results import Column, ResultSet, SqlError

if TYPE_CHECKING:
    from sandbox.mssql.engine.database import Database, TableInfo
    from sandbox.mssql.engine.executor import Executor

NOT_ALIAS = frozenset(
    """WHERE JOIN INNER LEFT RIGHT FULL OUTER CROSS ON GROUP ORDER HAVING UNION SET VALUES OUTPUT WITH OPTION
    SELECT DEFAULT EXCEPT INTERSECT FROM INTO AND OR NOT IS NULL AS""".split()
)
TABLE_KEYWORDS = frozenset({"FROM", "JOIN", "INTO", "UPDATE"})
CLAUSE_END = frozenset(
    {
        "WHERE",
        "GROUP",
        "ORDER",
        "HAVING",
        "UNION",
        "EXCEPT",
        "INTERSECT",
        "ON",
        "SET",
        "VALUES",
        "OPTION",
        "SELECT",
    }
)
STAR = "\x00STAR\x00"
COMPARISONS = ("=", "<>", "!=", "<", ">", "<=", ">=", "!<", "!>")
BARE_FUNCTIONS = frozenset({"CURRENT_USER", "SESSION_USER", "SYSTEM_USER", "USER"})
COLUMN_TYPE_NAMES = {"datetime": "datetime", "datetime2": "datetime2"}  # catalog view column -> T-SQL type


def sqlite_type(sqltype: SqlType) -> str:
    if sqltype.name in ("decimal", "numeric", "money", "smallmoney"):
        return "NUMERIC"
    return affinity(sqltype)


def sql_literal(value) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Source:
    alias: str
    columns: list[tuple[str, Column]]
    table: TableInfo | None = None


@dataclass
class Translation:
    sql: str
    params: list
    sources: list[Source] = field(default_factory=list)
    item_types: list[list[Column] | Column | None] = field(default_factory=list)
    write_db: Database | None = None
    write_table: TableInfo | None = None


class Translator:
    """Rewrites one statement's tokens into SQLite SQL."""

    def __init__(self, ex: Executor, write: bool):
        self.ex = ex
        self.inst = ex.inst
        self.write = write
        self.params: list = []
        self.attached: dict[str, tuple[str, Database]] = {}
        self.views: dict[tuple[str, str], str] = {}
        self.sources: list[Source] = []
        self.write_db: Database | None = None
        self.write_table: TableInfo | None = None
        self.conn: sqlite3.Connection | None = None
        self.insert_types: dict[int, SqlType] = {}  # token index of an INSERT value -> its column's type
        # Text decided once every source is known (the SELECT list comes before FROM): marker -> function.
        self.deferred: dict[str, Callable[[], str]] = {}

    # -- entry points --------------------------------------------------------------------------
    def translate(self, toks: list[Token]) -> Translation:
        toks = [t for t in toks if not t.is_op(";")] + [Token("eof", "", "", toks[-1].pos if toks else 0)]
        self.statement = toks[0].upper if toks[0].kind == "word" else ""
        if toks[0].is_word("INSERT"):
            self.insert_types = self._insert_value_types(toks)
        sql = self._range(toks, 0, len(toks) - 1, top_level=True)
        sql = sql.replace(STAR, self._comparable_columns() or "NULL")
        for marker, decide in self.deferred.items():
            sql = sql.replace(marker, decide())
        result = Translation(
            sql, self.params, self.sources, write_db=self.write_db, write_table=self.write_table
        )
        if toks and toks[0].is_word("SELECT"):
            result.item_types = self._select_item_types(toks)
        return result

    # -- token rewriting -----------------------------------------------------------------------
    def _range(self, toks: list[Token], start: int, end: int, top_level: bool = False) -> str:
        out: list[str] = []
        limits: dict[int, str] = {}
        depth = 0
        in_from = False
        i = start
        prev: Token | None = None
        while i < end:
            tok = toks[i]
            word = tok.upper if tok.kind == "word" else ""
            if word == "TOP" and prev is not None and prev.is_word("SELECT", "DISTINCT"):
                i, limit = self._top(toks, i + 1)
                limits[depth] = limit
                prev = tok
                continue
            if word in TABLE_KEYWORDS or (in_from and prev is not None and prev.is_op(",")):
                if word in TABLE_KEYWORDS:
                    out.append(tok.text)
                    in_from = word in ("FROM", "JOIN")
                    prev = tok
                    i += 1
                    tok = toks[i]
                if tok.kind in ("word", "qident") and not tok.is_word("SELECT") and not toks[i].is_op("("):
                    i = self._table_ref(toks, i, out, is_update=word == "UPDATE")
                    prev = toks[i - 1]
                    continue
                continue
            if word in CLAUSE_END:
                in_from = False
            if word == "CAST" and toks[i + 1].is_op("("):
                close = _matching(toks, i + 1)
                out.append(self._cast(toks, i + 2, close))
                i = close + 1
            elif word in ("CONVERT", "TRY_CONVERT") and toks[i + 1].is_op("("):
                close = _matching(toks, i + 1)
                out.append(self._convert(toks, i + 2, close))
                i = close + 1
            elif (
                word in ("BINARY_CHECKSUM", "CHECKSUM") and toks[i + 2].is_op("*") and toks[i + 3].is_op(")")
            ):
                out.append(f"{word}({STAR})")
                i += 4
            elif word == "DATALENGTH" and toks[i + 1].is_op("("):
                close = _matching(toks, i + 1)
                parts = _chain(toks, i + 2, close)

                def length_function(parts=parts) -> str:
                    sqltype = self._column_sqltype(parts)
                    single = sqltype is not None and sqltype.name in SINGLE_BYTE_TYPES
                    return "DATALENGTH_SB" if single else "DATALENGTH"

                out.append(f"{self._defer(length_function)}({self._range(toks, i + 2, close)})")
                i = close + 1
            elif (
                word in BARE_FUNCTIONS
                and not toks[i + 1].is_op("(", ".")
                and not (prev is not None and prev.is_op("."))
            ):
                out.append(f"{word}()")
                i += 1
            elif tok.kind in ("str", "var") and (target := self._implicit_date_type(toks, i)) is not None:
                out.append(self._date_value(tok, target, implicit=True))
                i += 1
            elif word == "COUNT_BIG":
                out.append("COUNT")
                i += 1
            elif word in datefuncs.FUNCTIONS and toks[i + 1].is_op("(") and toks[i + 2].kind == "word":
                out.append(f"{word} ( {sql_literal(toks[i + 2].value)}")  # the datepart keyword
                depth += 1
                i += 3
            elif word == "OPTION" and toks[i + 1].is_op("("):
                i = _matching(toks, i + 1) + 1
            else:
                if tok.is_op("("):
                    depth += 1
                elif tok.is_op(")"):
                    if depth in limits:
                        out.append(f" LIMIT {limits.pop(depth)}")
                    depth -= 1
                out.append(self._token(tok))
                i += 1
            prev = tok
        if 0 in limits and top_level:
            out.append(f" LIMIT {limits.pop(0)}")
        return " ".join(out)

    def _token(self, tok: Token) -> str:
        if tok.kind == "str":
            return sql_literal(tok.value)
        if tok.kind == "qident":
            return sql_ident(tok.value)
        if tok.kind == "var":
            self.params.append(storage_value(self.ex.get_var(tok.value)))
            return "?"
        if tok.kind == "sysvar":
            self.params.append(storage_value(self.ex.sysvar(tok.upper)))
            return "?"
        if tok.kind == "num" and tok.value.lower().startswith("0x"):
            return "X'" + tok.value[2:] + "'"
        if tok.kind == "word" and tok.upper in (
            "GETDATE",
            "SYSDATETIME",
            "GETUTCDATE",
            "SYSUTCDATETIME",
            "SYSDATETIMEOFFSET",
        ):
            return tok.upper
        if tok.kind == "word" and tok.upper == "CURRENT_TIMESTAMP":
            return "GETDATE()"  # SQLite's own CURRENT_TIMESTAMP would be UTC; T-SQL's is server local
        return tok.text

    def _top(self, toks: list[Token], i: int) -> tuple[int, str]:
        if toks[i].is_op("("):
            close = _matching(toks, i)
            limit = self._range(toks, i + 1, close)
            i = close + 1
        else:
            limit = self._token(toks[i])
            i += 1
        if toks[i].is_word("PERCENT", "WITH"):
            raise unsupported("SELECT TOP ... PERCENT/WITH TIES")
        return i, f"({limit})"

    def _cast(self, toks: list[Token], start: int, close: int) -> str:
        as_index = _find_top_level(toks, start, close, "AS")
        sqltype = _type_from(toks, as_index + 1, close)
        if sqltype.name in language.DATE_TYPES:
            return self._to_date(toks, start, as_index, sqltype, None)
        return f"CAST({self._range(toks, start, as_index)} AS {sqlite_type(sqltype)})"

    def _convert(self, toks: list[Token], start: int, close: int) -> str:
        comma = _find_top_level(toks, start, close, ",")
        sqltype = _type_from(toks, start, comma)
        second = _find_top_level(toks, comma + 1, close, ",", missing_ok=True)
        expr_end = close if second < 0 else second
        if sqltype.name in language.DATE_TYPES:
            style = toks[second + 1] if second >= 0 and second + 2 == close else None
            number = int(style.value) if style is not None and style.kind == "num" else None
            return self._to_date(toks, comma + 1, expr_end, sqltype, number)
        return f"CAST({self._range(toks, comma + 1, expr_end)} AS {sqlite_type(sqltype)})"

    # -- strings read as dates (DATEFORMAT) ------------------------------------------------------
    def _to_date(self, toks: list[Token], start: int, end: int, target: SqlType, style: int | None) -> str:
        """CAST/CONVERT to a date type: a literal or string variable is converted here; a string column
        or an expression of unknown type at run time with the session's DATEFORMAT written into the SQL."""
        if end - start == 1 and toks[start].kind in ("str", "var"):
            return self._date_value(toks[start], target, style)
        inner = self._range(toks, start, end)
        parts = _chain(toks, start, end)

        def source() -> str:
            column = self._column_sqltype(parts)
            if column is not None and column.name in language.DATE_TYPES:
                return sql_literal("date")  # already a date value: kept as it is
            if column is not None and column.name in STRING_TYPES:
                return sql_literal("varchar" if column.name in SINGLE_BYTE_TYPES else "nvarchar")
            return sql_literal("auto")

        dateformat = sql_literal(self.ex.session.dateformat)
        args = [inner, sql_literal(target.name), dateformat, str(style or "NULL"), self._defer(source)]
        return f"SBX_TO_DATE({', '.join(args)})"

    def _defer(self, decide: Callable[[], str]) -> str:
        marker = f"\x00DEFER{len(self.deferred)}\x00"
        self.deferred[marker] = decide
        return marker

    def _date_value(
        self, tok: Token, target: SqlType, style: int | None = None, implicit: bool = False
    ) -> str:
        """A string literal/variable converted to ``target`` now (242/241 as SQL Server), as a parameter.

        An implicit conversion (INSERT value, comparison) to datetime2/date of an ISO-like string keeps
        the string as written (how the engine stores those types); a DATEFORMAT-dependent one is converted.
        """
        if tok.kind == "var":
            declared = self.ex.var_type(tok.value)
            if declared is None or declared.name not in STRING_TYPES:
                return self._token(tok)
            value = self.ex.get_var(tok.value)
            source = "varchar" if declared.name in SINGLE_BYTE_TYPES else "nvarchar"
        else:
            value, source = tok.value, "nvarchar" if tok.unicode else "varchar"
        if value is None:
            return self._token(tok)
        text = str(value)
        parsed = language.string_to_datetime(text, target.name, self.ex.session.dateformat, source, style)
        if (
            implicit
            and target.name not in language.LEGACY_TYPES
            and language.looks_like_stored_datetime(text)
        ):
            self.params.append(text)
        else:
            self.params.append(format_datetime(parsed))
        return "?"

    def _implicit_date_type(self, toks: list[Token], i: int) -> SqlType | None:
        """The date type a string at ``toks[i]`` is implicitly converted to: an INSERT value for a date
        column, or compared with (or BETWEEN bounds of) a date column."""
        if i in self.insert_types:
            return self.insert_types[i]
        candidates = []
        if i > 0 and toks[i - 1].is_op(*COMPARISONS):
            candidates.append(_chain_before(toks, i - 1))
        if toks[i + 1].is_op(*COMPARISONS):
            candidates.append(_chain(toks, i + 2, _chain_end(toks, i + 2)))
        if i > 0 and toks[i - 1].is_word("BETWEEN"):
            candidates.append(_chain_before(toks, i - 1))
        if i > 2 and toks[i - 1].is_word("AND") and toks[i - 3].is_word("BETWEEN"):
            candidates.append(_chain_before(toks, i - 3))
        for parts in candidates:
            sqltype = self._column_sqltype(parts)
            if sqltype is not None and sqltype.name in language.DATE_TYPES:
                return sqltype
        return None

    def _insert_value_types(self, toks: list[Token]) -> dict[int, SqlType]:
        """INSERT [INTO] t [(cols)] VALUES (...), ...: token index of each single-token value -> column type."""
        i = 2 if toks[1].is_word("INTO") else 1
        if toks[i].kind not in ("word", "qident"):
            return {}
        parts, i = _name_at(toks, i)
        table = self._peek_table(parts)
        if table is None:
            return {}
        types = {name.lower(): sqltype for name, sqltype, _, _ in table.columns}
        if toks[i].is_op("("):
            close = _matching(toks, i)
            names = [t.value for t in toks[i + 1 : close] if t.kind in ("word", "qident")]
            i = close + 1
        else:
            names = [name for name, _, _, identity in table.columns if not identity]
        if not toks[i].is_word("VALUES"):
            return {}
        i += 1
        found: dict[int, SqlType] = {}
        while toks[i].is_op("("):
            close = _matching(toks, i)
            start, index = i + 1, 0
            while start < close:
                comma = _find_top_level(toks, start, close, ",", missing_ok=True)
                stop = close if comma < 0 else comma
                sqltype = types.get(names[index].lower()) if index < len(names) else None
                if stop - start == 1 and sqltype is not None and sqltype.name in language.DATE_TYPES:
                    found[start] = sqltype
                start, index = stop + 1, index + 1
            i = close + 1
            if not toks[i].is_op(","):
                break
            i += 1
        return found

    def _peek_table(self, parts: list[str]) -> TableInfo | None:
        if len(parts) > 3:
            return None
        db = self.inst.find_database(parts[-3] if len(parts) == 3 and parts[-3] else self.ex.session.database)
        if db is None or db.state != "ONLINE":
            return None
        return db.find_table(parts[-2] if len(parts) >= 2 and parts[-2] else "dbo", parts[-1])

    def _column_sqltype(self, parts: list[str] | None) -> SqlType | None:
        """The declared type of a column reference among the sources seen so far."""
        if not parts:
            return None
        name = parts[-1].lower()
        alias = parts[-2].lower() if len(parts) > 1 else None
        for source in self.sources:
            if alias is not None and source.alias.lower() != alias:
                continue
            if source.table is not None:
                for col_name, sqltype, _, _ in source.table.columns:
                    if col_name.lower() == name:
                        return sqltype
            for col_name, column in source.columns:
                if col_name.lower() == name and source.table is None:
                    kind = COLUMN_TYPE_NAMES.get(column.type)
                    return (
                        SqlType(kind) if kind else SqlType("nvarchar" if column.type == "nvarchar" else "int")
                    )
        return None

    def _comparable_columns(self) -> str:
        """BINARY_CHECKSUM(*)/CHECKSUM(*): every column but text, ntext, image and xml."""
        names = []
        for source in self.sources:
            skip = {
                n.lower()
                for n, sqltype, _, _ in (source.table.columns if source.table else [])
                if sqltype.name in NONCOMPARABLE_TYPES
            }
            names += [
                f"{sql_ident(source.alias)}.{sql_ident(c)}"
                for c, _ in source.columns
                if c.lower() not in skip
            ]
        return ", ".join(names)

    def _table_ref(self, toks: list[Token], i: int, out: list[str], is_update: bool) -> int:
        parts, i = _name_at(toks, i)
        if toks[i].is_op("(") and [p.lower() for p in parts[-2:]] == ["sys", "dm_db_log_stats"]:
            return self._log_stats_ref(toks, i, out)
        alias = parts[-1]
        if toks[i].is_word("AS"):
            i += 1
        if toks[i].kind in ("word", "qident") and toks[i].upper not in NOT_ALIAS and toks[i].kind != "eof":
            if not (toks[i].kind == "word" and toks[i].upper in ("SET",)):
                alias = toks[i].value
                i += 1
        if toks[i].is_word("WITH") and toks[i + 1].is_op("("):
            i = _matching(toks, i + 1) + 1  # table hints such as WITH (NOLOCK)
        ref, columns, table = self._resolve(parts)
        self.sources.append(Source(alias, columns, table))
        if self.write and self.write_table is table and (is_update or alias == parts[-1]):
            out.append(ref)  # UPDATE/DELETE/INSERT target: SQLite does not take an alias there
        else:
            out.append(f"{ref} AS {sql_ident(alias)}")
        return i

    def _log_stats_ref(self, toks: list[Token], i: int, out: list[str]) -> int:
        """``sys.dm_db_log_stats(database_id)``: a table-valued function (SQL Server 2016 SP2 and later)."""
        from sandbox.mssql.engine.catalog import LOG_STATS_COLUMNS, log_stats_rows
        from sandbox.mssql.engine.parser import Parser

        if self.inst.version_tuple < (13, 0, 5026):
            raise errors.invalid_object("sys.dm_db_log_stats")
        close = _matching(toks, i)
        parser = Parser("", list(toks[i + 1 : close]) + [Token("eof", "", "", 0)])
        database_id = self.ex.eval(parser.expr())
        table = f"cv{len(self.views)}"
        self.views[("dm_db_log_stats", str(database_id))] = table
        conn = self._connection()
        conn.execute(f"CREATE TEMP TABLE {table} ({', '.join(sql_ident(c.name) for c in LOG_STATS_COLUMNS)})")
        rows = [tuple(storage_value(v) for v in row) for row in log_stats_rows(self.inst, database_id)]
        if rows:
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(LOG_STATS_COLUMNS))})", rows)
        i = close + 1
        alias = "dm_db_log_stats"
        if toks[i].is_word("AS"):
            i += 1
        if toks[i].kind in ("word", "qident") and toks[i].upper not in NOT_ALIAS:
            alias = toks[i].value
            i += 1
        self.sources.append(Source(alias, [(c.name, c) for c in LOG_STATS_COLUMNS], None))
        out.append(f"temp.{table} AS {sql_ident(alias)}")
        return i

    def _resolve(self, parts: list[str]) -> tuple[str, list[tuple[str, Column]], TableInfo | None]:
        if len(parts) > 3:
            raise unsupported("four-part (linked server) name " + ".".join(parts))
        db_name = parts[-3] if len(parts) == 3 and parts[-3] else self.ex.session.database
        schema = parts[-2] if len(parts) >= 2 and parts[-2] else "dbo"
        name = parts[-1]
        db = self.ex.open_database(db_name)
        if schema.lower() == "sys" and name.lower() in VIEWS:
            if self.write:
                raise SqlError(259, 16, 1, "Ad hoc updates to system catalogs are not allowed.")
            return self._view(name.lower(), db)
        table = db.find_table(schema, name)
        if table is None:
            raise errors.invalid_object(".".join(p for p in parts))
        target = self.write and (self.write_table is None or self.write_table is table)
        permission = (
            self.statement if target and self.statement in ("INSERT", "UPDATE", "DELETE") else "SELECT"
        )
        security.check_object(self.inst, self.ex.session, db, table.schema, table.name, permission)
        columns = [(c, column_for(c, t, nullable)) for c, t, nullable, _ in table.columns]
        if self.write:
            if self.write_db is not None and self.write_db is not db:
                raise unsupported("a write that touches two databases")
            if self.write_db is None:
                self.write_db, self.write_table = db, table
            return sql_ident(table.sqlite_name), columns, table
        return f"{self._attach(db)}.{sql_ident(table.sqlite_name)}", columns, table

    def _connection(self) -> sqlite3.Connection:
        if self.conn is None:
            self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            register_common(self.conn)
            self.ex.register_session_functions(self.conn)
        return self.conn

    def _attach(self, db: Database) -> str:
        key = db.name.lower()
        if key not in self.attached:
            alias = f"d{len(self.attached)}"
            self._connection().execute(f"ATTACH DATABASE ? AS {alias}", (str(db.path),))
            self.attached[key] = (alias, db)
        return self.attached[key][0]

    def _view(self, view: str, db: Database) -> tuple[str, list[tuple[str, Column]], None]:
        key = (view, db.name.lower())
        columns, rows_fn = VIEWS[view]
        if key not in self.views:
            table = f"cv{len(self.views)}"
            defs = ", ".join(
                f"{sql_ident(c.name)} {'TEXT COLLATE NOCASE' if c.type == 'nvarchar' else ''}"
                for c in columns
            )
            conn = self._connection()
            conn.execute(f"CREATE TEMP TABLE {table} ({defs})")
            rows = [tuple(storage_value(v) for v in row) for row in rows_fn(self.inst, self.ex.session, db)]
            if rows:
                marks = ", ".join("?" * len(columns))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
            self.views[key] = table
        return f"temp.{self.views[key]}", [(c.name, c) for c in columns], None

    # -- result typing -------------------------------------------------------------------------
    def _select_item_types(self, toks: list[Token]) -> list:
        i = 1
        if toks[i].is_word("DISTINCT", "ALL"):
            i += 1
        if toks[i].is_word("TOP"):
            i = _matching(toks, i + 1) + 1 if toks[i + 1].is_op("(") else i + 2
        end = _find_top_level(toks, i, len(toks) - 1, "FROM", missing_ok=True)
        end = len(toks) - 1 if end < 0 else end
        items, start = [], i
        while start < end:
            comma = _find_top_level(toks, start, end, ",", missing_ok=True)
            stop = end if comma < 0 else comma
            items.append(self._item_type(toks[start:stop]))
            start = stop + 1
        return items

    def _item_type(self, item: list[Token]):
        if item and item[-1].is_op("*"):
            wanted = item[0].value.lower() if len(item) > 1 else None
            return [c for s in self.sources if wanted in (None, s.alias.lower()) for _, c in s.columns]
        if len(item) >= 2 and (
            item[-2].is_word("AS") or (item[-1].kind in ("word", "qident", "str") and not item[-2].is_op("."))
        ):
            alias = item[-1].value
            item = item[:-2] if item[-2].is_word("AS") else item[:-1]
        else:
            alias = None
        column = self._expr_type(item)
        if column is not None and alias is not None:
            column = Column(alias, column.type, column.precision, column.scale, column.size, column.nullable)
        return column

    def _expr_type(self, item: list[Token]) -> Column | None:
        if not item:
            return None
        head = item[0].upper if item[0].kind == "word" else ""
        if len(item) > 1 and item[1].is_op("(") and _matching(item, 1) == len(item) - 1:
            if head == "CAST":
                as_index = _find_top_level(item, 2, len(item) - 1, "AS")
                return column_for("", _type_from(item, as_index + 1, len(item) - 1))
            if head == "CONVERT":
                return column_for("", _type_from(item, 2, _find_top_level(item, 2, len(item) - 1, ",")))
            if head == "COUNT_BIG":
                return Column("", "bigint")
            if head == "COUNT":
                return Column("", "int")
            if head in ("CHECKSUM_AGG", "BINARY_CHECKSUM", "CHECKSUM"):
                return Column("", "int")
            if head in ("MAX", "MIN"):
                return self._expr_type(item[2:-1])
            if head in ("GETDATE", "GETUTCDATE"):
                return Column("", "datetime")
            if head in ("SYSDATETIME", "SYSUTCDATETIME"):
                return Column("", "datetime2", scale=7)
            if head == "DATEADD":  # the type of its date argument
                first = _find_top_level(item, 2, len(item) - 1, ",")
                second = _find_top_level(item, first + 1, len(item) - 1, ",")
                return self._expr_type(item[second + 1 : -1]) or Column("", "datetime")
        if head == "CASE" and item[-1].is_word("END"):
            # The result type comes from the THEN/ELSE expressions (the first typed one here).
            then = _find_top_level(item, 1, len(item), "THEN", missing_ok=True)
            while then != -1:
                stop = min(
                    (
                        j
                        for w in ("WHEN", "ELSE", "END")
                        if (j := _find_top_level(item, then + 1, len(item), w, True)) != -1
                    ),
                    default=len(item) - 1,
                )
                column = self._expr_type(item[then + 1 : stop])
                if column is not None:
                    return column
                then = _find_top_level(item, stop, len(item), "THEN", missing_ok=True)
            return None
        if all(t.kind in ("word", "qident") or t.is_op(".") for t in item):
            parts = [t.value for t in item if not t.is_op(".")]
            return self._column_type(parts)
        return None

    def _column_type(self, parts: list[str]) -> Column | None:
        name = parts[-1].lower()
        alias = parts[-2].lower() if len(parts) > 1 else None
        for source in self.sources:
            if alias is not None and source.alias.lower() != alias:
                continue
            for col_name, column in source.columns:
                if col_name.lower() == name:
                    return column
        return None


def run_select(ex: Executor, toks: list[Token]) -> ResultSet:
    scalar = _scalar_select(ex, toks)
    if scalar is not None:
        return scalar
    translator = Translator(ex, write=False)
    trans = translator.translate(toks)
    conn = translator._connection()
    try:
        cursor = conn.execute(trans.sql, trans.params)
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description or []]
    except sqlite3.Error as e:
        raise map_sqlite_error(e, toks) from e
    finally:
        conn.close()
    columns = _result_columns(names, rows, trans.item_types)
    return ResultSet(
        columns, [tuple(from_storage(v, c) for v, c in zip(row, columns, strict=True)) for row in rows]
    )


def _scalar_select(ex: Executor, toks: list[Token]) -> ResultSet | None:
    """A SELECT without FROM is evaluated by the T-SQL expression evaluator (string ``+``, variables)."""
    from sandbox.mssql.engine.parser import Parser

    words = {t.upper for t in toks if t.kind == "word"}
    if not toks or not toks[0].is_word("SELECT") or words & {"FROM", "UNION", "TOP", "DISTINCT", "INTO"}:
        return None
    if any(t.is_op("*") and i + 1 < len(toks) and toks[i + 1].kind == "eof" for i, t in enumerate(toks)):
        return None
    parser = Parser("", [t for t in toks if not t.is_op(";")] + [Token("eof", "", "", 0)])
    parser.next()
    names, values, declared = [], [], []
    while True:
        node = parser.expr()
        declared.append(column_for("", node[2]) if node[0] == "cast" else None)
        values.append(ex.eval(node))
        alias = ""
        if (
            parser.accept_word("AS")
            or parser.peek().kind in ("qident", "str")
            or (parser.peek().kind == "word" and parser.peek().upper not in NOT_ALIAS)
        ):
            alias = parser.next().value
        names.append(alias)
        if not parser.accept_op(","):
            break
    if parser.peek().kind != "eof":
        return None
    columns = [
        Column(name, c.type, c.precision, c.scale, c.size) if c is not None else infer_column(name, [value])
        for name, value, c in zip(names, values, declared, strict=True)
    ]
    return ResultSet(columns, [tuple(values)])


def _result_columns(names: list[str], rows: list[tuple], item_types: list) -> list[Column]:
    declared: list[Column | None] = []
    for item in item_types:
        declared.extend(item if isinstance(item, list) else [item])
    if len(declared) != len(names):
        declared = [None] * len(names)
    columns = []
    for index, (name, column) in enumerate(zip(names, declared, strict=True)):
        if column is None:
            column = infer_column(name, [row[index] for row in rows])
        columns.append(
            Column(name, column.type, column.precision, column.scale, column.size, column.nullable)
        )
    return columns


def map_sqlite_error(e: sqlite3.Error, toks: list[Token]) -> SqlError:
    text = str(e)
    if "user-defined function raised exception" in text:
        raised = functions.take_function_error()
        if raised is not None:
            return raised
    if text.startswith("no such column:"):
        return SqlError(207, 16, 1, f"Invalid column name '{text.split(':', 1)[1].strip().split('.')[-1]}'.")
    if text.startswith("no such table:"):
        return errors.invalid_object(text.split(":", 1)[1].strip())
    if "UNIQUE constraint failed" in text:
        return SqlError(2627, 14, 1, "Violation of PRIMARY KEY constraint. Cannot insert duplicate key.")
    if "NOT NULL constraint failed" in text:
        column = text.split(".")[-1]
        return SqlError(
            515,
            16,
            2,
            f"Cannot insert the value NULL into column '{column}'; column does not allow "
            "nulls. INSERT fails.",
        )
    if "syntax error" in text or "near" in text:
        return SqlError(102, 15, 1, f"Incorrect syntax ({text}) in '{_snippet(toks)}'.")
    return SqlError(50000, 16, 1, f"sandbox: SQLite could not run '{_snippet(toks)}': {text}")


def _snippet(toks: list[Token]) -> str:
    text = " ".join(t.text for t in toks[:20])
    return text if len(toks) <= 20 else text + " ..."


def _matching(toks: list[Token], open_index: int) -> int:
    depth = 0
    for j in range(open_index, len(toks)):
        if toks[j].is_op("("):
            depth += 1
        elif toks[j].is_op(")"):
            depth -= 1
            if depth == 0:
                return j
    raise syntax_error(toks[-1])


def _find_top_level(toks: list[Token], start: int, end: int, what: str, missing_ok: bool = False) -> int:
    depth = 0
    for j in range(start, end):
        tok = toks[j]
        if tok.is_op("("):
            depth += 1
        elif tok.is_op(")"):
            depth -= 1
        elif depth == 0 and (tok.is_op(what) or tok.is_word(what)):
            return j
    if missing_ok:
        return -1
    raise syntax_error(toks[min(end, len(toks) - 1)])


def _type_from(toks: list[Token], start: int, end: int) -> SqlType:
    from sandbox.mssql.engine.parser import Parser

    sub = toks[start:end] + [Token("eof", "", "", 0)]
    return Parser("", sub).sql_type()


def _chain_end(toks: list[Token], i: int) -> int:
    """End (exclusive) of a dotted name starting at ``toks[i]``."""
    while toks[i].kind in ("word", "qident"):
        i += 1
        if not toks[i].is_op("."):
            return i
        i += 1
    return i


def _chain(toks: list[Token], start: int, end: int) -> list[str] | None:
    """The parts of a dotted column name filling ``toks[start:end]`` exactly, else None."""
    if end <= start or end - start > 7:
        return None
    parts = []
    for offset, tok in enumerate(toks[start:end]):
        if (
            offset % 2 == 0
            and tok.kind in ("word", "qident")
            and not (tok.kind == "word" and tok.upper in NOT_ALIAS)
        ):
            parts.append(tok.value)
        elif offset % 2 == 1 and tok.is_op("."):
            continue
        else:
            return None
    return parts if (end - start) % 2 == 1 else None


def _chain_before(toks: list[Token], end: int) -> list[str] | None:
    """The dotted name ending just before ``toks[end]``."""
    start = end - 1
    while start - 2 >= 0 and toks[start - 1].is_op(".") and toks[start - 2].kind in ("word", "qident"):
        start -= 2
    if start < 0 or (start > 0 and toks[start - 1].is_op(".")):
        return None
    return _chain(toks, start, end)


def _name_at(toks: list[Token], i: int) -> tuple[list[str], int]:
    parts: list[str] = []
    while True:
        if toks[i].is_op("."):
            parts.append("")
        else:
            parts.append(toks[i].value)
            i += 1
        if not toks[i].is_op("."):
            return parts, i
        i += 1
