//! An event's payload written straight to JSON text: no `serde_json::Value` built, checked
//! and dropped on the way (the in-memory store keeps the text as written; other stores read
//! it into a value).
//!
//! Only where that text reads back as the very value the `Value` path gives: the event has
//! no personal fields (those are marked in the `Value`), and nothing in it is what the
//! `Value` path changes or refuses. Anything else gives `None`, and the caller takes the
//! `Value` path, which gives the canonical outcome (a negative zero made `0.0`, a NUL
//! refused as unstorable, ...). Keys come in the struct's order rather than sorted: the
//! text differs, the value it reads back as does not (a type that keeps the order of the
//! keys it reads, such as an `IndexMap`, reads them in the struct's order). One difference
//! of serde_json's own: its writer takes an `Option` map key (`Some(k)` as `k`) that
//! `to_value` refuses. The repository chooses text or value by the event alone, whatever
//! the store, so every store takes or refuses such an event alike.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

use crate::store::MAX_JSON_DEPTH;

/// The compact formatter, refusing (with an error that ends the writing) what the `Value`
/// path would change or refuse.
struct Checked {
    depth: usize,
}

fn refused() -> io::Error {
    io::Error::other("not for the text path")
}

impl Checked {
    fn open(&mut self) -> io::Result<()> {
        self.depth += 1;
        if self.depth > MAX_JSON_DEPTH {
            return Err(refused());
        }
        Ok(())
    }
}

impl Formatter for Checked {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        // A negative zero: the `Value` path writes `0.0` for it.
        if value == 0.0 && value.is_sign_negative() {
            return Err(refused());
        }
        CompactFormatter.write_f64(writer, value)
    }

    // `to_value` widens an `f32` to an `f64`, whose shortest text differs.
    fn write_f32<W: ?Sized + io::Write>(&mut self, _: &mut W, _: f32) -> io::Result<()> {
        Err(refused())
    }

    // `to_value` refuses integers past 64 bits; text would keep them.
    fn write_i128<W: ?Sized + io::Write>(&mut self, _: &mut W, _: i128) -> io::Result<()> {
        Err(refused())
    }

    fn write_u128<W: ?Sized + io::Write>(&mut self, _: &mut W, _: u128) -> io::Result<()> {
        Err(refused())
    }

    // Text spliced in as it is (a `RawValue`): `to_value` parses it, and would change or
    // refuse what is in it.
    fn write_raw_fragment<W: ?Sized + io::Write>(&mut self, _: &mut W, _: &str) -> io::Result<()> {
        Err(refused())
    }

    // A number as its text (serde_json's `arbitrary_precision`): not looked into here.
    fn write_number_str<W: ?Sized + io::Write>(&mut self, _: &mut W, _: &str) -> io::Result<()> {
        Err(refused())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        // A NUL, in a string or a key: refused as unstorable by the `Value` path.
        if matches!(escape, CharEscape::AsciiControl(0)) {
            return Err(refused());
        }
        CompactFormatter.write_char_escape(writer, escape)
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open()?;
        CompactFormatter.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        CompactFormatter.end_array(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open()?;
        CompactFormatter.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        CompactFormatter.end_object(writer)
    }
}

/// `event`'s payload as JSON text, when it reads back as the value the `Value` path would
/// store (an object, no personal field, nothing that path changes or refuses; no `"$es_seal"`
/// anywhere, the marker of a field to seal); else `None`.
pub(crate) fn payload_text<T: Serialize>(event: &T, personal: bool) -> Option<String> {
    if personal {
        return None;
    }
    // Written into the thread's buffer, then allocated once at its length (kept as it is
    // by the store: no spare capacity, no shrinking).
    with_buffer(|out| {
        let mut writer = serde_json::Serializer::with_formatter(&mut *out, Checked { depth: 0 });
        event.serialize(&mut writer).ok()?;
        // The marker starts with a `$`: most payloads have none, and a byte search is
        // cheaper than setting up a substring search.
        let marked = || {
            memchr::memchr(b'$', out).is_some() && memchr::memmem::find(out, b"$es_seal").is_some()
        };
        if out.first() != Some(&b'{') || marked() {
            return None;
        }
        // serde_json writes UTF-8 only.
        std::str::from_utf8(out).ok().map(str::to_owned)
    })
    .flatten()
}

/// What a thread's text buffer keeps between uses: one larger event's worth is given back.
const KEPT_BYTES: usize = 64 * 1024;

/// Runs `write` on this thread's text buffer, empty (`None` when the buffer is in use: a
/// `Serialize` impl writing an event inside another's).
pub(crate) fn with_buffer<R>(write: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| {
        let mut buffer = buffer.try_borrow_mut().ok()?;
        buffer.clear();
        let written = write(&mut buffer);
        if buffer.capacity() > KEPT_BYTES {
            buffer.clear();
            buffer.shrink_to(KEPT_BYTES);
        }
        Some(written)
    })
}

#[cfg(test)]
mod tests {
    use super::{KEPT_BYTES, payload_text, with_buffer};
    use serde::Serialize;
    use serde_json::value::RawValue;

    #[derive(Serialize)]
    struct Raw {
        r: Box<RawValue>,
    }

    #[derive(Serialize)]
    struct Plain {
        b: f64,
        a: Vec<i32>,
    }

    /// Text spliced in as it is (a `RawValue`) is never written straight: `to_value`
    /// parses it, and would change (`-0.0`) or refuse (a NUL) what is in it.
    #[test]
    fn raw_text_goes_as_a_value_and_the_rest_is_written_straight() {
        for raw in ["-0.0", "\"a\\u0000b\"", "1", "{\"x\": 1}"] {
            let event = Raw {
                r: RawValue::from_string(raw.to_owned()).expect("JSON"),
            };
            assert_eq!(payload_text(&event, false), None, "{raw}");
        }
        let plain = Plain {
            b: 1.5,
            a: vec![1, -2],
        };
        assert_eq!(
            payload_text(&plain, false).as_deref(),
            Some(r#"{"b":1.5,"a":[1,-2]}"#)
        );
        assert_eq!(
            payload_text(&plain, true),
            None,
            "personal fields: as a value"
        );
    }

    #[derive(Serialize)]
    struct Note {
        text: String,
    }

    /// The marker of a field to seal, anywhere in the text, sends the event the `Value` way
    /// (which seals it or refuses it); a `$` alone does not.
    #[test]
    fn the_seal_marker_anywhere_goes_as_a_value() {
        for text in ["$es_seal", "a $es_sealed b", "$$es_seal$"] {
            let note = Note { text: text.into() };
            assert_eq!(payload_text(&note, false), None, "{text}");
        }
        let mut keyed = std::collections::BTreeMap::new();
        keyed.insert("$es_seal", 1);
        assert_eq!(payload_text(&keyed, false), None, "as a key");
        for text in ["$", "costs $5", "$es_sea", "es_seal"] {
            let note = Note { text: text.into() };
            assert_eq!(
                payload_text(&note, false),
                Some(format!(r#"{{"text":"{text}"}}"#)),
                "{text}"
            );
        }
    }

    /// A large event's text leaves no large buffer behind; a nested use gets none.
    #[test]
    fn the_thread_buffer_gives_back_what_a_large_event_took() {
        with_buffer(|b| b.resize(4 * KEPT_BYTES, b'x')).expect("free");
        let kept = with_buffer(|b| {
            assert!(b.is_empty());
            b.capacity()
        });
        assert!(kept.is_some_and(|c| c <= KEPT_BYTES), "{kept:?}");
        let nested = with_buffer(|_| with_buffer(|_| ()));
        assert_eq!(nested, Some(None));
    }
}
