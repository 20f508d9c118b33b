//! Attributes parsed into typed structs: `#[event(...)]`, `#[command(...)]`,
//! `#[aggregate(...)]` and the arguments of `#[aggregate_impl(...)]`. Unknown keys list the
//! known ones; a repeated key says "duplicate". Values are checked here when the check needs
//! no other item (a stored name's alphabet, a version's range).

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitInt, LitStr, Path, Token, Type};

use crate::ctxt::Ctxt;
use crate::symbol::{
    AGGREGATE, AGGREGATE_IMPL_KEYS, AGGREGATE_KEYS, COMMAND, COMMAND_KEYS, CRATE, ERROR, EVENT,
    EVENT_KEYS, ID, NAME, VERSION,
};

/// One key's value, remembering whether it was given twice.
struct Slot<T> {
    attr: &'static str,
    key: &'static str,
    value: Option<T>,
}

impl<T> Slot<T> {
    fn new(attr: &'static str, key: &'static str) -> Self {
        Self {
            attr,
            key,
            value: None,
        }
    }

    fn set(&mut self, cx: &Ctxt, path: &Path, value: T) {
        if self.value.is_some() {
            cx.error_spanned_by(
                path,
                format!(
                    "duplicate `{}` in `#[{}(...)]`: give it once",
                    self.key, self.attr
                ),
            );
        } else {
            self.value = Some(value);
        }
    }
}

fn key_name(path: &Path) -> String {
    path.get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| {
            path.segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect::<Vec<_>>()
                .join("::")
        })
}

/// Runs `on_key` for each `key = value` of one attribute; reports unknown keys and keeps
/// going, so every mistake shows in one build.
fn each_key(
    cx: &Ctxt,
    attr_name: &str,
    known: &[&str],
    meta: &ParseNestedMeta<'_>,
    on_key: &mut dyn FnMut(&str, &ParseNestedMeta<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    let key = key_name(&meta.path);
    if let Some(known_key) = known.iter().find(|k| **k == key) {
        return on_key(known_key, meta);
    }
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    }
    let expected = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    cx.error_spanned_by(
        &meta.path,
        format!("unknown key `{key}` in `#[{attr_name}(...)]`; expected one of: {expected}"),
    );
    Ok(())
}

fn for_each_attr(
    cx: &Ctxt,
    attrs: &[Attribute],
    attr_name: &str,
    known: &[&str],
    mut on_key: impl FnMut(&str, &ParseNestedMeta<'_>) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident(attr_name)) {
        let result =
            attr.parse_nested_meta(|meta| each_key(cx, attr_name, known, &meta, &mut on_key));
        if let Err(err) = result {
            cx.syn_error(err);
        }
    }
}

/// A stored name: `[a-z0-9_]+` for aggregates (it is a stream category), any non-empty
/// string without surrounding spaces or control characters for events.
fn check_name(cx: &Ctxt, lit: &LitStr, aggregate: bool) -> bool {
    let value = lit.value();
    let ok = if aggregate {
        !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    } else {
        !value.is_empty() && value.trim() == value && !value.chars().any(char::is_control)
    };
    if !ok {
        let rule = if aggregate {
            "an aggregate's stored name is its stream category: use only `a-z`, `0-9` and `_`, e.g. `name = \"bank_account\"`"
        } else {
            "an event's stored name must be non-empty, without surrounding spaces or control characters"
        };
        cx.error_spanned_by(lit, format!("invalid name {:?}: {rule}", value));
    }
    ok
}

pub(crate) struct EventAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u16, Span)>,
    pub(crate) krate: Option<Path>,
}

pub(crate) fn event_attrs(cx: &Ctxt, attrs: &[Attribute]) -> EventAttrs {
    let mut name = Slot::new(EVENT, NAME);
    let mut version = Slot::new(EVENT, VERSION);
    let mut krate = Slot::new(EVENT, CRATE);
    for_each_attr(cx, attrs, EVENT, EVENT_KEYS, |key, meta| {
        match key {
            NAME => {
                let lit: LitStr = meta.value()?.parse()?;
                if check_name(cx, &lit, false) {
                    name.set(cx, &meta.path, lit);
                }
            }
            VERSION => {
                let lit: LitInt = meta.value()?.parse()?;
                match lit.base10_parse::<u16>() {
                    Ok(v) if v >= 1 => version.set(cx, &meta.path, (v, lit.span())),
                    _ => cx.error_spanned_by(
                        &lit,
                        "`version` is the event's schema version: an integer from 1 to 65535",
                    ),
                }
            }
            _ => krate.set(cx, &meta.path, meta.value()?.parse()?),
        }
        Ok(())
    });
    EventAttrs {
        name: name.value,
        version: version.value,
        krate: krate.value,
    }
}

pub(crate) fn command_attrs(cx: &Ctxt, attrs: &[Attribute]) -> Option<Path> {
    let mut krate = Slot::new(COMMAND, CRATE);
    for_each_attr(cx, attrs, COMMAND, COMMAND_KEYS, |_, meta| {
        krate.set(cx, &meta.path, meta.value()?.parse()?);
        Ok(())
    });
    krate.value
}

pub(crate) struct AggregateAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) id: Option<Type>,
    pub(crate) error: Option<Type>,
    pub(crate) krate: Option<Path>,
}

pub(crate) fn aggregate_attrs(cx: &Ctxt, attrs: &[Attribute]) -> AggregateAttrs {
    let mut name = Slot::new(AGGREGATE, NAME);
    let mut id = Slot::new(AGGREGATE, ID);
    let mut error = Slot::new(AGGREGATE, ERROR);
    let mut krate = Slot::new(AGGREGATE, CRATE);
    for_each_attr(cx, attrs, AGGREGATE, AGGREGATE_KEYS, |key, meta| {
        match key {
            NAME => {
                let lit: LitStr = meta.value()?.parse()?;
                if check_name(cx, &lit, true) {
                    name.set(cx, &meta.path, lit);
                }
            }
            ID => id.set(cx, &meta.path, meta.value()?.parse()?),
            ERROR => error.set(cx, &meta.path, meta.value()?.parse()?),
            _ => krate.set(cx, &meta.path, meta.value()?.parse()?),
        }
        Ok(())
    });
    AggregateAttrs {
        name: name.value,
        id: id.value,
        error: error.value,
        krate: krate.value,
    }
}

pub(crate) struct ImplArgs {
    pub(crate) event: Option<Ident>,
    pub(crate) command: Option<Ident>,
    pub(crate) krate: Option<Path>,
}

pub(crate) fn aggregate_impl_args(cx: &Ctxt, args: TokenStream) -> ImplArgs {
    const ATTR: &str = "aggregate_impl";
    let mut event = Slot::new(ATTR, EVENT);
    let mut command = Slot::new(ATTR, COMMAND);
    let mut krate = Slot::new(ATTR, CRATE);
    let parser = syn::meta::parser(|meta| {
        each_key(cx, ATTR, AGGREGATE_IMPL_KEYS, &meta, &mut |key, meta| {
            match key {
                EVENT => event.set(cx, &meta.path, meta.value()?.parse()?),
                COMMAND => command.set(cx, &meta.path, meta.value()?.parse()?),
                _ => krate.set(cx, &meta.path, meta.value()?.parse()?),
            }
            Ok(())
        })
    });
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }
    ImplArgs {
        event: event.value,
        command: command.value,
        krate: krate.value,
    }
}

/// `BankAccount` -> `bank_account`, `HTTPServer` -> `http_server`.
pub(crate) fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(char::is_uppercase) && next.is_some_and(|n| n.is_lowercase()));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Account2Fa"), "account2_fa");
        assert_eq!(snake_case("My_Thing"), "my_thing");
    }
}
