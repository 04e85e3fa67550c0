"""Rebuild a read model from notification 0 and prove it equals the live one.

1. Under the view's lock, note the live position P and copy the live tables (a snapshot).
2. Replay every notification up to P into shadow tables (``rebuild_`` prefix).
3. Compare shadow and snapshot row by row (``EXCEPT`` both ways).
4. With ``replace``, swap the shadow tables in for the live ones under the same lock; the
   runner then continues from P, since the swapped-in tracking row says P.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg.sql import SQL, Identifier

from projections.base import ReadModel

SHADOW_PREFIX = "rebuild_"
SNAPSHOT_PREFIX = "snapshot_"
BATCH = 1000


@dataclass
class RebuildReport:
    view: str
    position: int
    rows: dict[str, int] = field(default_factory=dict)
    differences: dict[str, int] = field(default_factory=dict)
    replaced: bool = False

    @property
    def identical(self) -> bool:
        return not any(self.differences.values())


def rebuild(
    live: ReadModel,
    shadow_factory: Callable[[str], ReadModel],
    *,
    replace: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> RebuildReport:
    schema = live.datastore.schema
    shadow = shadow_factory(SHADOW_PREFIX)
    shadow.drop()
    shadow.create_table()
    snapshots = {table: f"{SNAPSHOT_PREFIX}{table}" for table in live.tables}
    with live.datastore.transaction(commit=True) as curs:
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (live._lock_key,))
        position = live._max_tracking_id(live.app.name, curs) or 0
        for table, snapshot in snapshots.items():
            curs.execute(SQL("DROP TABLE IF EXISTS {0}").format(Identifier(schema, snapshot)))
            curs.execute(
                SQL("CREATE TABLE {0} AS TABLE {1}").format(
                    Identifier(schema, snapshot), Identifier(schema, table)
                )
            )
    report = RebuildReport(view=live.name, position=position)
    try:
        done = 0
        while done < position:
            batch = live.app.recorder.select_notifications(
                start=done, stop=position, limit=BATCH, inclusive_of_start=False
            )
            if not batch:
                break
            shadow.process(batch)
            done = batch[-1].id
            progress(done, position)
        progress(position, position)
        with live.datastore.transaction(commit=True) as curs:
            for table, shadow_table in zip(live.tables, shadow.tables, strict=True):
                snap, new = Identifier(schema, snapshots[table]), Identifier(schema, shadow_table)
                curs.execute(SQL("SELECT count(*) AS n FROM {0}").format(new))
                report.rows[table] = _count(curs.fetchone())
                curs.execute(
                    SQL(
                        "SELECT (SELECT count(*) FROM (TABLE {0} EXCEPT ALL TABLE {1}) a) + "
                        "(SELECT count(*) FROM (TABLE {1} EXCEPT ALL TABLE {0}) b) AS n"
                    ).format(snap, new)
                )
                report.differences[table] = _count(curs.fetchone())
        if replace:
            _swap(live, shadow)
            report.replaced = True
    finally:
        with live.datastore.transaction(commit=True) as curs:
            for snapshot in snapshots.values():
                curs.execute(SQL("DROP TABLE IF EXISTS {0}").format(Identifier(schema, snapshot)))
        if not report.replaced:
            shadow.drop()
    return report


def _swap(live: ReadModel, shadow: ReadModel) -> None:
    """Replace the live tables (and their indexes and tracking row) with the shadow ones."""
    schema = live.datastore.schema
    pairs = [
        *zip(live.tables, shadow.tables, strict=True),
        (live.tracking_table_name, shadow.tracking_table_name),
    ]
    with live.datastore.transaction(commit=True) as curs:
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (live._lock_key,))
        for live_table, shadow_table in pairs:
            curs.execute(SQL("DROP TABLE {0}").format(Identifier(schema, live_table)))
            curs.execute(
                SQL("ALTER TABLE {0} RENAME TO {1}").format(
                    Identifier(schema, shadow_table), Identifier(live_table)
                )
            )
            curs.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                (schema, live_table),
            )
            for row in curs.fetchall():
                name: str = row["indexname"]
                if name.startswith(SHADOW_PREFIX):
                    curs.execute(
                        SQL("ALTER INDEX {0} RENAME TO {1}").format(
                            Identifier(schema, name), Identifier(name.removeprefix(SHADOW_PREFIX))
                        )
                    )


def _count(row: object) -> int:
    assert isinstance(row, dict)
    return int(row["n"])
