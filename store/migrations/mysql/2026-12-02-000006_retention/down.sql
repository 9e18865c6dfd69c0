DROP TABLE retention_horizon;
