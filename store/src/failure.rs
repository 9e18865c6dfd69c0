//! `Failure`: what goes wrong inside the store, on its way to the
//! domain's [`StoreError`].
//!
//! [`StoreError`] belongs to the domain, which knows no database, and
//! diesel's error to diesel: neither crate is this one, so the conversion
//! between them cannot be a `From` impl on either. Inside the store every
//! fallible step returns a `Failure` instead, which both convert into with
//! `?`, and which becomes a [`StoreError`] where the store's traits answer.

use datastream_domain::StoreError;

/// A failed store step: the [`StoreError`] it will be answered as.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) StoreError);

/// A store step's result.
pub(crate) type Outcome<T> = Result<T, Failure>;

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self(e)
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        f.0
    }
}

/// diesel's errors as store errors: no diesel type is part of
/// [`StoreError`].
impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        Self(match e {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => StoreError::Conflict,
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            // InnoDB's 1213 and 1205; diesel gives them no kind of their own.
            Error::DatabaseError(_, info)
                if info.message().starts_with("Deadlock found")
                    || info.message().starts_with("Lock wait timeout") =>
            {
                StoreError::Contention(info.message().to_owned())
            }
            other => StoreError::Query(Box::new(other)),
        })
    }
}

impl Failure {
    /// The store is unavailable, for `reason`.
    pub(crate) fn unavailable(reason: impl std::fmt::Display) -> Self {
        Self(StoreError::Unavailable(reason.to_string()))
    }

    /// Whether this is a lost deadlock or lock wait, worth another try.
    pub(crate) fn is_contention(&self) -> bool {
        matches!(self.0, StoreError::Contention(_))
    }
}
