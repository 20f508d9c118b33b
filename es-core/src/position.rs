//! [`Position`]: a place in the global log, and the checkpoint to resume from.

use std::fmt;
use std::str::FromStr;

/// A place in a store's global log: opaque, unique, totally ordered.
///
/// Positions need not be contiguous (PostgreSQL burns sequence values on failed appends) and
/// need not follow wall-clock append order; they follow the order in which a subscription
/// delivers events, which is the only order a checkpoint needs. Each store builds its
/// positions from two numbers with [`Position::new`]; the in-memory store uses `(0, n)`.
///
/// It prints and parses as `"major.minor"` and serializes as that string, so it survives
/// JSON (and JavaScript's 53-bit numbers) unchanged.
///
/// ```
/// use es_core::Position;
/// let p = Position::new(7, 42);
/// assert_eq!(p.to_string(), "7.42");
/// assert_eq!("7.42".parse::<Position>().unwrap(), p);
/// assert!(Position::new(7, 42) < Position::new(8, 1));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Position {
    major: u64,
    minor: u64,
}

impl Position {
    /// Builds a position from its two parts; ordered by `major`, then `minor`.
    #[must_use]
    pub const fn new(major: u64, minor: u64) -> Self {
        Self { major, minor }
    }

    /// The first part (PostgreSQL: the writer's transaction id; in memory: 0).
    #[must_use]
    pub const fn major(self) -> u64 {
        self.major
    }

    /// The second part (PostgreSQL: the sequence value; in memory: the counter).
    #[must_use]
    pub const fn minor(self) -> u64 {
        self.minor
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A string that is not `"major.minor"` with two unsigned integers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position `{0}`: expected `major.minor`, two unsigned integers")]
pub struct ParsePositionError(String);

impl FromStr for Position {
    type Err = ParsePositionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParsePositionError(s.to_owned());
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        Ok(Self {
            major: major.parse().map_err(|_| err())?,
            minor: minor.parse().map_err(|_| err())?,
        })
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_positions() {
        for bad in [
            "",
            "1",
            "1.",
            ".1",
            "a.b",
            "1.2.3",
            "-1.2",
            "1.18446744073709551616",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn serde_round_trip_keeps_order_and_value() {
        let p = Position::new(u64::MAX, 3);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{}.3\"", u64::MAX));
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), p);
        assert!(serde_json::from_str::<Position>("12").is_err());
    }
}
