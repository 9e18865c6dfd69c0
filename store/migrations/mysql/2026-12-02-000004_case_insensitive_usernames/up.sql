-- User names are compared without case and stored in lower case (the
-- domain's Username lower-cases on parse). Names that differed only in case
-- become distinct names: the oldest account keeps the name, the others get
-- `-dup{id}` appended (the admin can rename or delete them).
UPDATE users u
  JOIN users older ON LOWER(older.username) = LOWER(u.username) AND older.id < u.id
  SET u.username = CONCAT(LEFT(LOWER(u.username), 40), '-dup', u.id);
UPDATE users SET username = LOWER(username);
-- And the database holds it too, whatever writes the table.
ALTER TABLE users MODIFY username VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL;
