"""T-SQL lexer: turns batch text into tokens, keeping the original text of each token."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.mssql.results import SqlError


@dataclass(frozen=True)
class Token:
    """One lexical token.

    kind: ``word`` (bare identifier or keyword), ``qident`` (``[x]`` or ``"x"``), ``str``, ``num``,
    ``var`` (``@x``), ``sysvar`` (``@@x``), ``op``, ``eof``. ``value`` is the decoded value (an
    identifier without its quotes, a string without its quotes); ``text`` the original spelling.
    """

    kind: str
    value: str
    text: str
    pos: int
    unicode: bool = False

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.value.upper() in words

    def is_op(self, *ops: str) -> bool:
        return self.kind == "op" and self.value in ops

    @property
    def upper(self) -> str:
        return self.value.upper()


_NUMBER = re.compile(r"(0x[0-9A-Fa-f]*)|(\d+\.?\d*(?:[eE][+-]?\d+)?)|(\.\d+(?:[eE][+-]?\d+)?)")
_WORD = re.compile(r"[^\W\d][\w@$#]*|#[\w@$#]*")
_OPS = ("<>", "!=", ">=", "<=", "!<", "!>", "+=", "-=", "*=", "/=", "::")


def _syntax(text: str, pos: int, what: str) -> SqlError:
    return SqlError(102, 15, 1, f"Incorrect syntax near '{text[pos : pos + 20]}' ({what}).")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; comments and whitespace are dropped; ends with an ``eof`` token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i)
        elif c in "Nn" and i + 1 < n and text[i + 1] == "'":
            value, end = _read_quoted(text, i + 1, "'", "'")
            tokens.append(Token("str", value, text[i:end], i, unicode=True))
            i = end
        elif c == "'":
            value, end = _read_quoted(text, i, "'", "'")
            tokens.append(Token("str", value, text[i:end], i))
            i = end
        elif c == "[":
            value, end = _read_quoted(text, i, "[", "]")
            tokens.append(Token("qident", value, text[i:end], i))
            i = end
        elif c == '"':
            value, end = _read_quoted(text, i, '"', '"')
            tokens.append(Token("qident", value, text[i:end], i))
            i = end
        elif c == "@":
            kind = "sysvar" if text.startswith("@@", i) else "var"
            m = re.compile(r"@@?[\w@$#]*").match(text, i)
            tokens.append(Token(kind, m.group(0), m.group(0), i))
            i = m.end()
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            tokens.append(Token("num", m.group(0), m.group(0), i))
            i = m.end()
        elif m := _WORD.match(text, i):
            tokens.append(Token("word", m.group(0), m.group(0), i))
            i = m.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), c)
            tokens.append(Token("op", op, op, i))
            i += len(op)
    tokens.append(Token("eof", "", "", n))
    return tokens


def _skip_block_comment(text: str, i: int) -> int:
    """Block comments nest in T-SQL."""
    depth, i = 0, i
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlError(113, 15, 1, "Missing end comment mark '*/'.")


def _read_quoted(text: str, start: int, open_ch: str, close_ch: str) -> tuple[str, int]:
    """Read a quoted literal starting at ``start`` (the opening quote); a doubled closer escapes."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == close_ch:
            if i + 1 < len(text) and text[i + 1] == close_ch:
                out.append(c)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(c)
        i += 1
    if open_ch == "'":
        raise SqlError(
            105, 15, 1, f"Unclosed quotation mark after the character string '{''.join(out)[:50]}'."
        )
    raise SqlError(105, 15, 1, f"Unclosed quotation mark near '{text[start : start + 30]}'.")


def quote_ident(name: str) -> str:
    """QUOTENAME: ``[name]`` with ``]`` doubled."""
    return "[" + name.replace("]", "]]") + "]"


def quote_literal(value: str) -> str:
    """A T-SQL Unicode string literal."""
    return "N'" + value.replace("'", "''") + "'"
