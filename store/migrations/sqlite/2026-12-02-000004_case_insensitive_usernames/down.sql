-- Names stay lower case; only the comparison goes back to exact.
DROP INDEX uq_users_username_nocase;
