"""The schema: `HEAD` is Alembic's head, a start on an up-to-date database needs no Alembic, and the ledger row
(inserted as a plain tuple in field order) names exactly the table's columns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from messages_bridge.team.db import MIGRATIONS, make_engine, upgrade
from messages_bridge.team.ledger import LedgerRow
from messages_bridge.team.migrations import HEAD
from messages_bridge.team.schema import ledger
from messages_bridge.team.settings import TeamSettings


def test_head_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_the_ledger_row_names_the_table_columns_in_order() -> None:
    assert LedgerRow.__struct_fields__ == tuple(c.name for c in ledger.columns)


PROBE = """
import asyncio, sys
from datetime import UTC, datetime
from pathlib import Path
from messages_bridge.team.gate import Team
from messages_bridge.team.ledger import LedgerRow
from messages_bridge.team.settings import TeamSettings

async def main() -> None:
    team = await Team.open(TeamSettings(data_dir=Path(sys.argv[1])))
    await team.keyring.reload()
    now = datetime.now(UTC)
    day = now.date().isoformat()
    team.writer.submit(LedgerRow(time=now, day=day, route="/v1/x", status=200, key_name="k", cost_usd=0.25))
    await team.writer.flush()
    spent = await asyncio.to_thread(team.ledger.spend, "k", now.replace(hour=0))
    await team.aclose()
    loaded = sorted({name.split(".")[0] for name in sys.modules} & {"sqlalchemy", "alembic"})
    print(spent, loaded)

asyncio.run(main())
"""


def test_the_gateway_on_an_up_to_date_sqlite_file_loads_neither_sqlalchemy_nor_alembic(tmp_path: Path) -> None:
    """Keys, ledger rows and spend go through `sqlite3`: ~23 MiB less resident memory."""
    engine = make_engine(TeamSettings(data_dir=tmp_path))
    upgrade(engine)  # a new database: Alembic creates the tables
    engine.dispose()
    run = [sys.executable, "-c", PROBE, str(tmp_path)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "0.25 []", "the row was written, found by time and summed; nothing else loaded"
