"""``qmark_to_numbered``: the one placeholder style (``?``) as PostgreSQL's ``$n``.

Pure: no database. A PostgreSQL backend runs every feature statement through it.
"""

from __future__ import annotations

import pytest

from vrm.storage import qmark_to_numbered


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("SELECT * FROM t WHERE a=?", "SELECT * FROM t WHERE a=$1"),
        (
            "INSERT INTO t(a, b, c) VALUES (?, ?, ?) ON CONFLICT (a) DO UPDATE SET b=excluded.b",
            "INSERT INTO t(a, b, c) VALUES ($1, $2, $3) ON CONFLICT (a) DO UPDATE SET b=excluded.b",
        ),
        ("a IN (?,?,?) LIMIT ?", "a IN ($1,$2,$3) LIMIT $4"),
        # inside literals, quoted identifiers and comments a ? is text, not a parameter
        ("SELECT '?' , ?", "SELECT '?' , $1"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
        ('SELECT "we?ird" FROM t WHERE x=?', 'SELECT "we?ird" FROM t WHERE x=$1'),
        ('SELECT "a""?b", ?', 'SELECT "a""?b", $1'),
        ("SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"),
        ("SELECT ? /* what? */ , ?", "SELECT $1 /* what? */ , $2"),
        (
            "DELETE FROM held WHERE g=? AND (?='*' OR path=?)",
            "DELETE FROM held WHERE g=$1 AND ($2='*' OR path=$3)",
        ),
    ],
)
def test_rewrites_qmarks_in_order(sql: str, expected: str) -> None:
    assert qmark_to_numbered(sql) == expected


@pytest.mark.parametrize(
    "sql",
    ["SELECT 'open ?", 'SELECT "open ?', "SELECT 1 -- open ?", "SELECT 1 /* open ?"],
)
def test_an_unterminated_literal_or_comment_runs_to_the_end(sql: str) -> None:
    assert qmark_to_numbered(sql) == sql


def test_ten_and_more_placeholders() -> None:
    sql = "VALUES (" + ", ".join("?" * 12) + ")"
    assert qmark_to_numbered(sql) == "VALUES (" + ", ".join(f"${n}" for n in range(1, 13)) + ")"
