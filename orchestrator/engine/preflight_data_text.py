"""How a data finding reads in a refusal: counts, a few sample keys or groups, and the fix (pure)."""

from __future__ import annotations

from orchestrator.domain.data_checks import DataCheck, DataCheckKind, DataFinding, DataSample

SAMPLES_SHOWN = 3
VALUE_CHARS = 40

# -- wording -------------------------------------------------------------------------------------------


def describe_finding(finding: DataFinding) -> str:
    check = finding.check
    if not finding.count and finding.error:
        # The check itself did not run: the migration's statement would fail the same way.
        return f"({', '.join(check.labels)}) cannot be evaluated over {check.table}: {finding.error}"
    count = f"{finding.count}" if finding.exact else f"at least {finding.count}"
    examples = ", ".join(_sample(check, sample) for sample in finding.samples[:SAMPLES_SHOWN])
    example = f", e.g. {examples}" if examples else ""
    keys = ", ".join(check.labels)
    match check.kind:
        case DataCheckKind.NULLS:
            text = f"{count} {_rows(finding.count)} of {check.table} would be NULL in ({keys}){example}"
        case DataCheckKind.DUPLICATES:
            groups = "duplicate group" if finding.count == 1 else "duplicate groups"
            text = f"{count} {groups} in {check.table}{example}"
        case DataCheckKind.ORPHANS:
            target = f"{check.referenced_table} ({', '.join(check.referenced_columns)})"
            text = f"{count} {_rows(finding.count)} of {check.table} with ({keys}) have no match in {target}{example}"
        case DataCheckKind.CAST:
            text = f"{count} {_rows(finding.count)} of {check.table} fail the conversion of ({keys}) to {check.type_name}{example}"
        case DataCheckKind.CHECK:
            text = f"{count} {_rows(finding.count)} of {check.table} fail CHECK ({keys}){example}"
    if finding.error:
        text += f" ({finding.error})"
    return f"{text}; {check.fix}" if check.fix else text


def _sample(check: DataCheck, sample: DataSample) -> str:
    if check.kind is DataCheckKind.DUPLICATES:
        return f"({', '.join(check.labels)})=({', '.join(map(_literal, sample.values))}) x{sample.count}"
    names = check.key or ("ctid",)
    if len(names) == 1:
        text = f"{names[0]}={_plain(sample.key[0] if sample.key else None)}"
    else:
        text = f"({', '.join(names)})=({', '.join(map(_plain, sample.key))})"
    shown = ", ".join(
        f"{name}={_literal(value)}" for name, value in zip(check.shown, sample.values, strict=False)
    )
    return f"{text} ({shown})" if shown else text


def _literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    short = value if len(value) <= VALUE_CHARS else value[: VALUE_CHARS - 3] + "..."
    return "'" + short.replace("'", "''") + "'"


def _plain(value: str | None) -> str:
    return "NULL" if value is None else value


def _rows(count: int) -> str:
    return "row" if count == 1 else "rows"
