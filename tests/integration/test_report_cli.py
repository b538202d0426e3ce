"""`fhir-server report`: a metric as CSV or JSON (suppressed), a rebuild with progress, an
audited run, and one line naming what is wrong."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from typer.testing import CliRunner

from fhir_server.cli import app as cli
from fhir_server.demo.history import appointments, load_history
from fhir_server.settings import Settings
from fhir_server.store.audit_store import AUDIT_EVENT
from fhir_server.store.bulk_load import insert_first_versions
from fhir_server.store.clock import to_instant
from fhir_server.store.database import connect
from fhir_server.store.resources import ResourceStore, body_of
from tests.integration.auth_helpers import cli_env

NOW = datetime.now(UTC)
MONDAY = (NOW - timedelta(days=NOW.weekday())).date().isoformat()
THIRD_FREE = (NOW.date() + timedelta(days=4) - date.fromisoformat(MONDAY)).days
PERIOD = ["--from", (NOW - timedelta(days=90)).date().isoformat(), "--to", NOW.date().isoformat()]


def test_report_csv_json_rebuild_and_errors(settings_factory: Callable[..., Settings]) -> None:
    env = cli_env(settings_factory)

    async def seed() -> None:
        database = await connect(env["FHIR_MONGODB_URI"], env["FHIR_DATABASE"])
        try:
            store = ResourceStore(database)
            await load_history(store, NOW)
            # Free Slots written before this week's Monday: this week's third next available.
            await store.create({"resourceType": "Schedule", "actor": []}, rid="cli")
            before = to_instant(
                datetime.fromisoformat(MONDAY).replace(tzinfo=UTC) - timedelta(hours=1)
            )
            slots = [
                {
                    "resourceType": "Slot",
                    "id": f"cli{n}",
                    "schedule": {"reference": "Schedule/cli"},
                    "status": "free",
                    "start": to_instant(NOW + timedelta(days=n)),
                    "end": to_instant(NOW + timedelta(days=n, minutes=20)),
                }
                for n in (1, 2, 4)
            ]
            await insert_first_versions(store, [(slot, before) for slot in slots])
        finally:
            await database.close()

    async def report_runs() -> list[dict[str, Any]]:
        database = await connect(env["FHIR_MONGODB_URI"], env["FHIR_DATABASE"])
        try:
            rows = ResourceStore(database).collection(AUDIT_EVENT).find({})
            events = [body_of(row) or {} async for row in rows]
        finally:
            await database.close()
        return [e for e in events if e["subtype"][0]["code"] == "report-run"]

    asyncio.run(seed())
    runner = CliRunner()
    printed = runner.invoke(
        cli, ["report", "appointment-volume", *PERIOD, "--by", "gender"], env=env
    )
    assert printed.exit_code == 0, printed.output
    rows = list(csv.DictReader(io.StringIO(printed.stdout)))
    total = next(r for r in rows if r["group"] == "booked" and not r["stratifier"])
    assert int(total["value"]) == len(appointments(NOW))
    genders = {r["stratum"] for r in rows if r["stratifier"] == "gender"}
    assert genders <= {"female", "male", "other", "unknown"} and genders
    assert all(r["value"] == "<11" or int(r["value"]) == 0 or int(r["value"]) >= 10 for r in rows)

    people = runner.invoke(cli, ["report", "patient-demographics", *PERIOD], env=env)
    assert people.exit_code == 0, people.output
    totals = {
        r["group"]: r["value"]
        for r in csv.DictReader(io.StringIO(people.stdout))
        if not r["stratifier"]
    }
    booked = {p["actor"]["reference"] for a in appointments(NOW) for p in a["participant"]}
    assert int(totals["booked-patients"]) == len({b for b in booked if b.startswith("Patient/")})
    assert int(totals["appointments"]) == len(appointments(NOW))

    weekly = runner.invoke(
        cli, ["report", "third-next-available", *PERIOD, "--by", "service"], env=env
    )
    assert weekly.exit_code == 0, weekly.output
    found = list(csv.DictReader(io.StringIO(weekly.stdout)))
    week = [r for r in found if r["group"] == "Schedule/cli" and r["stratum"] == MONDAY]
    assert week == [
        {
            "group": "Schedule/cli",
            "stratifier": "period-week",
            "stratum": MONDAY,
            "population": "score",
            "value": str(float(THIRD_FREE)),
        }
    ]

    as_json = runner.invoke(cli, ["report", "no-show-rate", *PERIOD, "--format", "json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert orjson.loads(as_json.stdout)["resourceType"] == "MeasureReport"

    rebuilt = runner.invoke(cli, ["report", "rebuild"], env=env)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Appointment:" in rebuilt.stderr and "versions read" in rebuilt.stderr
    again = runner.invoke(cli, ["report", "appointment-volume", *PERIOD, "--by", "gender"], env=env)
    assert again.stdout == printed.stdout  # the rebuild counts what the follower counted

    runs = asyncio.run(report_runs())
    assert len(runs) == 5  # each report run, none for the rebuild
    assert {r["outcomeDesc"].split()[0] for r in runs} == {
        "Measure/appointment-volume",
        "Measure/no-show-rate",
        "Measure/patient-demographics",
        "Measure/third-next-available",
    }

    for args, message in (
        (["report", "nope", *PERIOD], "Measure/nope is not known"),
        (["report", "no-show-rate"], "--from and --to are required"),
        (["report", "no-show-rate", *PERIOD, "--by", "shoe"], "Stratifier"),
    ):
        failed = runner.invoke(cli, args, env=env)
        assert failed.exit_code == 1 and message in failed.stderr, failed.output
