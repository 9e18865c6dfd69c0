#!/usr/bin/env python3
"""Turns a migrated SQLite datastream database into one an older version
could have left: migration 7 undone, and readings no writer accepts any
more stored beside valid ones (a leap second, values beyond ±1e15, values
near ±1e15 that cancel in sums). The next start of datastream must repair
it; CI then runs schemathesis against it.

    scripts/hostile-database.py PATH/datastream.db
"""
import pathlib
import sqlite3
import sys
from datetime import datetime, timedelta, timezone

root = pathlib.Path(__file__).resolve().parent.parent
migration = next((root / "store/migrations/sqlite").glob("*_valid_readings_and_exact_sums"))
db = sqlite3.connect(sys.argv[1])
db.executescript((migration / "down.sql").read_text())
db.execute("DELETE FROM __diesel_schema_migrations WHERE version = ?", (migration.name.split("_")[0].replace("-", ""),))
hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
rows = []
for i in range(200):
    at = hour + timedelta(seconds=i * 17)
    value = [9.99e14, 0.1, -9.99e14, 0.25][i % 4]
    rows.append((value, "hostile", "HOSTILE", i % 4, at.strftime("%Y-%m-%d %H:%M:%S.%f")))
rows.append((21.5, "hostile", "HOSTILE", 9, hour.strftime("%Y-%m-%d 23:59:60.000000")))
rows.append((1.7e308, "hostile", "HOSTILE", 9, hour.strftime("%Y-%m-%d %H:10:00.000000")))
rows.append((-1e16, "hostile", "HOSTILE", 9, hour.strftime("%Y-%m-%d %H:20:00.000000")))
db.executemany(
    'INSERT INTO sensor_data (sensor_value, sensor_type, id1, id2, "timestamp") VALUES (?, ?, ?, ?, ?)',
    rows,
)
db.execute(
    "INSERT OR IGNORE INTO rollup_dirty (bucket, marked_at) VALUES (?, ?)",
    (hour.strftime("%Y-%m-%d %H:00:00"), hour.strftime("%Y-%m-%d %H:00:00")),
)
db.commit()
print(f"{sys.argv[1]}: {len(rows)} readings as an older version stored them, 3 of them hostile")
