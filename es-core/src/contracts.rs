//! Event contracts: every stored (name, version) an aggregate reads, with the JSON Schema of
//! its payload (for event types that `#[derive(JsonSchema)]`, schemars 1). Services that
//! share events share these; a stored (name, version) must never change its shape: a new
//! shape is a new version with an upcasting step.
//!
//! [`Contracts::write`] puts them in a folder (one file per (name, version)), and
//! [`Contracts::check`] compares the code with a committed folder: a changed schema, a
//! version the code no longer reads, or one not written yet is reported, each naming the
//! event and what changed.
//!
//! ```
//! use es_core::contracts::Contracts;
//! # use es_core::testing::evolution::Ledger;
//!
//! let contracts = Contracts::new().of::<Ledger>();
//! let deposited: Vec<u16> = contracts
//!     .iter()
//!     .filter(|c| c.name == "LedgerDeposited")
//!     .map(|c| c.version)
//!     .collect();
//! assert_eq!(deposited, [1, 2, 3]); // today's version and its `previous` chain
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Display};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::{Aggregate, EventSet};

/// One stored (name, version) and the schema of its payload.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Contract {
    /// The stored name ([`Event::NAME`](crate::Event::NAME)).
    pub name: &'static str,
    /// The schema version.
    pub version: u16,
    /// The payload's JSON Schema (`None`: the type does not derive `JsonSchema`).
    pub schema: Option<Value>,
}

impl Contract {
    /// A contract for (`name`, `version`).
    #[must_use]
    pub fn new(name: &'static str, version: u16, schema: Option<Value>) -> Self {
        Self {
            name,
            version,
            schema,
        }
    }

    /// The file this contract is written to in a folder: the stored name with characters
    /// outside `[A-Za-z0-9._-]` replaced by `_`, then `.v{version}.json`.
    #[must_use]
    pub fn file_name(&self) -> String {
        let name: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{name}.v{}.json", self.version)
    }

    fn to_file(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "version": self.version,
            "schema": self.schema,
        })
    }
}

/// The event contracts of some aggregates, by (name, version).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Contracts {
    by_key: BTreeMap<(&'static str, u16), Contract>,
}

impl Contracts {
    /// None yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every event type `A` reads: each applied type and the types of its `previous`
    /// chain (a JSON `upcast` step keeps no type, so its older version has no contract).
    ///
    /// # Panics
    ///
    /// When two types of the aggregates added so far share a (name, version) with different
    /// schemas: one stored event cannot have two shapes.
    #[must_use]
    pub fn of<A: Aggregate>(mut self) -> Self {
        for contract in <A::Event as EventSet>::contracts() {
            let key = (contract.name, contract.version);
            if let Some(kept) = self.by_key.get(&key) {
                assert!(
                    kept.schema == contract.schema,
                    "two event types are stored as `{}` version {} with different schemas",
                    contract.name,
                    contract.version
                );
            }
            self.by_key.insert(key, contract);
        }
        self
    }

    /// The contracts, ordered by name then version.
    pub fn iter(&self) -> impl Iterator<Item = &Contract> {
        self.by_key.values()
    }

    /// Writes one file per contract into `dir` (created if missing): `{"name", "version",
    /// "schema"}`, pretty-printed. Returns the files written.
    ///
    /// # Errors
    ///
    /// The folder or a file cannot be written.
    pub fn write(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut written = Vec::new();
        for contract in self.iter() {
            let path = dir.join(contract.file_name());
            let mut text =
                serde_json::to_string_pretty(&contract.to_file()).map_err(std::io::Error::other)?;
            text.push('\n');
            std::fs::write(&path, text)?;
            written.push(path);
        }
        Ok(written)
    }

    /// Compares the code's contracts with those written in `dir`.
    ///
    /// # Errors
    ///
    /// Every difference, in one [`ContractCheck`]: a (name, version) whose schema changed
    /// (with the changes), one the code no longer reads, one not written yet, and files
    /// that do not read.
    pub fn check(&self, dir: &Path) -> Result<(), ContractCheck> {
        let mut problems = Vec::new();
        let mut committed: BTreeMap<(String, u16), (PathBuf, Option<Value>)> = BTreeMap::new();
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_none_or(|e| e != "json") {
                        continue;
                    }
                    match read_contract(&path) {
                        Ok((name, version, schema)) => {
                            committed.insert((name, version), (path, schema));
                        }
                        Err(why) => problems.push(Problem::Unreadable { path, why }),
                    }
                }
            }
            Err(e) => problems.push(Problem::Unreadable {
                path: dir.to_owned(),
                why: e.to_string(),
            }),
        }
        for contract in self.iter() {
            match committed.remove(&(contract.name.to_owned(), contract.version)) {
                None => problems.push(Problem::NotWritten {
                    name: contract.name.to_owned(),
                    version: contract.version,
                }),
                Some((path, schema)) if schema != contract.schema => {
                    let mut changes = Vec::new();
                    diff(
                        "",
                        schema.as_ref().unwrap_or(&Value::Null),
                        contract.schema.as_ref().unwrap_or(&Value::Null),
                        &mut changes,
                    );
                    problems.push(Problem::Changed {
                        name: contract.name.to_owned(),
                        version: contract.version,
                        path,
                        changes,
                    });
                }
                Some(_) => {}
            }
        }
        for ((name, version), (path, _)) in committed {
            problems.push(Problem::NoLongerRead {
                name,
                version,
                path,
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ContractCheck { problems })
        }
    }
}

/// The contract schema of `T`: its JSON Schema (draft 2020-12) with every subschema
/// inlined and no `title` or `description`, so renaming a Rust type or editing a doc
/// comment changes nothing; only the stored shape counts.
#[must_use]
pub fn schema_of<T: schemars::JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    strip_annotations(&mut schema, false);
    schema
}

/// Removes `title` and `description` from every schema in `value` (`names`: `value` maps
/// names to schemas, as `properties` does, so its own keys stay).
fn strip_annotations(value: &mut Value, names: bool) {
    match value {
        Value::Object(map) => {
            if !names {
                map.remove("title");
                map.remove("description");
            }
            for (key, child) in map.iter_mut() {
                let holds_names = !names
                    && matches!(
                        key.as_str(),
                        "properties" | "patternProperties" | "$defs" | "definitions"
                    );
                strip_annotations(child, holds_names);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| strip_annotations(i, false)),
        _ => {}
    }
}

fn read_contract(path: &Path) -> Result<(String, u16, Option<Value>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut file: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let name = file["name"].as_str().ok_or("no string `name`")?.to_owned();
    let version = file["version"]
        .as_u64()
        .and_then(|v| u16::try_from(v).ok())
        .ok_or("no `version` from 0 to 65535")?;
    let schema = match file["schema"].take() {
        Value::Null => None,
        schema => Some(schema),
    };
    Ok((name, version, schema))
}

/// The differences from `old` to `new`, one line per JSON path.
fn diff(at: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let path = format!("{at}/{key}");
                match b.get(key) {
                    Some(other) => diff(&path, value, other, out),
                    None => out.push(format!("{path}: removed (was {value})")),
                }
            }
            for (key, value) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push(format!("{at}/{key}: added ({value})"));
            }
        }
        _ if old != new => {
            let at = if at.is_empty() { "/" } else { at };
            out.push(format!("{at}: {old} -> {new}"));
        }
        _ => {}
    }
}

/// Why the code's contracts differ from a committed folder: every problem found.
#[derive(Debug)]
pub struct ContractCheck {
    /// Each difference.
    pub problems: Vec<Problem>,
}

/// One difference between the code's contracts and a committed folder.
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// A stored (name, version) changed shape: give the new shape a new version and an
    /// upcasting step instead.
    Changed {
        /// The stored name.
        name: String,
        /// The version.
        version: u16,
        /// The committed file.
        path: PathBuf,
        /// What changed, one JSON path each (`/properties/amount/type: "integer" ->
        /// "string"`).
        changes: Vec<String>,
    },
    /// Committed, but no event type of the code reads it any more: its stored events would
    /// no longer load.
    NoLongerRead {
        /// The stored name.
        name: String,
        /// The version.
        version: u16,
        /// The committed file.
        path: PathBuf,
    },
    /// Read by the code, not committed yet: write the contracts and commit them.
    NotWritten {
        /// The stored name.
        name: String,
        /// The version.
        version: u16,
    },
    /// A file of the folder (or the folder) does not read.
    Unreadable {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

impl Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Changed {
                name,
                version,
                path,
                changes,
            } => {
                writeln!(
                    f,
                    "event `{name}` version {version} changed its schema without a new version ({}); give the new shape version {} with `previous` or `upcast`:",
                    path.display(),
                    u32::from(*version) + 1
                )?;
                for change in changes {
                    writeln!(f, "  {change}")?;
                }
                Ok(())
            }
            Self::NoLongerRead {
                name,
                version,
                path,
            } => writeln!(
                f,
                "event `{name}` version {version} ({}) is no longer read by any event type: its stored events would not load",
                path.display()
            ),
            Self::NotWritten { name, version } => writeln!(
                f,
                "event `{name}` version {version} has no committed contract: write the contracts and commit them"
            ),
            Self::Unreadable { path, why } => {
                writeln!(f, "{} does not read: {why}", path.display())
            }
        }
    }
}

impl Display for ContractCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} event contract problem(s):", self.problems.len())?;
        for problem in &self.problems {
            write!(f, "- {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ContractCheck {}
