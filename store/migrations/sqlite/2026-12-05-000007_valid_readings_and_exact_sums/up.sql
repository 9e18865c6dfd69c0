-- Readings no writer accepts any more, which older versions stored: a leap
-- second (kept as text with second 60) and values beyond ±1e15 (whose sums
-- overflow). They are set aside here, out of every read; their hours'
-- rollups are rebuilt. Then triggers make the table skip them itself,
-- whoever writes (as MySQL's CHECK constraints do for INSERT IGNORE).
CREATE TABLE quarantined_readings (
    id INTEGER NOT NULL PRIMARY KEY,
    sensor_value DOUBLE NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    id1 VARCHAR(32) NOT NULL,
    id2 INTEGER NOT NULL,
    "timestamp" TIMESTAMP NULL,
    stored_as VARCHAR(32) NOT NULL,
    created_at TIMESTAMP NOT NULL,
    reason VARCHAR(64) NOT NULL,
    quarantined_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

INSERT INTO quarantined_readings (id, sensor_value, sensor_type, id1, id2, "timestamp", stored_as, created_at, reason)
SELECT id, sensor_value, sensor_type, id1, id2, "timestamp", "timestamp", created_at,
       CASE WHEN substr("timestamp", 18, 2) >= '60' THEN 'timestamp is a leap second'
            ELSE 'sensor_value beyond 1e15' END
FROM sensor_data
WHERE substr("timestamp", 18, 2) >= '60' OR NOT (sensor_value BETWEEN -1e15 AND 1e15);

DELETE FROM sensor_data WHERE id IN (SELECT id FROM quarantined_readings);

-- The hour as the writer marked it (strftime would carry second 60 into
-- the next hour).
INSERT OR IGNORE INTO rollup_dirty (bucket, marked_at)
SELECT DISTINCT substr("timestamp", 1, 13) || ':00:00', strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM quarantined_readings;

CREATE TRIGGER trg_sensor_data_valid_insert BEFORE INSERT ON sensor_data
WHEN substr(NEW."timestamp", 18, 2) >= '60' OR NOT (NEW.sensor_value BETWEEN -1e15 AND 1e15)
BEGIN
    SELECT RAISE(IGNORE);
END;
CREATE TRIGGER trg_sensor_data_valid_update BEFORE UPDATE OF sensor_value, "timestamp" ON sensor_data
WHEN substr(NEW."timestamp", 18, 2) >= '60' OR NOT (NEW.sensor_value BETWEEN -1e15 AND 1e15)
BEGIN
    SELECT RAISE(ABORT, 'sensor_value must be from -1e15 to 1e15 and timestamp a time without second 60');
END;

-- Rollup sums are compensated (Neumaier): the stored sum plus its rounding
-- error is the exact sum to about one unit in the last place.
ALTER TABLE rollup_device_hour ADD COLUMN value_sum_error DOUBLE NOT NULL DEFAULT 0;
ALTER TABLE rollup_type_hour ADD COLUMN value_sum_error DOUBLE NOT NULL DEFAULT 0;
ALTER TABLE rollup_id1_hour ADD COLUMN value_sum_error DOUBLE NOT NULL DEFAULT 0;
