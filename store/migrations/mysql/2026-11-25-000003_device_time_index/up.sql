-- "Latest readings of a device" orders by (timestamp, id) within id1/id2:
-- InnoDB appends the primary key to this index, so it is read in exactly
-- that order, with no sort.
CREATE INDEX idx_sensor_data_device_time ON sensor_data (id1, id2, `timestamp`);
