-- Same uniqueness, columns reordered so the key also serves
-- "latest readings of a device" (id1 = ? AND id2 = ? ORDER BY timestamp)
-- without sorting.
ALTER TABLE sensor_data
    DROP INDEX uq_sensor_data_reading,
    ADD UNIQUE KEY uq_sensor_data_reading (id1, id2, `timestamp`, sensor_type);
