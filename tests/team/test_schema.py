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


def test_an_up_to_date_database_is_opened_without_importing_alembic(tmp_path: Path) -> None:
    engine = make_engine(TeamSettings(data_dir=tmp_path))
    upgrade(engine)  # a new database: Alembic creates the tables
    engine.dispose()
    probe = (
        "import sys; from pathlib import Path\n"
        "from messages_bridge.team.db import make_engine, upgrade\n"
        "from messages_bridge.team.settings import TeamSettings\n"
        f"engine = make_engine(TeamSettings(data_dir=Path({str(tmp_path)!r})))\n"
        "upgrade(engine)\n"
        "print(any(name == 'alembic' or name.startswith('alembic.') for name in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
