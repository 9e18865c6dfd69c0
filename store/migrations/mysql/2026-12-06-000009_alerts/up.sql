-- Alerts: rules, each device's state under each rule, the alerts that
-- fired, the notifications to deliver (an outbox written in the same
-- transaction as the state that caused them), each delivery attempt, and
-- the lease that lets one alerter evaluate at a time.
CREATE TABLE alert_rules (
    id BIGINT NOT NULL PRIMARY KEY,
    revision BIGINT NOT NULL,
    name VARCHAR(128) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    id1 VARCHAR(32) NULL,
    id2 INT NULL,
    comparison VARCHAR(8) NULL,
    limit_value DOUBLE NULL,
    clear_at DOUBLE NULL,
    span_ms BIGINT NOT NULL,
    repeat_ms BIGINT NULL,
    webhook_url VARCHAR(2048) NULL,
    webhook_secret VARCHAR(256) NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alert_states (
    rule_id BIGINT NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    id1 VARCHAR(32) NOT NULL,
    id2 INT NOT NULL,
    state VARCHAR(8) NOT NULL,
    since DATETIME(6) NULL,
    newest DATETIME(6) NULL,
    last_arrival DATETIME(6) NULL,
    alert_id BIGINT NULL,
    PRIMARY KEY (rule_id, sensor_type, id1, id2)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alerts (
    id BIGINT NOT NULL PRIMARY KEY,
    rule_id BIGINT NOT NULL,
    rule_name VARCHAR(128) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    sensor_type VARCHAR(64) NOT NULL,
    id1 VARCHAR(32) NOT NULL,
    id2 INT NOT NULL,
    state VARCHAR(8) NOT NULL,
    started_at DATETIME(6) NOT NULL,
    start_value DOUBLE NULL,
    since DATETIME(6) NULL,
    fired_at DATETIME(6) NOT NULL,
    resolved_at DATETIME(6) NULL,
    resolved_value DOUBLE NULL,
    resolved_by VARCHAR(16) NULL,
    KEY alerts_state (state, id),
    KEY alerts_device (sensor_type, id1, id2, id),
    KEY alerts_rule (rule_id, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alert_notifications (
    id BIGINT NOT NULL PRIMARY KEY,
    alert_id BIGINT NOT NULL,
    topic VARCHAR(255) NOT NULL,
    payload TEXT NOT NULL,
    mqtt_done BOOLEAN NOT NULL,
    webhook_url VARCHAR(2048) NULL,
    webhook_secret VARCHAR(256) NULL,
    webhook_done BOOLEAN NOT NULL,
    webhook_attempts INT NOT NULL,
    next_attempt_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    KEY notifications_pending (mqtt_done, webhook_done, id),
    KEY notifications_alert (alert_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alert_deliveries (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    notification_id BIGINT NOT NULL,
    alert_id BIGINT NOT NULL,
    channel VARCHAR(8) NOT NULL,
    attempt INT NOT NULL,
    at DATETIME(6) NOT NULL,
    ok BOOLEAN NOT NULL,
    outcome VARCHAR(255) NOT NULL,
    KEY deliveries_alert (alert_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alerter_lease (
    name VARCHAR(32) NOT NULL PRIMARY KEY,
    holder VARCHAR(128) NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO alerter_lease (name, holder, epoch, expires_at)
    VALUES ('alerter', '', 0, '1970-01-01 00:00:00');
