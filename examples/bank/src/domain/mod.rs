//! The bank's domain. Each aggregate lives in its own module; services (accounts today,
//! transfers and statements later) share only the events declared here.

pub mod account;
pub mod customer;
pub mod transfer;
