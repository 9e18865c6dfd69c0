-- User names are compared without case and stored in lower case (the
-- domain's Username lower-cases on parse). Names that differed only in case
-- become distinct names: the oldest account keeps the name, the others get
-- `-dup{id}` appended (the admin can rename or delete them).
UPDATE users
  SET username = substr(lower(username), 1, 40) || '-dup' || id
  WHERE EXISTS (
    SELECT 1 FROM users AS older
    WHERE lower(older.username) = lower(users.username) AND older.id < users.id
  );
UPDATE users SET username = lower(username);
-- And the database holds it too, whatever writes the table.
CREATE UNIQUE INDEX uq_users_username_nocase ON users (username COLLATE NOCASE);
