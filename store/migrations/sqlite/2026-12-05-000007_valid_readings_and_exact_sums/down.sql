ALTER TABLE rollup_id1_hour DROP COLUMN value_sum_error;
ALTER TABLE rollup_type_hour DROP COLUMN value_sum_error;
ALTER TABLE rollup_device_hour DROP COLUMN value_sum_error;
DROP TRIGGER trg_sensor_data_valid_update;
DROP TRIGGER trg_sensor_data_valid_insert;
DROP TABLE quarantined_readings;
