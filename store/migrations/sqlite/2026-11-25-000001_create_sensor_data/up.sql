CREATE TABLE sensor_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    sensor_value DOUBLE NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    id1 VARCHAR(32) NOT NULL,
    id2 INTEGER NOT NULL,
    "timestamp" TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);
CREATE UNIQUE INDEX uq_sensor_data_reading ON sensor_data (id1, id2, sensor_type, "timestamp");
CREATE INDEX idx_sensor_data_timestamp ON sensor_data ("timestamp");
CREATE INDEX idx_sensor_data_type_timestamp ON sensor_data (sensor_type, "timestamp");
CREATE TRIGGER trg_sensor_data_updated_at AFTER UPDATE OF sensor_value, sensor_type, id1, id2, "timestamp" ON sensor_data
BEGIN
    UPDATE sensor_data SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = NEW.id;
END;
