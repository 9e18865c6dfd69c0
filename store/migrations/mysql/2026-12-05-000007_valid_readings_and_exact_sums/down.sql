ALTER TABLE rollup_id1_hour DROP COLUMN value_sum_error;
ALTER TABLE rollup_type_hour DROP COLUMN value_sum_error;
ALTER TABLE rollup_device_hour DROP COLUMN value_sum_error;
ALTER TABLE sensor_data DROP CONSTRAINT ck_sensor_data_value, DROP CONSTRAINT ck_sensor_data_timestamp;
DROP TABLE quarantined_readings;
