//! The `Customer` aggregate: registration with an e-mail address no other customer holds.
//!
//! Uniqueness across aggregates is set-based validation: no aggregate can see the others.
//! The pattern: register with [`Repository::execute_claiming`](es_core::Repository::execute_claiming),
//! claiming the normalized address ([`email_claim`]). The customer's events and the claim
//! land atomically, so of concurrent registrations of one address exactly one succeeds and
//! every other gets `Error::Claimed` with nothing written, on every store:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use bank::domain::customer::{email_claim, Customer, CustomerId, RegisterCustomer};
//! use es_core::{Error, InMemoryStore, Repository};
//!
//! let customers = Repository::<Customer, _>::new(InMemoryStore::new());
//! let register = |email: &str| RegisterCustomer { name: "Ada".into(), email: email.into() };
//! let claim = email_claim("ada@example.com").unwrap();
//! customers.execute_claiming(&CustomerId::new(), register("ada@example.com"), [claim.clone()]).await.unwrap();
//! let again = customers
//!     .execute_claiming(&CustomerId::new(), register(" ADA@Example.com"), [email_claim(" ADA@Example.com").unwrap()])
//!     .await;
//! assert!(matches!(again, Err(Error::Claimed { claim: c }) if c == claim));
//! # });
//! ```

use std::fmt;
use std::str::FromStr;

use es_core::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A customer's id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct CustomerId(Uuid);

impl CustomerId {
    /// A fresh, time-ordered id (each call a new one).
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

/// The nil id (all zeros): deterministic, never a fresh customer's id.
impl Default for CustomerId {
    fn default() -> Self {
        Self(Uuid::nil())
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for CustomerId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// Why the customer said no.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    /// `RegisterCustomer` on a customer that exists.
    #[error("the customer is already registered")]
    AlreadyRegistered,
    /// Not an e-mail address.
    #[error("{0:?} is not an e-mail address")]
    InvalidEmail(String),
    /// The name is empty.
    #[error("the name is empty")]
    EmptyName,
}

/// The claim stream of an e-mail address: the address trimmed and in lower case (the
/// same mailbox in practice), in category `email`.
///
/// # Errors
///
/// [`CustomerError::InvalidEmail`] for anything without one `@` between non-empty parts, or
/// longer than 254 bytes (the SMTP limit).
pub fn email_claim(email: &str) -> Result<StreamId, CustomerError> {
    let normalized = email.trim().to_lowercase();
    let valid = normalized.len() <= 254
        && !normalized.chars().any(char::is_whitespace)
        && normalized.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if valid {
        Ok(StreamId::new("email", normalized))
    } else {
        Err(CustomerError::InvalidEmail(email.to_owned()))
    }
}

/// Register a customer.
#[derive(Command, Serialize, Deserialize, Clone, Debug)]
pub struct RegisterCustomer {
    /// The customer's name.
    pub name: String,
    /// The e-mail address, as typed (normalized by [`email_claim`]).
    pub email: String,
}

/// The customer registered.
#[derive(Event, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[event(name = "CustomerRegistered", version = 1)]
pub struct CustomerRegistered {
    /// The name.
    pub name: String,
    /// The normalized e-mail address.
    pub email: String,
}

/// A customer of the bank.
#[derive(Aggregate, Default, Clone, Debug)]
#[aggregate(name = "customer", id = CustomerId, error = CustomerError)]
pub struct Customer {
    email: Option<String>,
}

impl Customer {
    /// The registered e-mail address.
    #[must_use]
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
}

#[aggregate_impl]
impl Customer {
    #[command]
    fn register(&self, cmd: RegisterCustomer) -> Result<CustomerRegistered, CustomerError> {
        if self.email.is_some() {
            return Err(CustomerError::AlreadyRegistered);
        }
        if cmd.name.trim().is_empty() {
            return Err(CustomerError::EmptyName);
        }
        let claim = email_claim(&cmd.email)?;
        Ok(CustomerRegistered {
            name: cmd.name.trim().to_owned(),
            email: claim.id().to_owned(),
        })
    }

    #[apply]
    fn registered(&mut self, e: &CustomerRegistered) {
        self.email = Some(e.email.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized_and_checked() {
        assert_eq!(
            email_claim("  Ada@Example.COM ").map(|c| c.id().to_owned()),
            Ok("ada@example.com".to_owned())
        );
        for bad in ["", "ada", "@example.com", "ada@", "a@b@c", "a b@c.d"] {
            assert!(email_claim(bad).is_err(), "{bad}");
        }
    }
}
