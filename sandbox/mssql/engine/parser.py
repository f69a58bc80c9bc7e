"""T-SQL parser: a batch becomes a list of ``Stmt`` nodes; scalar expressions become tuples.

Expression nodes: ``("lit", v)`` (a string literal: ``("lit", v, "varchar"|"nvarchar")``), ``("var", "@x")``,
``("sysvar", "@@X")``, ``("col", parts)``, ``("func", NAME, args)``, ``("cast", expr, SqlType, style)`` (style: the
CONVERT style expression or None), ``("bin", op, a, b)``, ``("not", a)``,
``("neg", a)``, ``("isnull", a, negated)``, ``("in", a, items, negated)``, ``("like", a, b, negated)``,
``("between", a, lo, hi, negated)``, ``("case", operand, [(when, then)], else)``,
``("subquery", tokens)``, ``("exists", tokens)``.

SELECT/INSERT/UPDATE/DELETE are kept as token lists (``Stmt.tokens``): the query layer translates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.mssql.engine.lexer import Token, tokenize
from sandbox.mssql.results import SqlError

# Keywords that begin a new statement when seen at parenthesis depth 0 (T-SQL needs no semicolons).
STATEMENT_STARTS = frozenset(
    """SELECT INSERT UPDATE DELETE DECLARE SET EXEC EXECUTE IF ELSE BEGIN END COMMIT ROLLBACK PRINT THROW
    RAISERROR BACKUP RESTORE DBCC ALTER CREATE DROP USE WAITFOR RETURN CHECKPOINT TRUNCATE MERGE WHILE SAVE
    GO GRANT DENY REVOKE KILL""".split()
)
UNSUPPORTED = 40000


@dataclass
class SqlType:
    """A declared T-SQL type: ``name`` lower case; ``length`` -1 for MAX."""

    name: str
    length: int | None = None
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.length is not None:
            return f"{self.name}({'max' if self.length < 0 else self.length})"
        if self.precision is not None:
            return f"{self.name}({self.precision},{self.scale or 0})"
        return self.name


@dataclass
class Stmt:
    kind: str
    text: str
    args: dict = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)


def unsupported(text: str) -> SqlError:
    snippet = " ".join(text.split())
    if len(snippet) > 60:
        snippet = snippet[:57] + "..."
    return SqlError(UNSUPPORTED, 16, 1, f"sandbox: unsupported statement '{snippet}'")


def syntax_error(tok: Token) -> SqlError:
    near = tok.text or "end of batch"
    return SqlError(102, 15, 1, f"Incorrect syntax near '{near}'.")


def parse_batch(text: str) -> list[Stmt]:
    return Parser(text).parse_statements(until_end=False)


def parse_expression(text: str):
    p = Parser(text)
    expr = p.expr()
    if p.peek().kind != "eof":
        raise syntax_error(p.peek())
    return expr


class Parser:
    def __init__(self, text: str, tokens: list[Token] | None = None):
        self.text = text
        self.toks = tokens if tokens is not None else tokenize(text)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------------
    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def accept_word(self, *words: str) -> Token | None:
        if self.peek().is_word(*words):
            return self.next()
        return None

    def expect_word(self, *words: str) -> Token:
        tok = self.accept_word(*words)
        if tok is None:
            raise syntax_error(self.peek())
        return tok

    def accept_op(self, *ops: str) -> Token | None:
        if self.peek().is_op(*ops):
            return self.next()
        return None

    def expect_op(self, op: str) -> Token:
        tok = self.accept_op(op)
        if tok is None:
            raise syntax_error(self.peek())
        return tok

    def text_from(self, start: int) -> str:
        begin = self.toks[start].pos
        last = self.toks[max(start, self.i - 1)]
        return self.text[begin : last.pos + len(last.text)]

    # -- statements ----------------------------------------------------------------------------
    def parse_statements(self, until_end: bool) -> list[Stmt]:
        stmts: list[Stmt] = []
        while True:
            while self.accept_op(";"):
                pass
            tok = self.peek()
            if tok.kind == "eof":
                if until_end:
                    raise syntax_error(tok)
                return stmts
            if until_end and tok.is_word("END"):
                self.next()
                return stmts
            stmts.append(self.statement())

    def statement(self) -> Stmt:
        start = self.i
        tok = self.peek()
        if tok.kind != "word":
            raise syntax_error(tok)
        handler = getattr(self, "_st_" + tok.upper, None)
        if handler is None:
            self.collect()
            raise unsupported(self.text_from(start))
        stmt = handler()
        stmt.text = self.text_from(start)
        self.accept_op(";")
        return stmt

    def collect(self, kind: str | None = None) -> list[Token]:
        """Tokens up to the end of the current statement (``;`` or a statement keyword at depth 0)."""
        first = self.peek()
        head = first.upper if first.kind == "word" else ""
        toks: list[Token] = [self.next()]
        depth = case_depth = 0
        allow = {"SELECT"} if head in ("INSERT", "WITH") else set()
        if head == "UPDATE":
            allow = {"SET"}
        prev = first
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                break
            if depth == 0 and tok.is_op(";"):
                break
            if depth == 0 and tok.kind == "word" and tok.upper in STATEMENT_STARTS:
                word = tok.upper
                if word == "END" and case_depth > 0:
                    case_depth -= 1
                elif word == "ELSE" and case_depth > 0:
                    pass  # CASE ... ELSE ... END inside a query, not an IF's ELSE
                elif word == "SELECT" and prev.is_word("UNION", "ALL", "EXCEPT", "INTERSECT"):
                    pass
                elif word in allow:
                    allow.discard(word)
                else:
                    break
            if tok.is_word("CASE"):
                case_depth += 1
            elif tok.is_op("("):
                depth += 1
            elif tok.is_op(")"):
                depth -= 1
            toks.append(self.next())
            prev = tok
        return toks

    def _query(self, kind: str) -> Stmt:
        return Stmt(kind, "", tokens=self.collect())

    def _st_SELECT(self) -> Stmt:
        if self.peek(1).kind == "var" and self.peek(2).is_op("=", "+=", "-="):
            self.next()
            assigns = []
            while True:
                name = self.next().value
                op = self.next().value
                assigns.append((name, op, self.expr()))
                if not self.accept_op(","):
                    break
            if self.peek().is_word("FROM"):
                raise unsupported("SELECT @variable = ... FROM ...")
            return Stmt("select_assign", "", {"assigns": assigns})
        return self._query("query")

    def _st_WITH(self) -> Stmt:
        return self._query("query")

    def _st_INSERT(self) -> Stmt:
        return self._query("dml")

    _st_UPDATE = _st_INSERT
    _st_DELETE = _st_INSERT
    _st_TRUNCATE = _st_INSERT

    def _st_DECLARE(self) -> Stmt:
        self.next()
        decls = []
        while True:
            name = self.next()
            if name.kind != "var":
                raise syntax_error(name)
            self.accept_word("AS")
            if self.peek().is_word("TABLE", "CURSOR"):
                raise unsupported(f"DECLARE {name.value} {self.peek().value}")
            sqltype = self.sql_type()
            init = self.expr() if self.accept_op("=") else None
            decls.append((name.value, sqltype, init))
            if not self.accept_op(","):
                return Stmt("declare", "", {"decls": decls})

    def _st_SET(self) -> Stmt:
        if self.peek(1).kind == "var":
            self.next()
            name = self.next().value
            op = self.next()
            if not op.is_op("=", "+=", "-=", "*=", "/="):
                raise syntax_error(op)
            return Stmt("set_var", "", {"name": name, "op": op.value, "expr": self.expr()})
        toks = self.collect()
        return Stmt("set_option", "", tokens=toks)

    def _st_EXEC(self) -> Stmt:
        self.next()
        if self.accept_op("("):
            expr = self.expr()
            self.expect_op(")")
            self.accept_word("AS")  # EXEC (...) AS USER/LOGIN is not supported: fall through to syntax
            return Stmt("exec_dynamic", "", {"expr": expr})
        status_var = None
        if self.peek().kind == "var" and self.peek(1).is_op("="):
            status_var = self.next().value  # EXEC @return_status = proc ...
            self.next()
        if self.peek().kind == "var":
            proc = ("var", self.next().value)
        else:
            proc = ("lit", ".".join(self.name_parts()))
        args = []
        while self.peek().kind != "eof" and not self.peek().is_op(";"):
            if self.peek().kind == "word" and self.peek().upper in STATEMENT_STARTS:
                break
            pname = None
            if self.peek().kind == "var" and self.peek(1).is_op("="):
                pname = self.next().value
                self.next()
            value = self.expr()
            output = bool(self.accept_word("OUTPUT", "OUT"))
            args.append((pname, value, output))
            if not self.accept_op(","):
                break
        return Stmt("exec_proc", "", {"proc": proc, "args": args, "status_var": status_var})

    _st_EXECUTE = _st_EXEC

    def _st_USE(self) -> Stmt:
        self.next()
        return Stmt("use", "", {"name": self.name_parts()[0]})

    def _st_IF(self) -> Stmt:
        self.next()
        cond = self.expr()
        then = self.statement()
        otherwise = None
        if self.accept_word("ELSE"):
            otherwise = self.statement()
        return Stmt("if", "", {"cond": cond, "then": then, "else": otherwise})

    def _st_WHILE(self) -> Stmt:
        self.next()
        cond = self.expr()
        return Stmt("while", "", {"cond": cond, "body": self.statement()})

    def _st_BEGIN(self) -> Stmt:
        self.next()
        if self.accept_word("TRAN", "TRANSACTION"):
            if self.peek().kind in ("word", "qident", "var") and not self._at_statement_start():
                self.next()
            return Stmt("begin_tran", "")
        if self.peek().is_word("TRY", "CATCH", "DISTRIBUTED", "ATOMIC"):
            raise unsupported(f"BEGIN {self.peek().value}")
        return Stmt("block", "", {"body": self.parse_statements(until_end=True)})

    def _st_COMMIT(self) -> Stmt:
        self.next()
        self._tran_tail()
        return Stmt("commit", "")

    def _st_ROLLBACK(self) -> Stmt:
        self.next()
        self._tran_tail()
        return Stmt("rollback", "")

    def _tran_tail(self) -> None:
        if self.accept_word("TRAN", "TRANSACTION", "WORK"):
            if self.peek().kind in ("word", "qident", "var") and not self._at_statement_start():
                self.next()

    def _at_statement_start(self) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.upper in STATEMENT_STARTS

    def _st_PRINT(self) -> Stmt:
        self.next()
        return Stmt("print", "", {"expr": self.expr()})

    def _st_THROW(self) -> Stmt:
        self.next()
        number = self.expr()
        self.expect_op(",")
        message = self.expr()
        self.expect_op(",")
        return Stmt("throw", "", {"number": number, "message": message, "state": self.expr()})

    def _st_RAISERROR(self) -> Stmt:
        self.next()
        self.expect_op("(")
        args = [self.expr()]
        while self.accept_op(","):
            args.append(self.expr())
        self.expect_op(")")
        options = []
        if self.accept_word("WITH"):
            options.append(self.next().upper)
            while self.accept_op(","):
                options.append(self.next().upper)
        return Stmt("raiserror", "", {"args": args, "options": options})

    def _st_WAITFOR(self) -> Stmt:
        self.next()
        self.expect_word("DELAY")
        return Stmt("waitfor", "", {"expr": self.expr()})

    def _st_RETURN(self) -> Stmt:
        self.next()
        return Stmt("return", "")

    def _st_CHECKPOINT(self) -> Stmt:
        self.next()
        return Stmt("checkpoint", "")

    def _st_KILL(self) -> Stmt:
        """``KILL <session id>``: a constant only (KILL @var is a syntax error in SQL Server too)."""
        self.next()
        tok = self.next()
        if tok.kind != "num" or not str(tok.value).isdigit():
            raise syntax_error(tok)
        if self.accept_word("WITH"):
            self.collect_rest()
            raise unsupported("KILL ... WITH STATUSONLY")
        return Stmt("kill", "", {"spid": int(tok.value)})

    def _st_BACKUP(self) -> Stmt:
        self.next()
        kind = self.expect_word("DATABASE", "LOG").upper
        target = self.db_target()
        self.expect_word("TO")
        devices = self.devices()
        mirrors = []
        while self.accept_word("MIRROR"):  # MIRROR TO <devices>: the same backup set again
            self.expect_word("TO")
            mirrors.append(self.devices())
        options = self.with_options()
        args = {"kind": kind, "target": target, "devices": devices, "mirrors": mirrors, "options": options}
        return Stmt("backup", "", args)

    def _st_RESTORE(self) -> Stmt:
        self.next()
        what = self.expect_word(
            "DATABASE", "LOG", "HEADERONLY", "FILELISTONLY", "VERIFYONLY", "LABELONLY"
        ).upper
        target = None
        if what in ("DATABASE", "LOG"):
            target = self.db_target()
        devices = []
        if self.accept_word("FROM"):
            devices = self.devices()
        options = self.with_options()
        return Stmt("restore", "", {"what": what, "target": target, "devices": devices, "options": options})

    def _st_DBCC(self) -> Stmt:
        self.next()
        command = self.next()
        if not command.is_word("CHECKDB"):
            self.collect()
            raise unsupported(f"DBCC {command.value}")
        target = None
        if self.accept_op("("):
            target = self.db_target(allow_number=True)
            while self.accept_op(","):
                self.next()
            self.expect_op(")")
        return Stmt("dbcc_checkdb", "", {"target": target, "options": self.with_options()})

    def _st_ALTER(self) -> Stmt:
        start = self.i
        self.next()
        if self.accept_word("ROLE"):
            return self._alter_role(start, "alter_role")
        if self.accept_word("SERVER"):
            self.expect_word("ROLE")
            return self._alter_role(start, "alter_server_role")
        if not self.accept_word("DATABASE"):
            self.collect()
            raise unsupported(self.text_from(start))
        name = None if self.accept_word("CURRENT") else self.name_parts()[0]
        if not self.accept_word("SET"):
            self.collect()
            raise unsupported(self.text_from(start))
        words = []
        while self.peek().kind == "word" and not self.peek().is_word("WITH"):
            words.append(self.next().upper)
            self.accept_op("=")
        termination = None
        if self.accept_word("WITH"):
            if self.accept_word("ROLLBACK"):
                if self.accept_word("IMMEDIATE"):
                    termination = "ROLLBACK IMMEDIATE"
                else:
                    self.expect_word("AFTER")
                    self.next()
                    self.accept_word("SECONDS")
                    termination = "ROLLBACK IMMEDIATE"
            else:
                self.expect_word("NO_WAIT")
                termination = "NO_WAIT"
        return Stmt("alter_database", "", {"name": name, "words": words, "termination": termination})

    def _alter_role(self, start: int, kind: str) -> Stmt:
        """``ALTER [SERVER] ROLE role {ADD | DROP} MEMBER principal`` (renaming a role is not supported)."""
        role = self.name_parts()[-1]
        verb = self.accept_word("ADD", "DROP")
        if verb is None:
            self.collect()
            raise unsupported(self.text_from(start))
        self.expect_word("MEMBER")
        member = self.name_parts()[-1]
        return Stmt(kind, "", {"role": role, "member": member, "add": verb.upper == "ADD"})

    def _st_CREATE(self) -> Stmt:
        start = self.i
        self.next()
        if self.accept_word("DATABASE"):
            name = self.name_parts()[0]
            self.collect_rest()
            return Stmt("create_database", "", {"name": name})
        if self.accept_word("SCHEMA"):
            name = self.name_parts()[0]
            if self.accept_word("AUTHORIZATION"):
                self.name_parts()
            return Stmt("create_schema", "", {"name": name})
        if self.accept_word("TABLE"):
            return self.create_table()
        if self.peek().is_word("UNIQUE", "CLUSTERED", "NONCLUSTERED", "INDEX"):
            return self.create_index()
        self.collect()
        raise unsupported(self.text_from(start))

    def collect_rest(self) -> None:
        if self.peek().kind != "eof" and not self.peek().is_op(";") and not self._at_statement_start():
            self.collect()

    def create_table(self) -> Stmt:
        name = self.name_parts()
        self.expect_op("(")
        columns, primary_key = [], []
        while True:
            if self.peek().is_word("CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "INDEX"):
                primary_key += self.table_constraint()
            else:
                columns.append(self.column_def())
            if not self.accept_op(","):
                break
        self.expect_op(")")
        while self.peek().is_word("ON", "WITH", "TEXTIMAGE_ON"):
            self.next()
            if self.accept_op("("):
                self.skip_parens()
            else:
                self.next()
                if self.accept_op("("):
                    self.skip_parens()
        return Stmt("create_table", "", {"name": name, "columns": columns, "primary_key": primary_key})

    def skip_parens(self) -> list[Token]:
        """Skip to the ``)`` matching an already consumed ``(``; return the tokens inside."""
        depth, inside = 1, []
        while depth:
            tok = self.next()
            if tok.kind == "eof":
                raise syntax_error(tok)
            depth += 1 if tok.is_op("(") else -1 if tok.is_op(")") else 0
            if depth:
                inside.append(tok)
        return inside

    def table_constraint(self) -> list[str]:
        if self.accept_word("CONSTRAINT"):
            self.next()
        if self.accept_word("PRIMARY"):
            self.expect_word("KEY")
            self.accept_word("CLUSTERED", "NONCLUSTERED")
            self.expect_op("(")
            cols = []
            while True:
                cols.append(self.name_parts()[0])
                self.accept_word("ASC", "DESC")
                if not self.accept_op(","):
                    break
            self.expect_op(")")
            return cols
        # UNIQUE / FOREIGN KEY / CHECK / INDEX: accepted, not enforced.
        while not self.peek().is_op(",", ")") and self.peek().kind != "eof":
            if self.next().is_op("("):
                self.skip_parens()
        return []

    def column_def(self) -> dict:
        col = {
            "name": self.name_parts()[0],
            "nullable": True,
            "identity": False,
            "pk": False,
            "default": None,
        }
        col["type"] = self.sql_type()
        while not self.peek().is_op(",", ")") and self.peek().kind != "eof":
            tok = self.next()
            if tok.is_word("NOT"):
                self.expect_word("NULL")
                col["nullable"] = False
            elif tok.is_word("IDENTITY"):
                col["identity"] = True
                if self.accept_op("("):
                    self.skip_parens()
            elif tok.is_word("PRIMARY"):
                self.expect_word("KEY")
                col["pk"] = True
                col["nullable"] = False
            elif tok.is_word("DEFAULT"):
                col["default"] = self.expr()
            elif tok.is_op("("):
                self.skip_parens()
        return col

    def create_index(self) -> Stmt:
        unique = bool(self.accept_word("UNIQUE"))
        self.accept_word("CLUSTERED", "NONCLUSTERED")
        self.expect_word("INDEX")
        index = self.name_parts()[0]
        self.expect_word("ON")
        table = self.name_parts()
        self.expect_op("(")
        cols = []
        while True:
            cols.append(self.name_parts()[0])
            self.accept_word("ASC", "DESC")
            if not self.accept_op(","):
                break
        self.expect_op(")")
        self.collect_rest()
        return Stmt("create_index", "", {"index": index, "table": table, "columns": cols, "unique": unique})

    def _st_DROP(self) -> Stmt:
        start = self.i
        self.next()
        what = self.accept_word("DATABASE", "TABLE", "SCHEMA")
        if what is None:
            self.collect()
            raise unsupported(self.text_from(start))
        if_exists = False
        if self.peek().is_word("IF") and self.peek(1).is_word("EXISTS"):
            self.next(), self.next()
            if_exists = True
        names = [self.name_parts()]
        while self.accept_op(","):
            names.append(self.name_parts())
        return Stmt("drop_" + what.upper.lower(), "", {"names": names, "if_exists": if_exists})

    # -- pieces --------------------------------------------------------------------------------
    def name_parts(self) -> list[str]:
        """A one- to four-part name; empty parts (``db..t``) become ``""``."""
        parts: list[str] = []
        while True:
            tok = self.peek()
            if tok.kind in ("word", "qident"):
                parts.append(self.next().value)
            elif tok.is_op("."):
                parts.append("")
            else:
                raise syntax_error(tok)
            if not self.accept_op("."):
                return parts

    def db_target(self, allow_number: bool = False):
        tok = self.peek()
        if tok.kind == "var":
            return ("var", self.next().value)
        if tok.kind == "str":
            return ("lit", self.next().value)
        if allow_number and tok.kind == "num":
            return ("dbid", int(self.next().value))
        return ("lit", self.name_parts()[0])

    def devices(self) -> list:
        devices = []
        while True:
            kind = self.expect_word("DISK", "URL", "TAPE")
            self.expect_op("=")
            if not kind.is_word("DISK"):
                raise unsupported(f"{kind.value} backup device")
            devices.append(self.expr())
            if not self.accept_op(","):
                return devices

    def with_options(self) -> list[tuple[str, object]]:
        options: list[tuple[str, object]] = []
        if not self.accept_word("WITH"):
            return options
        while True:
            tok = self.next()
            if tok.kind != "word":
                raise syntax_error(tok)
            name = tok.upper
            if name == "MOVE":
                source = self.expr()
                self.expect_word("TO")
                options.append((name, (source, self.expr())))
            elif name == "COMPRESSION" and self.peek().is_op("("):
                # SQL Server 2022: COMPRESSION (ALGORITHM = MS_XPRESS | QAT_DEFLATE)
                paren = self.next()
                self.expect_word("ALGORITHM")
                self.expect_op("=")
                algorithm = self.next()
                if algorithm.kind != "word":
                    raise syntax_error(algorithm)
                self.expect_op(")")
                options.append((name, ("algorithm", algorithm.upper, paren)))
            elif self.accept_op("="):
                options.append((name, self.expr()))
            elif name == "STATS":
                options.append((name, ("lit", 10)))
            else:
                options.append((name, None))
            if not self.accept_op(","):
                return options

    def sql_type(self) -> SqlType:
        parts = self.name_parts()
        name = parts[-1].lower()
        if name in ("double",):
            self.accept_word("PRECISION")
            name = "float"
        sqltype = SqlType(name)
        if self.accept_op("("):
            first = self.next()
            if first.is_word("MAX"):
                sqltype.length = -1
            elif name in ("decimal", "numeric"):
                sqltype.precision = int(first.value)
                sqltype.scale = int(self.next().value) if self.accept_op(",") else 0
            elif first.kind == "num":
                if name in ("float", "real", "datetime2", "time", "datetimeoffset"):
                    sqltype.scale = int(first.value)
                else:
                    sqltype.length = int(first.value)
            else:
                raise syntax_error(first)
            self.expect_op(")")
        elif name in ("decimal", "numeric"):
            sqltype.precision, sqltype.scale = 18, 0
        return sqltype

    # -- expressions ---------------------------------------------------------------------------
    def expr(self):
        return self._or()

    def _or(self):
        left = self._and()
        while self.accept_word("OR"):
            left = ("bin", "OR", left, self._and())
        return left

    def _and(self):
        left = self._not()
        while self.accept_word("AND"):
            left = ("bin", "AND", left, self._not())
        return left

    def _not(self):
        if self.accept_word("NOT"):
            return ("not", self._not())
        return self._comparison()

    def _comparison(self):
        left = self._additive()
        while True:
            tok = self.peek()
            if tok.is_op("=", "<>", "!=", "<", ">", "<=", ">=", "!<", "!>"):
                self.next()
                left = ("bin", tok.value, left, self._additive())
            elif tok.is_word("IS"):
                self.next()
                negated = bool(self.accept_word("NOT"))
                self.expect_word("NULL")
                left = ("isnull", left, negated)
            elif tok.is_word("NOT") and self.peek(1).is_word("IN", "LIKE", "BETWEEN"):
                self.next()
                left = self._predicate(left, negated=True)
            elif tok.is_word("IN", "LIKE", "BETWEEN"):
                left = self._predicate(left, negated=False)
            else:
                return left

    def _predicate(self, left, negated: bool):
        word = self.next().upper
        if word == "IN":
            self.expect_op("(")
            if self.peek().is_word("SELECT"):
                return ("in_query", left, self.skip_parens(), negated)
            items = [self.expr()]
            while self.accept_op(","):
                items.append(self.expr())
            self.expect_op(")")
            return ("in", left, items, negated)
        if word == "LIKE":
            return ("like", left, self._additive(), negated)
        low = self._additive()
        self.expect_word("AND")
        return ("between", left, low, self._additive(), negated)

    def _additive(self):
        left = self._multiplicative()
        while self.peek().is_op("+", "-", "&", "|", "^"):
            op = self.next().value
            left = ("bin", op, left, self._multiplicative())
        return left

    def _multiplicative(self):
        left = self._unary()
        while self.peek().is_op("*", "/", "%"):
            op = self.next().value
            left = ("bin", op, left, self._unary())
        return left

    def _unary(self):
        if self.accept_op("-"):
            return ("neg", self._unary())
        if self.accept_op("+"):
            return self._unary()
        if self.accept_op("~"):
            return ("bitnot", self._unary())
        return self._primary()

    def _primary(self):
        tok = self.next()
        if tok.kind == "num":
            return ("lit", _number(tok.value))
        if tok.kind == "str":
            return ("lit", tok.value, "nvarchar" if tok.unicode else "varchar")
        if tok.kind == "var":
            return ("var", tok.value)
        if tok.kind == "sysvar":
            return ("sysvar", tok.upper)
        if tok.is_op("("):
            if self.peek().is_word("SELECT", "WITH"):
                return ("subquery", self.skip_parens())
            inner = self.expr()
            self.expect_op(")")
            return inner
        if tok.kind == "qident":
            self.i -= 1
            return ("col", self.name_parts())
        if tok.kind != "word":
            raise syntax_error(tok)
        word = tok.upper
        if word == "NULL":
            return ("lit", None)
        if word == "EXISTS":
            self.expect_op("(")
            return ("exists", self.skip_parens())
        if word == "CASE":
            return self._case()
        if word in ("CURRENT_TIMESTAMP", "CURRENT_USER", "SYSTEM_USER", "SESSION_USER", "USER"):
            return ("func", word, [])
        if self.peek().is_op("("):
            self.next()
            if word == "CAST":
                inner = self.expr()
                self.expect_word("AS")
                sqltype = self.sql_type()
                self.expect_op(")")
                return ("cast", inner, sqltype, None)
            if word in ("CONVERT", "TRY_CONVERT"):
                sqltype = self.sql_type()
                self.expect_op(",")
                inner = self.expr()
                style = self.expr() if self.accept_op(",") else None
                self.expect_op(")")
                return ("cast", inner, sqltype, style)
            args = []
            if not self.accept_op(")"):
                if self.peek().is_op("*"):
                    self.next()
                    args.append(("star",))
                else:
                    args.append(self.expr())
                while self.accept_op(","):
                    args.append(self.expr())
                self.expect_op(")")
            return ("func", word, args)
        self.i -= 1
        return ("col", self.name_parts())

    def _case(self):
        operand = None if self.peek().is_word("WHEN") else self.expr()
        whens = []
        while self.accept_word("WHEN"):
            cond = self.expr()
            self.expect_word("THEN")
            whens.append((cond, self.expr()))
        otherwise = self.expr() if self.accept_word("ELSE") else None
        self.expect_word("END")
        return ("case", operand, whens, otherwise)


def _number(text: str):
    from decimal import Decimal

    if text.lower().startswith("0x"):
        return bytes.fromhex(text[2:] if len(text) % 2 == 0 else "0" + text[2:])
    if "e" in text.lower():
        return float(text)
    if "." in text:
        return Decimal(text)
    value = int(text)
    return value if value < 2**63 else Decimal(value)
