//! Every attribute and key name the macros read, in one place (after serde_derive's
//! `internals/symbol.rs`). Which keys an attribute accepts is not listed here: each parser in
//! `attr` dispatches on a table of (key, handler), and that table is also the list an "unknown
//! key" message shows, so a key is either handled or reported, never guessed.

use std::fmt::{self, Display};

use syn::{Ident, Path};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Symbol(&'static str);

// Attributes.
pub(crate) const EVENT: Symbol = Symbol("event");
pub(crate) const COMMAND: Symbol = Symbol("command");
pub(crate) const AGGREGATE: Symbol = Symbol("aggregate");
pub(crate) const AGGREGATE_IMPL: Symbol = Symbol("aggregate_impl");
pub(crate) const APPLY: Symbol = Symbol("apply");
pub(crate) const CFG: Symbol = Symbol("cfg");
pub(crate) const CFG_ATTR: Symbol = Symbol("cfg_attr");
pub(crate) const SERDE: Symbol = Symbol("serde");
pub(crate) const PROJECTION: Symbol = Symbol("projection");
pub(crate) const PROJECTION_IMPL: Symbol = Symbol("projection_impl");
pub(crate) const REACTOR: Symbol = Symbol("reactor");
pub(crate) const REACTOR_IMPL: Symbol = Symbol("reactor_impl");
pub(crate) const ON: Symbol = Symbol("on");
pub(crate) const PERSONAL: Symbol = Symbol("personal");

// Keys. `event` and `command` are also keys of `#[aggregate_impl(...)]`.
pub(crate) const NAME: Symbol = Symbol("name");
pub(crate) const VERSION: Symbol = Symbol("version");
pub(crate) const ID: Symbol = Symbol("id");
pub(crate) const ERROR: Symbol = Symbol("error");
pub(crate) const CRATE: Symbol = Symbol("crate");
pub(crate) const RENAME: Symbol = Symbol("rename");
pub(crate) const DDL: Symbol = Symbol("ddl");
pub(crate) const PREVIOUS: Symbol = Symbol("previous");
pub(crate) const UPCAST: Symbol = Symbol("upcast");
pub(crate) const SNAPSHOT: Symbol = Symbol("snapshot");
pub(crate) const EVERY: Symbol = Symbol("every");
pub(crate) const SUBJECT: Symbol = Symbol("subject");

/// The crate the generated code names when no `crate = path` is given.
pub(crate) const ES_CORE: Symbol = Symbol("es_core");

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for &Ident {
    fn eq(&self, word: &Symbol) -> bool {
        *self == word.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl Display for Symbol {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.0)
    }
}
