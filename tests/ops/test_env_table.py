"""docs/configuration.md lists every environment variable the settings read, and is current."""

from __future__ import annotations

import re

from screener_project import env_table


def test_every_env_read_of_the_settings_is_a_row():
    # An independent reading of the sources: every env(...) / env.<type>(...) call names one variable.
    pattern = re.compile(r"\b_?env(?:\.\w+)?\(\s*\"([A-Za-z_][A-Za-z0-9_]*)\"")
    written = set()
    for source in env_table.SETTINGS_SOURCES:
        written |= set(pattern.findall((env_table.ROOT / source).read_text()))
    rows = {read.name: read for read in env_table.settings_reads()}
    assert set(rows) == written
    assert rows["COLLECTOR_REST_WEIGHT_BUDGET"].defaults == {"base": "`2200`"}
    assert rows["DJANGO_SECRET_KEY"].defaults["production"] == "empty"
    assert "refuses to start" in rows["DJANGO_SECRET_KEY"].meaning
    assert [name for name, read in rows.items() if not read.meaning] == []


def test_process_level_reads_are_found_in_scripts_and_code():
    reads = env_table.process_reads()
    assert "screener" in reads["SCREENER_OFFLINE"]
    assert "docker/start-collector" in reads["COLLECTOR_SLICE_INDEX"]
    assert "apps/collector/management/commands/replay_reset.py" in reads["SCREENER_SANDBOX"]


def test_configuration_doc_is_current():
    assert env_table.main(["--check"]) == 0, "run: python -m screener_project.env_table --write"
