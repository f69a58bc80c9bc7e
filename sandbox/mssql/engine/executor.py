"""Runs a parsed batch for one session: variables, control flow, EXEC, and dispatch to the engine."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from sandbox.mssql.engine import admin, backup, datefuncs, errors, functions, language, security, servertime
from sandbox.mssql.engine.lexer import Token
from sandbox.mssql.engine.parser import Parser, SqlType, Stmt, parse_batch, unsupported
from sandbox.mssql.engine.query import Translator, map_sqlite_error, run_select
from sandbox.mssql.engine.types import check_type, coerce
from sandbox.mssql.results import Done, EnvChange, Message, SqlError

if TYPE_CHECKING:
    from sandbox.mssql.engine.database import Database
    from sandbox.mssql.engine.instance import Instance, Session

COMMANDS = {
    "query": "SELECT",
    "dml": "UPDATE",
    "backup": "BACKUP DATABASE",
    "restore": "RESTORE DATABASE",
    "dbcc_checkdb": "DBCC TABLE CHECK",
    "alter_database": "ALTER DATABASE",
    "create_table": "CREATE TABLE",
    "waitfor": "WAITFOR",
}


class _Return(Exception):
    """RETURN: leave the batch quietly."""


class Executor:
    def __init__(self, inst: Instance, session: Session, emit, cancel):
        self.inst = inst
        self.session = session
        self.emit = emit
        self.cancel = cancel
        self.scope: dict[str, list] = {}

    # -- batch ---------------------------------------------------------------------------------
    def run_batch(self, text: str) -> None:
        stmts = parse_batch(text)
        with servertime.bound(self.inst.now):  # GETDATE() & co. read this instance's clock
            try:
                self.run_list(stmts)
            except _Return:
                pass

    def run_list(self, stmts: list[Stmt]) -> None:
        for stmt in stmts:
            self.run(stmt)

    def run(self, stmt: Stmt) -> None:
        if self.cancel.is_set():
            raise errors.cancelled()
        if self.session.killed:
            raise self.inst.kill_error()
        command = COMMANDS.get(stmt.kind)
        if command:
            self.session.request = {
                "command": command,
                "start_time": self.inst.local_now(),
                "percent_complete": 0.0,
                "database_id": self.inst.database_id_of(self.session.database),
            }
        getattr(self, "_" + stmt.kind)(stmt)

    # -- variables -----------------------------------------------------------------------------
    def get_var(self, name: str):
        entry = self.scope.get(name.lower())
        if entry is None:
            raise SqlError(137, 15, 2, f'Must declare the scalar variable "{name}".')
        return entry[1]

    def set_var(self, name: str, value, source: str = "varchar") -> None:
        entry = self.scope.get(name.lower())
        if entry is None:
            raise SqlError(137, 15, 1, f'Must declare the scalar variable "{name}".')
        entry[1] = coerce(value, entry[0], self.session.dateformat, source)

    def var_type(self, name: str) -> SqlType | None:
        entry = self.scope.get(name.lower())
        return entry[0] if entry else None

    def string_source(self, node) -> str:
        """'nvarchar' or 'varchar': the type a string expression has (for conversion error texts)."""
        if node[0] == "lit" and len(node) > 2:
            return node[2]
        if node[0] == "var":
            sqltype = self.var_type(node[1])
            if sqltype is not None and sqltype.name in ("varchar", "char", "text"):
                return "varchar"
        return "nvarchar" if node[0] in ("var", "func") else "varchar"

    def declare(self, name: str, sqltype: SqlType, value=None, source: str = "varchar") -> None:
        if name.lower() in self.scope:
            raise SqlError(
                134,
                15,
                1,
                f"The variable name '{name}' has already been declared. Variable names "
                "must be unique within a query batch or stored procedure.",
            )
        check_type(sqltype)
        self.scope[name.lower()] = [sqltype, coerce(value, sqltype, self.session.dateformat, source)]

    def sysvar(self, name: str):
        s = self.session
        values = {
            "@@SPID": s.spid,
            "@@SERVERNAME": self.inst.name,
            "@@VERSION": self.inst.version_string(),
            "@@TRANCOUNT": s.tran_count,
            "@@ROWCOUNT": s.rowcount,
            "@@ERROR": 0,
            "@@IDENTITY": s.identity,
            "@@LANGUAGE": s.language,
            "@@DATEFIRST": s.datefirst,
            "@@SERVICENAME": "MSSQLSERVER",
            "@@MAX_PRECISION": 38,
            "@@TEXTSIZE": 2147483647,
            "@@LOCK_TIMEOUT": -1,
            "@@OPTIONS": 5496,
        }
        if name not in values:
            raise unsupported(name)
        return values[name]

    # -- simple statements ---------------------------------------------------------------------
    def _declare(self, stmt: Stmt) -> None:
        for name, sqltype, init in stmt.args["decls"]:
            if init is None:
                self.declare(name, sqltype)
            else:
                self.declare(name, sqltype, self.eval(init), self.string_source(init))

    def _set_var(self, stmt: Stmt) -> None:
        self._assign(stmt.args["name"], stmt.args["op"], stmt.args["expr"])

    def _assign(self, name: str, op: str, expr) -> None:
        value = self.eval(expr)
        if op != "=":
            value = self.binary(op[0], self.get_var(name), value)
        self.set_var(name, value, self.string_source(expr))

    def _select_assign(self, stmt: Stmt) -> None:
        for name, op, expr in stmt.args["assigns"]:
            self._assign(name, op, expr)
        self.session.rowcount = 1

    def _set_option(self, stmt: Stmt) -> None:
        """Session SET options: LANGUAGE, DATEFORMAT and DATEFIRST change the session; NOCOUNT, ANSI_*,
        TEXTSIZE, ISOLATION LEVEL... are accepted."""
        words = [t.upper for t in stmt.tokens if t.kind == "word"]
        option = stmt.tokens[1].upper if len(stmt.tokens) > 2 and stmt.tokens[1].kind == "word" else ""
        if option in ("LANGUAGE", "DATEFORMAT", "DATEFIRST"):
            self._set_session_option(option, stmt.tokens[2])
            return
        if len(words) > 1 and words[1] in (
            "IDENTITY_INSERT",
            "SHOWPLAN_XML",
            "STATISTICS",
            "PARSEONLY",
            "NOEXEC",
            "FMTONLY",
        ):
            raise unsupported(stmt.text)

    def _set_session_option(self, option: str, tok: Token) -> None:
        value = self.get_var(tok.value) if tok.kind == "var" else tok.value
        session = self.session
        if option == "LANGUAGE":
            lang = language.find_language(value)
            if lang is None:
                raise language.unknown_language(str(value))
            old = session.language
            session.set_language(lang)
            self.emit(EnvChange("language", lang.name, old))
            self.emit(Message(5703, 0, 1, f"Changed language setting to {lang.name}.", server=self.inst.name))
        elif option == "DATEFORMAT":
            session.dateformat = language.check_dateformat(value)
        else:
            try:
                first = int(value)
            except (TypeError, ValueError):
                first = 0
            if not 1 <= first <= 7:
                raise SqlError(2742, 16, 1, f"SET DATEFIRST {value} is out of range.")
            session.datefirst = first

    def _query(self, stmt: Stmt) -> None:
        result = run_select(self, stmt.tokens)
        self.session.rowcount = len(result.rows)
        self.emit(result)
        self.emit(Done(len(result.rows)))

    def _dml(self, stmt: Stmt) -> None:
        toks = stmt.tokens
        if toks[0].is_word("TRUNCATE"):
            toks = [Token("word", "DELETE", "DELETE", 0), Token("word", "FROM", "FROM", 0)] + toks[2:]
        if toks[0].is_word("MERGE"):
            raise unsupported(stmt.text)
        translator = Translator(self, write=True)
        trans = translator.translate(toks)
        if trans.write_db is None:
            raise unsupported(stmt.text)
        try:
            rowcount = self.inst.write(
                self.session, trans.write_db, lambda: [(trans.sql, trans.params)], self.cancel
            )
        except Exception as e:
            import sqlite3

            if isinstance(e, sqlite3.Error):
                raise map_sqlite_error(e, toks) from e
            raise
        self.session.rowcount = rowcount
        self.emit(Done(rowcount))

    def _use(self, stmt: Stmt) -> None:
        self.use(stmt.args["name"])

    def use(self, name: str) -> None:
        db = self.inst.check_access(self.session, name)
        old = self.session.database
        self.session.database = db.name
        self.emit(EnvChange("database", db.name, old))
        self.emit(Message(5701, 0, 2, f"Changed database context to '{db.name}'.", server=self.inst.name))

    def _if(self, stmt: Stmt) -> None:
        if self.truth(self.eval(stmt.args["cond"])):
            self.run(stmt.args["then"])
        elif stmt.args["else"] is not None:
            self.run(stmt.args["else"])

    def _while(self, stmt: Stmt) -> None:
        while self.truth(self.eval(stmt.args["cond"])):
            if self.cancel.is_set():
                raise errors.cancelled()
            self.run(stmt.args["body"])

    def _block(self, stmt: Stmt) -> None:
        self.run_list(stmt.args["body"])

    def _begin_tran(self, stmt: Stmt) -> None:
        self.inst.begin_transaction(self.session)

    def _commit(self, stmt: Stmt) -> None:
        if self.session.tran_count == 0:
            raise SqlError(
                3902, 16, 1, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION."
            )
        self.inst.commit(self.session)

    def _rollback(self, stmt: Stmt) -> None:
        if self.session.tran_count == 0:
            raise SqlError(
                3903, 16, 1, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION."
            )
        self.inst.rollback(self.session)

    def _print(self, stmt: Stmt) -> None:
        value = self.eval(stmt.args["expr"])
        self.emit(Message(0, 0, 1, "" if value is None else str(value), server=self.inst.name))

    def _throw(self, stmt: Stmt) -> None:
        number = int(self.eval(stmt.args["number"]))
        raise SqlError(number, 16, int(self.eval(stmt.args["state"])), str(self.eval(stmt.args["message"])))

    def _raiserror(self, stmt: Stmt) -> None:
        args = [self.eval(a) for a in stmt.args["args"]]
        message, severity, state = args[0], int(args[1]), int(args[2])
        number = 50000
        if isinstance(message, int):
            number, message = message, f"Error {message}"
        text = _printf(str(message), args[3:])
        if severity <= 10:
            self.emit(Message(number, severity, state, text, server=self.inst.name))
        else:
            raise SqlError(number, severity, state, text)

    def _waitfor(self, stmt: Stmt) -> None:
        value = str(self.eval(stmt.args["expr"]))
        parts = [float(p) for p in value.split(":")]
        seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.cancel.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                raise errors.cancelled()

    def _return(self, stmt: Stmt) -> None:
        raise _Return()

    def _checkpoint(self, stmt: Stmt) -> None:
        self.inst.checkpoint(self.inst.database(self.session.database))

    def _kill(self, stmt: Stmt) -> None:
        self.inst.kill(self.session, stmt.args["spid"])

    # -- EXEC ----------------------------------------------------------------------------------
    def _exec_dynamic(self, stmt: Stmt) -> None:
        sql = self.eval(stmt.args["expr"])
        if sql is not None:
            self.run_nested(str(sql), {}, None)

    def _exec_proc(self, stmt: Stmt) -> None:
        kind, value = stmt.args["proc"]
        name = self.get_var(value) if kind == "var" else value
        if name is None:
            return
        parts = Parser(str(name)).name_parts() if kind == "var" else str(name).split(".")
        proc = parts[-1].lower()
        database = parts[-3] if len(parts) >= 3 and parts[-3] else None
        if proc in ("sp_getapplock", "sp_releaseapplock"):
            status = self._applock(proc, stmt.args["args"], database)
            if stmt.args.get("status_var"):
                self.set_var(stmt.args["status_var"], status, "int")
            return
        if proc != "sp_executesql":
            raise SqlError(2812, 16, 62, f"Could not find stored procedure '{name}'.")
        args = stmt.args["args"]
        if not args:
            raise SqlError(
                201,
                16,
                4,
                "Procedure or function 'sp_executesql' expects parameter '@statement', "
                "which was not supplied.",
            )
        sql = self.eval(args[0][1])
        params = self._sp_params(args[1:])
        if sql is not None:
            self.run_nested(str(sql), params, database)

    def _applock(self, proc: str, args: list, database: str | None) -> int:
        """sp_getapplock / sp_releaseapplock with session-owned locks; returns the status code.

        Status codes as documented: 0 granted at once, 1 granted after waiting, -1 timed out,
        -999 parameter error (or, on release, a lock this session does not hold). A lock owned by a
        session ends with the session, like SQL Server's.
        """
        names = ("@resource", "@lockmode", "@lockowner", "@locktimeout", "@dbprincipal")
        given = {}
        for index, (pname, expr, _) in enumerate(args):
            key = (pname or names[index]).lower()
            given[key] = self.eval(expr)
        resource = given.get("@resource")
        owner = str(given.get("@lockowner") or "Transaction").lower()
        if not resource or len(str(resource)) > 255:
            return -999
        if owner != "session":
            return -999  # transaction-owned locks are not simulated: the product holds session locks
        db = (database or self.session.database).lower()
        if proc == "sp_releaseapplock":
            return 0 if self.inst.release_applock(self.session, db, str(resource)) else -999
        mode = str(given.get("@lockmode") or "").lower()
        if mode not in ("exclusive", "shared"):
            return -999
        timeout_ms = given.get("@locktimeout")
        timeout = None if timeout_ms is None or int(timeout_ms) < 0 else int(timeout_ms) / 1000
        return self.inst.get_applock(self.session, db, str(resource), mode, timeout, self.cancel)

    def _sp_params(self, args: list) -> dict[str, tuple[SqlType, object, str]]:
        if not args:
            return {}
        definition = self.eval(args[0][1]) or ""
        declared: list[tuple[str, SqlType]] = []
        parser = Parser(str(definition))
        while parser.peek().kind == "var":
            pname = parser.next().value
            sqltype = parser.sql_type()
            parser.accept_word("OUTPUT", "OUT")
            declared.append((pname, sqltype))
            if not parser.accept_op(","):
                break
        values: dict[str, tuple[SqlType, object, str]] = {}
        for index, (pname, expr, _) in enumerate(args[1:]):
            if pname is None:
                if index >= len(declared):
                    raise SqlError(8144, 16, 2, "Procedure or function has too many arguments specified.")
                pname = declared[index][0]
            sqltype = next((t for n, t in declared if n.lower() == pname.lower()), None)
            if sqltype is None:
                raise SqlError(8145, 16, 2, f"{pname} is not a parameter for procedure sp_executesql.")
            values[pname] = (sqltype, self.eval(expr), self.string_source(expr))
        return values

    def run_nested(self, sql: str, params: dict, database: str | None) -> None:
        """Dynamic SQL: its own variable scope; a USE inside it ends with it (as in SQL Server)."""
        saved_db = self.session.database
        if database is not None:
            self.session.database = self.inst.check_access(self.session, database).name
        nested = Executor(self.inst, self.session, self.emit, self.cancel)
        for pname, (sqltype, value, source) in params.items():
            nested.declare(pname, sqltype, value, source)
        try:
            nested.run_batch(sql)
        finally:
            if self.session.database != saved_db and self.inst.find_database(saved_db) is not None:
                self.session.database = saved_db

    # -- engine statements ---------------------------------------------------------------------
    def db_name_of(self, target) -> str:
        kind, value = target
        if kind == "var":
            name = self.get_var(value)
        elif kind == "dbid":
            db = self.inst.database_by_id(value)
            if db is None:
                raise SqlError(2520, 16, 1, f"Could not find database ID {value}, name '{value}'.")
            name = db.name
        else:
            name = value
        if name is None or str(name) == "":
            raise SqlError(102, 15, 1, "Incorrect syntax: the database name is NULL or empty.")
        return str(name)

    def _backup(self, stmt: Stmt) -> None:
        command = "BACKUP " + stmt.args["kind"]
        self.session.request["command"] = command
        name = self.db_name_of(stmt.args["target"])
        db = self.inst.find_database(name)
        if db is not None:
            self._refuse_as(
                command, lambda: security.check_backup(self.inst, self.session, db, stmt.args["kind"])
            )
        backup.run_backup_statement(self, name, stmt.args)

    def _restore(self, stmt: Stmt) -> None:
        what = stmt.args["what"]
        if what not in ("DATABASE", "LOG"):
            backup.run_restore_statement(self, stmt.args)
            return
        name = self.db_name_of(stmt.args["target"])
        existing = self.inst.find_database(name)
        self._refuse_as(
            "RESTORE " + what, lambda: security.check_restore(self.inst, self.session, name, existing)
        )
        backup.run_restore_statement(self, stmt.args)
        created = self.inst.find_database(name)
        if existing is None and created is not None:
            created.owner = self.session.login  # the restoring login owns a database RESTORE created

    def _refuse_as(self, statement: str, check) -> None:
        """A permission refusal of BACKUP/RESTORE: the reason as a message, then 3013 (as SQL Server)."""
        try:
            check()
        except SqlError as e:
            self.emit(Message(e.number, e.severity, e.state, e.message, server=self.inst.name))
            raise errors.terminating(statement) from e

    def _dbcc_checkdb(self, stmt: Stmt) -> None:
        target = stmt.args["target"]
        name = self.session.database if target is None else self.db_name_of(target)
        admin.run_checkdb(self, name, [o for o, _ in stmt.args["options"]])

    def _alter_database(self, stmt: Stmt) -> None:
        admin.alter_database(self, stmt.args)

    def _alter_role(self, stmt: Stmt) -> None:
        db = self.inst.database(self.session.database)
        security.alter_role_member(
            self.inst, self.session, db, stmt.args["role"], stmt.args["member"], stmt.args["add"]
        )

    def _alter_server_role(self, stmt: Stmt) -> None:
        args = stmt.args
        security.alter_server_role_member(self.inst, self.session, args["role"], args["member"], args["add"])

    def _create_database(self, stmt: Stmt) -> None:
        if self.session.in_transaction:
            raise SqlError(
                226, 16, 6, "CREATE DATABASE statement not allowed within multi-statement transaction."
            )
        security.check_create_database(self.inst, self.session)
        self.inst.create_database(stmt.args["name"]).owner = self.session.login

    def _drop_database(self, stmt: Stmt) -> None:
        for parts in stmt.args["names"]:
            name = parts[-1]
            db = self.inst.find_database(name)
            if db is not None and not security.may_drop_database(self.inst, self.session, db):
                db = None  # SQL Server answers as if it did not exist
            if db is None:
                if stmt.args["if_exists"]:
                    continue
                raise SqlError(
                    3701,
                    11,
                    1,
                    f"Cannot drop the database '{name}', because it does not exist or "
                    "you do not have permission.",
                )
            self.inst.drop_database(name, session=self.session)

    def _create_table(self, stmt: Stmt) -> None:
        admin.create_table(self, stmt.args)

    def _create_index(self, stmt: Stmt) -> None:
        admin.create_index(self, stmt.args)

    def _create_schema(self, stmt: Stmt) -> None:
        admin.create_schema(self, stmt.args["name"])

    def _drop_table(self, stmt: Stmt) -> None:
        admin.drop_tables(self, stmt.args["names"], stmt.args["if_exists"])

    def _drop_schema(self, stmt: Stmt) -> None:
        raise unsupported(stmt.text)

    def open_database(self, name: str) -> Database:
        return self.inst.check_access(self.session, name)

    # -- expressions ---------------------------------------------------------------------------
    @staticmethod
    def truth(value) -> bool:
        return bool(value) and value is not None

    def eval(self, node):
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "var":
            return self.get_var(node[1])
        if kind == "sysvar":
            return self.sysvar(node[1])
        if kind == "col":
            raise SqlError(207, 16, 1, f"Invalid column name '{node[1][-1]}'.")
        if kind == "func":
            return self.call(node[1], node[2])
        if kind == "cast":
            return self._cast(node)
        if kind == "bin":
            return self._binary_node(node)
        if kind == "not":
            value = self.eval(node[1])
            return None if value is None else not value
        if kind == "neg":
            value = self.eval(node[1])
            return None if value is None else -value
        if kind == "bitnot":
            value = self.eval(node[1])
            return None if value is None else ~value
        if kind == "isnull":
            return (self.eval(node[1]) is None) != node[2]
        if kind == "in":
            value = self.eval(node[1])
            found = any(_compare(value, self.eval(item)) == 0 for item in node[2])
            return found != node[3]
        if kind == "like":
            value, pattern = self.eval(node[1]), self.eval(node[2])
            if value is None or pattern is None:
                return None
            return bool(_like_regex(str(pattern)).fullmatch(str(value))) != node[3]
        if kind == "between":
            value, low, high = (self.eval(n) for n in node[1:4])
            result = _compare(value, low) >= 0 and _compare(value, high) <= 0
            return result != node[4]
        if kind == "case":
            return self._case(node)
        if kind in ("subquery", "exists", "in_query"):
            return self._subquery(node)
        raise unsupported(f"expression {kind}")

    def _cast(self, node):
        """CAST/CONVERT; a string read as a date follows the session's DATEFORMAT (or the CONVERT style)."""
        value = self.eval(node[1])
        style = self.eval(node[3]) if len(node) > 3 and node[3] is not None else None
        source = self.string_source(node[1])
        return _cast_value(value, node[2], self.session.dateformat, source, style)

    def _case(self, node):
        _, operand, whens, otherwise = node
        base = None if operand is None else self.eval(operand)
        for cond, result in whens:
            hit = _compare(base, self.eval(cond)) == 0 if operand is not None else self.truth(self.eval(cond))
            if hit:
                return self.eval(result)
        return None if otherwise is None else self.eval(otherwise)

    def _subquery(self, node):
        toks = list(node[2] if node[0] == "in_query" else node[1])
        result = run_select(self, toks + [Token("eof", "", "", 0)])
        if node[0] == "exists":
            return bool(result.rows)
        if node[0] == "in_query":
            value = self.eval(node[1])
            return any(_compare(value, row[0]) == 0 for row in result.rows) != node[3]
        if len(result.rows) > 1:
            raise SqlError(
                512,
                16,
                1,
                "Subquery returned more than 1 value. This is not permitted when the "
                "subquery follows =, !=, <, <= , >, >= or when the subquery is used as an expression.",
            )
        return result.rows[0][0] if result.rows else None

    def _binary_node(self, node):
        op = node[1]
        if op == "AND":
            left = self.eval(node[2])
            if left is not None and not left:
                return False
            right = self.eval(node[3])
            if right is not None and not right:
                return False
            return None if left is None or right is None else True
        if op == "OR":
            left = self.eval(node[2])
            if left:
                return True
            right = self.eval(node[3])
            if right:
                return True
            return None if left is None or right is None else False
        return self.binary(op, self.eval(node[2]), self.eval(node[3]))

    def binary(self, op: str, left, right):
        if left is None or right is None:
            return None
        if op in ("=", "<>", "!=", "<", ">", "<=", ">=", "!<", "!>"):
            left, right = self._date_operands(left, right)
            c = _compare(left, right)
            return {
                "=": c == 0,
                "<>": c != 0,
                "!=": c != 0,
                "<": c < 0,
                ">": c > 0,
                "<=": c <= 0,
                ">=": c >= 0,
                "!<": c >= 0,
                "!>": c <= 0,
            }[op]
        if op == "+" and (isinstance(left, str) or isinstance(right, str)):
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            left, right = _numeric(left), _numeric(right)
        if isinstance(left, bytes) and isinstance(right, bytes) and op == "+":
            return left + right
        left, right = _numeric(left), _numeric(right)
        if isinstance(left, Decimal) and isinstance(right, float) or isinstance(left, float):
            left, right = float(left), float(right)
        try:
            if op == "+":
                return left + right
            if op == "-":
                return left - right
            if op == "*":
                return left * right
            if op == "/":
                if isinstance(left, int) and isinstance(right, int):
                    return int(left / right)
                return left / right
            if op == "%":
                return left % right
            if op in ("&", "|", "^"):
                return {"&": left & right, "|": left | right, "^": left ^ right}[op]
        except ZeroDivisionError as e:
            raise SqlError(8134, 16, 1, "Divide by zero error encountered.") from e
        raise unsupported(f"operator {op}")

    def _date_operands(self, left, right):
        """A string compared with a date value is converted to a date under the session's DATEFORMAT."""
        if isinstance(left, dt.datetime) and isinstance(right, str):
            right = language.string_to_datetime(right, "datetime", self.session.dateformat)
        elif isinstance(right, dt.datetime) and isinstance(left, str):
            left = language.string_to_datetime(left, "datetime", self.session.dateformat)
        return left, right

    def call(self, name: str, args: list):
        if name in ("COALESCE", "ISNULL", "IIF"):
            return self._lazy_function(name, args)
        if name in datefuncs.FUNCTIONS and args and args[0][0] == "col" and len(args[0][1]) == 1:
            args = [("lit", args[0][1][0])] + list(args[1:])  # DATEADD(minute, ...): a keyword, not a column
        values = [self.eval(a) for a in args if a[0] != "star"]
        builtin = self.inst.builtin(name)
        if builtin is not None:
            return builtin(self.session, *values)
        simple = SCALARS.get(name)
        if simple is None:
            raise SqlError(195, 15, 10, f"'{name}' is not a recognized built-in function name.")
        return simple(*values)

    def _lazy_function(self, name: str, args: list):
        if name == "IIF":
            return self.eval(args[1]) if self.truth(self.eval(args[0])) else self.eval(args[2])
        for arg in args:
            value = self.eval(arg)
            if value is not None:
                return value
        return None

    def register_session_functions(self, conn) -> None:
        """Functions that depend on the instance/session, for SQLite queries."""
        for name, arity in (
            ("DB_ID", 0),
            ("DB_ID", 1),
            ("DB_NAME", 0),
            ("DB_NAME", 1),
            ("SERVERPROPERTY", 1),
            ("OBJECT_ID", 1),
            ("OBJECT_ID", 2),
            ("SCHEMA_NAME", 0),
            ("SCHEMA_NAME", 1),
            ("HOST_NAME", 0),
            ("APP_NAME", 0),
            ("DATABASEPROPERTYEX", 2),
            *((n, a) for n, arities in security.SQLITE_ARITIES.items() for a in arities),
        ):
            fn = self.inst.builtin(name)
            conn.create_function(name, arity, lambda *a, fn=fn: _storable(fn(self.session, *a)))
        for name in ("REPLICATE", "LEFT", "RIGHT", "CHARINDEX", "STR"):
            conn.create_function(name, -1, lambda *a, fn=SCALARS[name]: _storable(fn(*a)))


def _storable(value):
    from sandbox.mssql.engine.types import storage_value

    return storage_value(value)


def _cast_value(value, sqltype: SqlType, dateformat: str = "mdy", source: str = "varchar", style=None):
    check_type(sqltype)
    if value is None:
        return None
    result = coerce(value, sqltype, dateformat, source, None if style is None else int(style))
    if sqltype.name == "uniqueidentifier":
        return uuid.UUID(result)
    return result


def _numeric(value):
    if isinstance(value, (int, float, Decimal)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return Decimal(value)
            except ArithmeticError as e:
                raise SqlError(
                    245,
                    16,
                    1,
                    f"Conversion failed when converting the nvarchar value '{value}' to data type int.",
                ) from e
    return value


def _compare(left, right) -> int:
    if left is None or right is None:
        return 2  # unknown: never equal, never ordered
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.casefold().rstrip(" "), right.casefold().rstrip(" ")
    elif isinstance(left, str) or isinstance(right, str):
        left, right = _numeric(left), _numeric(right)
    if isinstance(left, uuid.UUID) or isinstance(right, uuid.UUID):
        left, right = str(left).upper(), str(right).upper()
    try:
        return (left > right) - (left < right)
    except TypeError:
        left, right = str(left), str(right)
        return (left > right) - (left < right)


def _like_regex(pattern: str) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _printf(message: str, args: list) -> str:
    values = iter(args)

    def repl(m: re.Match) -> str:
        if m.group(0) == "%%":
            return "%"
        try:
            return str(next(values))
        except StopIteration:
            return "(null)"

    return re.sub(r"%%|%[-+ 0#]*\d*(?:\.\d+)?[lh]?[dDiIoOsSuUxX]", repl, message)


def _substring(s, start, length):
    if s is None:
        return None
    begin = max(int(start) - 1, 0)
    end = int(start) - 1 + int(length)
    return s[begin : max(end, 0)]


SCALARS = {
    "GETDATE": lambda: functions.now_local().replace(
        microsecond=functions.now_local().microsecond // 1000 * 1000
    ),
    "CURRENT_TIMESTAMP": lambda: functions.now_local(),
    "SYSDATETIME": lambda: functions.now_local(),
    "GETUTCDATE": lambda: functions.now_utc(),
    "SYSUTCDATETIME": lambda: functions.now_utc(),
    "SYSDATETIMEOFFSET": lambda: functions.now_offset(),
    "DATEADD": datefuncs.dateadd,
    "DATEDIFF": datefuncs.datediff,
    "DATEPART": datefuncs.datepart,
    "NEWID": lambda: uuid.UUID(functions.new_guid()),
    "QUOTENAME": functions.quotename,
    "LEN": lambda s: None if s is None else len(str(s).rstrip(" ")),
    "DATALENGTH": functions._datalength,
    "UPPER": lambda s: None if s is None else str(s).upper(),
    "LOWER": lambda s: None if s is None else str(s).lower(),
    "LTRIM": lambda s: None if s is None else str(s).lstrip(" "),
    "RTRIM": lambda s: None if s is None else str(s).rstrip(" "),
    "TRIM": lambda s: None if s is None else str(s).strip(" "),
    "REPLACE": lambda s, a, b: (
        None if None in (s, a, b) else re.sub(re.escape(a), lambda _: b, s, flags=re.I)
    ),
    "SUBSTRING": _substring,
    "LEFT": lambda s, n: None if s is None else str(s)[: int(n)],
    "RIGHT": lambda s, n: None if s is None else (str(s)[-int(n) :] if int(n) > 0 else ""),
    "CHARINDEX": lambda a, b, start=1: (
        0 if None in (a, b) else str(b).lower().find(str(a).lower(), int(start) - 1) + 1
    ),
    "CONCAT": lambda *a: "".join("" if v is None else str(v) for v in a),
    "REPLICATE": lambda s, n: None if s is None else str(s) * int(n),
    "ABS": lambda v: None if v is None else abs(v),
    "NULLIF": lambda a, b: None if _compare(a, b) == 0 else a,
    "HASHBYTES": functions.hashbytes,
    "BINARY_CHECKSUM": functions.binary_checksum,
    "CHECKSUM": functions.checksum,
    "STR": lambda v: None if v is None else f"{v:>10}",
}
