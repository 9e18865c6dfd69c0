DROP TABLE rollup_stale;
DROP TABLE devices;
DROP TABLE rollup_id1_hour;
DROP TABLE rollup_type_hour;
DROP TABLE rollup_device_hour;
DROP TABLE rollup_dirty;
