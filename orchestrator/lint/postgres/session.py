"""Transaction blocks and session settings: what later statements run inside or under."""

from __future__ import annotations

from pglast import ast, enums

from orchestrator.lint.context import FileContext
from orchestrator.lint.postgres.nodes import constant_value

_BEGIN = {enums.TransactionStmtKind.TRANS_STMT_BEGIN, enums.TransactionStmtKind.TRANS_STMT_START}
_END = {
    enums.TransactionStmtKind.TRANS_STMT_COMMIT,
    enums.TransactionStmtKind.TRANS_STMT_ROLLBACK,
    enums.TransactionStmtKind.TRANS_STMT_PREPARE,
}


def transaction(node: ast.TransactionStmt, context: FileContext) -> None:
    if node.kind in _BEGIN:
        context.begin()
    elif node.kind in _END:
        context.end_transaction()


def set_variable(node: ast.VariableSetStmt, context: FileContext) -> None:
    if (node.name or "").lower() != "lock_timeout":
        return
    if node.kind != enums.VariableSetKind.VAR_SET_VALUE:  # RESET, SET ... TO DEFAULT
        context.lock_timeout_set = False
        return
    values = [constant_value(arg) for arg in node.args or ()]
    # 0 (and '0', '0s') disables the timeout: Rails dumps start with SET lock_timeout = 0.
    enabled = bool(values) and str(values[0]).strip().rstrip("smin").strip() not in ("0", "")
    context.lock_timeout_set = enabled
    context.lock_timeout_local = enabled and bool(node.is_local)


def lock_timeout_ms(node: ast.VariableSetStmt) -> int | None:
    """The value of `SET lock_timeout = ...` in milliseconds, when it is one PostgreSQL accepts."""
    if (node.name or "").lower() != "lock_timeout" or not node.args:
        return None
    value = constant_value(node.args[0])
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    for unit, factor in (("ms", 1), ("s", 1000), ("min", 60_000)):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * factor
    return int(text) if text.isdigit() else None
