DROP TABLE sensor_types;
