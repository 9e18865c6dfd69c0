DROP INDEX uq_sensor_data_reading;
CREATE UNIQUE INDEX uq_sensor_data_reading ON sensor_data (id1, id2, sensor_type, "timestamp");
