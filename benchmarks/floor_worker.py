"""The notification worker's floor: a bare Celery task doing the same store calls and SMTP send.

Run by `celery -A benchmarks.floor_worker worker -P solo -Q floor` (as
`bench_notify` does), with the real worker's settings for taking and
acknowledging tasks (acks late, prefetch 1, JSON: read from its app). Like
the real one (`notifications.delivery`), the first task of a batch takes up
to 50 never-attempted messages and the later tasks of the batch return at
once; for the batch it issues, through
plain PyMongo, the real worker's commands: read the batch; claim it (history
rows, one bulk replace of the current rows); read the appointment versions;
per message an SMTP send on one connection and its sent mark; settle (history
rows, bulk replace); drop the sent marks. What it leaves out is our work:
rendering the message from the appointment and templates (it sends the bytes
of a real message, `FLOOR_MAIL`), JSON parsing, indexing, the checks.

Environment: FHIR_MONGODB_URI, FHIR_DATABASE, FHIR_REDIS_URL, FHIR_SMTP_HOST,
FHIR_SMTP_PORT, FLOOR_MAIL (a file holding one message as sent).
"""

from __future__ import annotations

import os
import smtplib
from pathlib import Path
from typing import Any

from celery import Celery
from pymongo import MongoClient, ReplaceOne

from fhir_server.notifications.celery_app import make_celery
from fhir_server.settings import Settings

BATCH = 50
TASK = "benchmarks.floor_send"
QUEUE = "floor"

_BROKER = os.environ.get("FHIR_REDIS_URL", "memory://")
# The real worker's settings for how tasks are taken and acknowledged, read from its app.
_SAME = (
    "task_ignore_result",
    "task_acks_late",
    "task_reject_on_worker_lost",
    "worker_prefetch_multiplier",
    "task_serializer",
    "accept_content",
    "worker_hijack_root_logger",
)
_ours = make_celery(Settings(), url=_BROKER).conf
app = Celery("floor", broker=_BROKER)
app.conf.update({name: _ours[name] for name in _SAME}, task_default_queue=QUEUE)
_finished: set[str] = set()
_db: Any = None


def _database() -> Any:
    global _db
    if _db is None:
        client: MongoClient[dict[str, Any]] = MongoClient(os.environ["FHIR_MONGODB_URI"])
        _db = client[os.environ["FHIR_DATABASE"]]
    return _db


def _next(rows: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    """Each row's next version with the status swapped in its body text."""
    out = []
    for row in rows:
        body = str(row["body"])
        for old in ('"status":"preparation"', '"status":"in-progress"'):
            body = body.replace(old, f'"status":"{status}"')
        out.append({**row, "version": row["version"] + 1, "body": body})
    return out


def _write(db: Any, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """The real worker's versioned batch write: history rows, then one bulk replace."""
    history = [
        {"_id": f"Communication/{row['_id']}/{row['version']}", "type": "Communication",
         "id": row["_id"], "version": row["version"], "updated": row["updated"],
         "at": row["updated"], "deleted": False, "method": "PUT", "body": row["body"]}
        for row in after
    ]  # fmt: skip
    db.history.insert_many(history, ordered=False)
    db.Communication.bulk_write(
        [
            ReplaceOne({"_id": old["_id"], "version": old["version"]}, new)
            for old, new in zip(before, after, strict=True)
        ],
        ordered=False,
    )


@app.task(name=TASK)
def floor_send(cid: str) -> None:
    if cid in _finished:
        return
    db = _database()
    query = {"idx.s.status": {"$eq": "preparation"}, "version": 1, "deleted": {"$eq": False}}
    rows = list(db.Communication.find(query).sort("updated", 1).limit(BATCH))
    if all(row["_id"] != cid for row in rows):
        head = db.Communication.find_one({"_id": cid})
        rows = [head, *rows[: BATCH - 1]] if head else rows
    if not rows:
        return
    claimed = _next(rows, "in-progress")
    _write(db, rows, claimed)
    keys = [f"Appointment/{row['_id']}/1" for row in rows]
    list(db.history.find({"_id": {"$in": keys}}))
    mail = Path(os.environ["FLOOR_MAIL"]).read_bytes()
    port = int(os.environ["FHIR_SMTP_PORT"])
    with smtplib.SMTP(os.environ["FHIR_SMTP_HOST"], port) as smtp:
        for row in claimed:
            smtp.sendmail("clinic@bench.example", ["floor@bench.example"], mail)
            db.notification_sent.insert_one({"_id": row["_id"]})
    _write(db, claimed, _next(claimed, "completed"))
    db.notification_sent.delete_many({"_id": {"$in": [row["_id"] for row in rows]}})
    _finished.update(row["_id"] for row in rows)
