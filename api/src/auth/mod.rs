//! Users' credentials: argon2 passwords (checked on a few worker threads),
//! the login throttle, and the directory that confirms a token's account
//! still exists. Tokens and the extractor are `datastream_http::auth`'s.

mod directory;
mod password;
mod password_workers;
mod sign_in;
mod throttle;

pub use directory::{UserDirectory, USER_CACHE_TTL};
pub use password::{hash_password, verify_password};
pub use password_workers::{Busy, PasswordWorkers};
pub use sign_in::{IssuedToken, SignInError};
pub use throttle::{LoginAttempt, LoginThrottle};
