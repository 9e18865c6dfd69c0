-- Hourly rollups of sensor_data and the device catalog, kept exact by the
-- rollup refresher (docs/DECISIONS.md, "Exact rollups: dirty hours").
-- An hour listed in rollup_dirty has rollups that may not match its rows;
-- every other hour's rollups match them exactly. marked_at is when it was
-- first marked since its last rebuild: the refresher lets an hour that is
-- still being written wait a little (QUIET in analytics_store.rs).
CREATE TABLE rollup_dirty (
    bucket DATETIME NOT NULL PRIMARY KEY,
    marked_at DATETIME(6) NOT NULL
) ENGINE=InnoDB;

CREATE TABLE rollup_device_hour (
    id1 VARCHAR(32) NOT NULL,
    id2 INT NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    bucket DATETIME NOT NULL,
    reading_count BIGINT NOT NULL,
    value_sum DOUBLE NOT NULL,
    value_min DOUBLE NOT NULL,
    value_max DOUBLE NOT NULL,
    first_at DATETIME(6) NOT NULL,
    first_value DOUBLE NOT NULL,
    last_at DATETIME(6) NOT NULL,
    last_value DOUBLE NOT NULL,
    PRIMARY KEY (id1, id2, sensor_type, bucket),
    KEY idx_rollup_device_hour_bucket (bucket)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE rollup_type_hour (
    sensor_type VARCHAR(64) NOT NULL,
    bucket DATETIME NOT NULL,
    reading_count BIGINT NOT NULL,
    value_sum DOUBLE NOT NULL,
    value_min DOUBLE NOT NULL,
    value_max DOUBLE NOT NULL,
    first_at DATETIME(6) NOT NULL,
    first_value DOUBLE NOT NULL,
    last_at DATETIME(6) NOT NULL,
    last_value DOUBLE NOT NULL,
    PRIMARY KEY (sensor_type, bucket),
    KEY idx_rollup_type_hour_bucket (bucket)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE rollup_id1_hour (
    id1 VARCHAR(32) NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    bucket DATETIME NOT NULL,
    reading_count BIGINT NOT NULL,
    value_sum DOUBLE NOT NULL,
    value_min DOUBLE NOT NULL,
    value_max DOUBLE NOT NULL,
    first_at DATETIME(6) NOT NULL,
    first_value DOUBLE NOT NULL,
    last_at DATETIME(6) NOT NULL,
    last_value DOUBLE NOT NULL,
    PRIMARY KEY (id1, sensor_type, bucket),
    KEY idx_rollup_id1_hour_bucket (bucket)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE devices (
    id1 VARCHAR(32) NOT NULL,
    id2 INT NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    first_seen DATETIME(6) NOT NULL,
    last_seen DATETIME(6) NOT NULL,
    last_value DOUBLE NOT NULL,
    reading_count BIGINT NOT NULL,
    PRIMARY KEY (id1, id2, sensor_type),
    KEY idx_devices_last_seen (last_seen)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Present while some writer runs with rollups off (ROLLUPS=off): its
-- writes mark no hours, so the refresher marks every hour dirty and
-- removes this row, and answers read rows until it has.
CREATE TABLE rollup_stale (
    id INTEGER NOT NULL PRIMARY KEY
) ENGINE=InnoDB;

-- Readings stored before this migration: every hour they fall in is dirty,
-- and the refresher builds its rollups.
INSERT INTO rollup_dirty (bucket, marked_at)
    SELECT DISTINCT DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:00:00'), UTC_TIMESTAMP(6) FROM sensor_data;
