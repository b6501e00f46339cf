"""rename_table: renamed in expand, with a view under the old name until contract.

`CREATE VIEW old AS SELECT * FROM new` is automatically updatable, so the old application version
keeps inserting (RETURNING and the table's defaults, identity included, pass through), updating and
deleting through it while the new version uses the new name. The view is given the table's owner and
its grants (and, from PostgreSQL 15, the caller's rights and row-level security on the table), so an
application role sees no difference. Contract drops the view; a rollback before that
drops it and renames the table back.
"""

from __future__ import annotations

from orchestrator.domain.identifiers import quote_ident, quote_literal
from orchestrator.domain.operations import RenameTable
from orchestrator.domain.plan import Stage, Step, StepAction
from orchestrator.engine.planner.context import PlanContext, step_id
from orchestrator.engine.planner.postgres.relations import do_block, is_table, is_view, regclass

# Privileges that mean something on a view; the rest (TRUNCATE, TRIGGER, REFERENCES) stay on the table.
VIEW_PRIVILEGES = "('SELECT', 'INSERT', 'UPDATE', 'DELETE')"


def plan(op: RenameTable, index: int, context: PlanContext) -> None:
    old, new = op.table, op.new_name
    expand_id = step_id(Stage.EXPAND, index, op.kind, old)
    context.add(
        Step(
            id=expand_id,
            stage=Stage.EXPAND,
            operation_index=index,
            action=StepAction.DDL,
            description=f"rename table {old} to {new}; view {old} over it for the old application",
            sql=rename_sql(old, new),
            table=old,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=(
                f"ACCESS EXCLUSIVE lock on {old} for a catalog-only change, bounded by lock_timeout per "
                f"attempt. Until contract the old application works through the view {old} (SELECT, "
                "INSERT ... RETURNING, UPDATE, DELETE, ON CONFLICT); it cannot TRUNCATE, LOCK, ALTER or "
                f"COPY into {old}, and columns added to {new} later do not show in the view."
            ),
            estimate="< 1 s once the lock is granted (no data moves)",
            rollback=Step(
                id=f"rollback.{expand_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"drop view {old}; rename table {new} back to {old}",
                sql=rename_back_sql(old, new),
                table=old,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )
    contract_id = step_id(Stage.CONTRACT, index, op.kind, old)
    context.add(
        Step(
            id=contract_id,
            stage=Stage.CONTRACT,
            operation_index=index,
            action=StepAction.DDL,
            description=f"drop view {old} (the old name of {new})",
            # A table of that name means something else happened: DROP VIEW refuses it, loudly.
            sql=f"DROP VIEW IF EXISTS {quote_ident(old)}",
            table=old,
            lock_timeout_ms=context.lock_timeout_ms,
            risk=(
                f"ACCESS EXCLUSIVE lock on the view {old} only; {new} is not locked. Code still using "
                f"{old} fails from here on: that is what the deploy gate is for."
            ),
            estimate="< 1 s once the lock is granted",
            rollback=Step(
                id=f"rollback.{contract_id}",
                stage=Stage.ROLLBACK,
                operation_index=index,
                action=StepAction.DDL,
                description=f"create view {old} over {new} again",
                sql=do_block(
                    f"IF {regclass(old)} IS NULL AND {is_table(new)} THEN\n"
                    f"{_indent(compatibility_view(old, new))}\nEND IF;",
                    declare="grant_sql text;",
                ),
                table=old,
                lock_timeout_ms=context.lock_timeout_ms,
            ),
        )
    )


def compatibility_view(old: str, new: str) -> str:
    """The view `old` over `new`, owned by the table's owner and granted what the table grants; on
    PostgreSQL 15+ a security_invoker view, so each caller's own rights and the table's row-level
    security policies apply as before (older servers check the table as the view's owner)."""
    view, table = quote_ident(old), quote_ident(new)
    # Identifiers validated and quoted, names passed to format() as quoted literals.
    return f"""CREATE VIEW {view} AS SELECT * FROM {table};
IF current_setting('server_version_num')::int >= 150000 THEN
  -- The caller's rights and the table's row-level security apply, as they did on the table itself.
  ALTER VIEW {view} SET (security_invoker = true);
END IF;
EXECUTE format('ALTER VIEW %I OWNER TO %I', {quote_literal(old)},
               (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = {regclass(new)}));
FOR grant_sql IN
  SELECT format('GRANT %s ON %I TO %s', acl.privilege_type, {quote_literal(old)},
                CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END)
  FROM pg_class AS c, aclexplode(c.relacl) AS acl
  WHERE c.oid = {regclass(new)} AND acl.grantee <> c.relowner AND acl.privilege_type IN {VIEW_PRIVILEGES}
LOOP
  EXECUTE grant_sql;
END LOOP;"""  # noqa: S608


def rename_sql(old: str, new: str) -> str:
    body = f"""
IF {is_view(old)} AND {is_table(new)} THEN
  RETURN;  -- done already (a replay after a crash)
END IF;
IF NOT {is_table(old)} THEN
  RAISE EXCEPTION 'table % does not exist', {quote_literal(old)};
END IF;
IF {regclass(new)} IS NOT NULL THEN
  RAISE EXCEPTION 'a relation named % exists already', {quote_literal(new)};
END IF;
ALTER TABLE {quote_ident(old)} RENAME TO {quote_ident(new)};
{compatibility_view(old, new)}
"""
    return do_block(body, declare="grant_sql text;")


def rename_back_sql(old: str, new: str) -> str:
    body = f"""
IF {is_table(new)} THEN
  IF {is_view(old)} THEN
    DROP VIEW {quote_ident(old)};  -- no CASCADE: whatever was built on the view stops the rollback
  END IF;
  ALTER TABLE {quote_ident(new)} RENAME TO {quote_ident(old)};
END IF;
"""
    return do_block(body)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
