CREATE TABLE sensor_data (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sensor_value DOUBLE NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    id1 VARCHAR(32) NOT NULL,
    id2 INT NOT NULL,
    `timestamp` DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY uq_sensor_data_reading (id1, id2, sensor_type, `timestamp`),
    KEY idx_sensor_data_timestamp (`timestamp`),
    KEY idx_sensor_data_type_timestamp (sensor_type, `timestamp`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
