//! API users: names and roles. Password hashing lives in the API crate;
//! the store only keeps the hash.

use std::fmt;

/// Why a user field was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The username is not `[A-Za-z0-9_.-]{1,64}`.
    #[error("username must match [A-Za-z0-9_.-]{{1,64}}")]
    InvalidUsername,
    /// The role is not `admin` or `viewer`.
    #[error("role must be admin or viewer")]
    InvalidRole,
}

/// A login name: `[A-Za-z0-9_.-]{1,64}`, compared without case and kept in
/// lower case, so `Admin` and `admin` are one name on every backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username, lower-casing it.
    pub fn parse(s: &str) -> Result<Self, UserError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(UserError::InvalidUsername)
        }
    }

    /// The username as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user may do: viewers read, admins also write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads, edits, deletes, manages users.
    Admin,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Parses `admin` or `viewer`.
    pub fn parse(s: &str) -> Result<Self, UserError> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            _ => Err(UserError::InvalidRole),
        }
    }

    /// The role as stored and as put in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// When the account was created. With the id it tells this account
    /// from a later one of the same name: tokens carry both.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Login name.
    pub username: Username,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
}

/// A change to one account that could leave nobody able to manage users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// The account is deleted.
    Delete,
    /// The account gets this role.
    SetRole(Role),
}

/// Whether applying `change` to `username` among `users` would leave no
/// admin (the last admin cannot be deleted or demoted).
pub fn leaves_no_admin(users: &[User], username: &Username, change: AccountChange) -> bool {
    let admins_after = users
        .iter()
        .filter(|u| match (&u.username == username, change) {
            (false, _) => u.role == Role::Admin,
            (true, AccountChange::Delete) => false,
            (true, AccountChange::SetRole(role)) => role == Role::Admin,
        })
        .count();
    let admins_before = users.iter().filter(|u| u.role == Role::Admin).count();
    admins_before > 0 && admins_after == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role) -> User {
        User {
            id: 1,
            created_at: chrono::DateTime::UNIX_EPOCH,
            username: Username::parse(name).unwrap(),
            password_hash: String::new(),
            role,
        }
    }

    #[test]
    fn the_last_admin_can_be_neither_deleted_nor_demoted() {
        let users = [user("root", Role::Admin), user("eve", Role::Viewer)];
        let root = Username::parse("root").unwrap();
        let eve = Username::parse("eve").unwrap();
        assert!(leaves_no_admin(&users, &root, AccountChange::Delete));
        assert!(leaves_no_admin(
            &users,
            &root,
            AccountChange::SetRole(Role::Viewer)
        ));
        assert!(!leaves_no_admin(
            &users,
            &root,
            AccountChange::SetRole(Role::Admin)
        ));
        assert!(!leaves_no_admin(&users, &eve, AccountChange::Delete));
        let two = [user("root", Role::Admin), user("ops", Role::Admin)];
        assert!(!leaves_no_admin(&two, &root, AccountChange::Delete));
    }

    #[test]
    fn usernames() {
        assert!(Username::parse("admin").is_ok());
        assert!(Username::parse("a.b-c_D9").is_ok());
        for bad in ["", "a b", "ä", "x/y", &"a".repeat(65)] {
            assert_eq!(
                Username::parse(bad),
                Err(UserError::InvalidUsername),
                "{bad}"
            );
        }
    }

    #[test]
    fn usernames_are_kept_in_lower_case() {
        assert_eq!(Username::parse("ADMIN0").unwrap().as_str(), "admin0");
        assert_eq!(Username::parse("Admin0"), Username::parse("admin0"));
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Admin, Role::Viewer] {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert_eq!(Role::parse("root"), Err(UserError::InvalidRole));
    }
}
