ALTER TABLE sensor_data
    DROP INDEX uq_sensor_data_reading,
    ADD UNIQUE KEY uq_sensor_data_reading (id1, id2, sensor_type, `timestamp`);
