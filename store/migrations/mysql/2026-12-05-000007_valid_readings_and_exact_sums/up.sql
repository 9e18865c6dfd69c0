-- Readings no writer accepts any more, which older versions stored: a leap
-- second (MySQL kept it as the zero date, which no reader can decode) and
-- values beyond ±1e15 (whose sums overflow). They are set aside here, with
-- their device, value and stored time, out of every read; their hours'
-- rollups are rebuilt. Then the table refuses them itself, whoever writes.
CREATE TABLE quarantined_readings (
    id BIGINT NOT NULL PRIMARY KEY,
    sensor_value DOUBLE NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    id1 VARCHAR(32) NOT NULL,
    id2 INT NOT NULL,
    -- NULL when the stored time was not a date; stored_as says what it was.
    `timestamp` DATETIME(6) NULL,
    stored_as VARCHAR(32) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    reason VARCHAR(64) NOT NULL,
    quarantined_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO quarantined_readings (id, sensor_value, sensor_type, id1, id2, `timestamp`, stored_as, created_at, reason)
SELECT id, sensor_value, sensor_type, id1, id2,
       IF(`timestamp` < '1000-01-01', NULL, `timestamp`),
       CAST(`timestamp` AS CHAR),
       created_at,
       IF(`timestamp` < '1000-01-01', 'timestamp is not a date (a leap second)', 'sensor_value beyond 1e15')
FROM sensor_data
WHERE `timestamp` < '1000-01-01' OR NOT (sensor_value BETWEEN -1e15 AND 1e15);

DELETE sensor_data FROM sensor_data JOIN quarantined_readings q ON q.id = sensor_data.id;

INSERT IGNORE INTO rollup_dirty (bucket, marked_at)
SELECT DISTINCT DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:00:00'), UTC_TIMESTAMP(6)
FROM quarantined_readings WHERE `timestamp` IS NOT NULL;

ALTER TABLE sensor_data
    ADD CONSTRAINT ck_sensor_data_timestamp CHECK (`timestamp` >= '1000-01-01'),
    ADD CONSTRAINT ck_sensor_data_value CHECK (sensor_value BETWEEN -1e15 AND 1e15);

-- Rollup sums are compensated (Neumaier): the stored sum plus its rounding
-- error is the exact sum to about one unit in the last place.
ALTER TABLE rollup_device_hour ADD COLUMN value_sum_error DOUBLE NOT NULL DEFAULT 0;
ALTER TABLE rollup_type_hour ADD COLUMN value_sum_error DOUBLE NOT NULL DEFAULT 0;
ALTER TABLE rollup_id1_hour ADD COLUMN value_sum_error DOUBLE NOT NULL DEFAULT 0;
