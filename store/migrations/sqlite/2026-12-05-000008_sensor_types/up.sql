-- The sensor-type catalog: how to label a type's readings (unit, display
-- name) and what values to expect. Readings never depend on it: a type
-- seen in readings but not here is simply shown without a unit. Seeded
-- with the default generators' types and their units.
CREATE TABLE sensor_types (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    unit VARCHAR(16) NULL,
    display_name VARCHAR(64) NULL,
    expected_min DOUBLE NULL,
    expected_max DOUBLE NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
);

INSERT INTO sensor_types (name, unit, display_name, expected_min, expected_max) VALUES
    ('temperature', '°C', 'Temperature', -40, 85),
    ('humidity', '%', 'Relative humidity', 0, 100),
    ('pressure', 'hPa', 'Air pressure', 870, 1085),
    ('co2', 'ppm', 'CO₂', 0, 10000),
    ('vibration', 'mm/s', 'Vibration', 0, 100),
    ('light', 'lx', 'Illuminance', 0, 100000);
