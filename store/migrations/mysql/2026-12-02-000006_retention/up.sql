-- Retention (RETENTION): raw readings before raw_before are being removed.
-- Below it the hourly rollups are the record (they are never rebuilt
-- there), dirty marks mean nothing, and the device catalog counts only
-- readings at or after it. One row, id 1, once retention has retired an hour.
CREATE TABLE retention_horizon (
    id INTEGER NOT NULL PRIMARY KEY,
    raw_before DATETIME NOT NULL
) ENGINE=InnoDB;
