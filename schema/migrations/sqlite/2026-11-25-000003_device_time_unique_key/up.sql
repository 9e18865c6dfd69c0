-- Same uniqueness, columns reordered so the key also serves
-- "latest readings of a device" without sorting.
DROP INDEX uq_sensor_data_reading;
CREATE UNIQUE INDEX uq_sensor_data_reading ON sensor_data (id1, id2, "timestamp", sensor_type);
