DROP INDEX idx_sensor_data_device_time ON sensor_data;
