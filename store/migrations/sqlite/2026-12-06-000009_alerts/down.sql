DROP TABLE alerter_lease;
DROP TABLE alert_deliveries;
DROP TABLE alert_notifications;
DROP TABLE alerts;
DROP TABLE alert_states;
DROP TABLE alert_rules;
