//! Every attribute and key name the macros read, in one place.

pub(crate) const EVENT: &str = "event";
pub(crate) const COMMAND: &str = "command";
pub(crate) const AGGREGATE: &str = "aggregate";
pub(crate) const APPLY: &str = "apply";

pub(crate) const NAME: &str = "name";
pub(crate) const VERSION: &str = "version";
pub(crate) const ID: &str = "id";
pub(crate) const ERROR: &str = "error";
pub(crate) const CRATE: &str = "crate";

/// The keys each attribute accepts, for "unknown key" messages.
pub(crate) const EVENT_KEYS: &[&str] = &[NAME, VERSION, CRATE];
pub(crate) const COMMAND_KEYS: &[&str] = &[CRATE];
pub(crate) const AGGREGATE_KEYS: &[&str] = &[NAME, ID, ERROR, CRATE];
pub(crate) const AGGREGATE_IMPL_KEYS: &[&str] = &[EVENT, COMMAND, CRATE];
