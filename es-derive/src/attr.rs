//! Attributes parsed into typed structs: `#[event(...)]`, `#[command(...)]`,
//! `#[aggregate(...)]` and the arguments of `#[aggregate_impl(...)]`. Each parser dispatches
//! on one table of (key, handler): a key is handled or reported as unknown with the table's
//! keys listed, never taken for another; a repeated key says "duplicate". Values are checked
//! here when the check needs no other item (a stored name's alphabet, a version's range).

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Ident, LitInt, LitStr, Path, Token, Type};

use crate::ctxt::Ctxt;
use crate::symbol::{
    AGGREGATE, AGGREGATE_IMPL, COMMAND, CRATE, DDL, ERROR, EVENT, EVERY, ID, NAME, PERSONAL,
    PREVIOUS, PROJECTION, RENAME, SERDE, SNAPSHOT, SUBJECT, Symbol, UPCAST, VERSION,
};

/// Parses the value of one key.
type Handler<'a> = &'a mut dyn FnMut(&ParseNestedMeta<'_>) -> syn::Result<()>;

/// One key's value, remembering whether it was given twice.
struct Slot<T> {
    attr: Symbol,
    key: Symbol,
    value: Option<T>,
}

impl<T> Slot<T> {
    fn new(attr: Symbol, key: Symbol) -> Self {
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

impl<T: syn::parse::Parse> Slot<T> {
    /// `key = value`, the value parsed as `T`.
    fn parse(&mut self, cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let value = meta.value()?.parse()?;
        self.set(cx, &meta.path, value);
        Ok(())
    }
}

/// Runs the handler of `meta`'s key; an unknown key is reported with the keys of `table`, its
/// value skipped, and parsing goes on, so every mistake shows in one build.
fn dispatch(
    cx: &Ctxt,
    attr: Symbol,
    meta: &ParseNestedMeta<'_>,
    table: &mut [(Symbol, Handler<'_>)],
) -> syn::Result<()> {
    if let Some((_, handler)) = table.iter_mut().find(|(key, _)| meta.path == *key) {
        return handler(meta);
    }
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::Group>()?;
    }
    let expected = table
        .iter()
        .map(|(key, _)| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let found = meta
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::");
    cx.error_spanned_by(
        &meta.path,
        format!(
            "unknown key `{found}` in {}; expected one of: {expected}",
            if attr == SNAPSHOT {
                "`snapshot(...)` of `#[aggregate(...)]`".to_owned()
            } else {
                format!("`#[{attr}(...)]`")
            }
        ),
    );
    Ok(())
}

/// Every `#[attr(...)]` among `attrs`, each key through `table`.
fn parse_attrs(cx: &Ctxt, attrs: &[Attribute], attr: Symbol, table: &mut [(Symbol, Handler<'_>)]) {
    for a in attrs.iter().filter(|a| a.path() == attr) {
        if let Err(err) = a.parse_nested_meta(|meta| dispatch(cx, attr, &meta, table)) {
            cx.syn_error(err);
        }
    }
}

/// A stream category (an aggregate's stored name): `[a-z0-9_]+`.
pub(crate) fn is_category(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `name = "..."` of an event or a command, a contract between services: non-empty,
/// without surrounding spaces or control characters (`None` when reported; `what` names it
/// in the message).
fn contract_name(cx: &Ctxt, meta: &ParseNestedMeta<'_>, what: &str) -> syn::Result<Option<LitStr>> {
    let lit: LitStr = meta.value()?.parse()?;
    let value = lit.value();
    if value.is_empty() || value.trim() != value || value.chars().any(char::is_control) {
        cx.error_spanned_by(
            &lit,
            format!(
                "invalid name {value:?}: {what} must be non-empty, without surrounding spaces or control characters"
            ),
        );
        return Ok(None);
    }
    Ok(Some(lit))
}

pub(crate) struct EventAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<u16>,
    /// `previous = OldType`: the version one lower, read through `From`.
    pub(crate) previous: Option<Type>,
    /// `upcast = path::to::f`: a JSON step from the version one lower.
    pub(crate) upcast: Option<Path>,
    pub(crate) krate: Option<Path>,
}

pub(crate) fn event_attrs(cx: &Ctxt, attrs: &[Attribute]) -> EventAttrs {
    let mut name = Slot::new(EVENT, NAME);
    let mut version = Slot::new(EVENT, VERSION);
    let mut previous = Slot::new(EVENT, PREVIOUS);
    let mut upcast = Slot::new(EVENT, UPCAST);
    let mut krate = Slot::new(EVENT, CRATE);
    parse_attrs(
        cx,
        attrs,
        EVENT,
        &mut [
            (NAME, &mut |meta| {
                if let Some(lit) = contract_name(cx, meta, "an event's stored name")? {
                    name.set(cx, &meta.path, lit);
                }
                Ok(())
            }),
            (VERSION, &mut |meta| {
                let lit: LitInt = meta.value()?.parse()?;
                match lit.base10_parse::<u16>() {
                    Ok(v) if v >= 1 => version.set(cx, &meta.path, v),
                    _ => cx.error_spanned_by(
                        &lit,
                        "`version` is the event's schema version: an integer from 1 to 65535",
                    ),
                }
                Ok(())
            }),
            (PREVIOUS, &mut |meta| previous.parse(cx, meta)),
            (UPCAST, &mut |meta| upcast.parse(cx, meta)),
            (CRATE, &mut |meta| krate.parse(cx, meta)),
        ],
    );
    EventAttrs {
        name: name.value,
        version: version.value,
        previous: previous.value,
        upcast: upcast.value,
        krate: krate.value,
    }
}

pub(crate) struct CommandAttrs {
    /// The command's tag in JSON (`{"type": "<name>", ..}`): given, or the type name.
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
}

pub(crate) fn command_attrs(cx: &Ctxt, attrs: &[Attribute]) -> CommandAttrs {
    let mut name = Slot::new(COMMAND, NAME);
    let mut krate = Slot::new(COMMAND, CRATE);
    parse_attrs(
        cx,
        attrs,
        COMMAND,
        &mut [
            (NAME, &mut |meta| {
                if let Some(lit) = contract_name(cx, meta, "a command's name (its JSON `type`)")? {
                    name.set(cx, &meta.path, lit);
                }
                Ok(())
            }),
            (CRATE, &mut |meta| krate.parse(cx, meta)),
        ],
    );
    CommandAttrs {
        name: name.value,
        krate: krate.value,
    }
}

pub(crate) struct AggregateAttrs {
    /// The stored name: given, or the type name in snake_case; checked either way.
    pub(crate) name: String,
    pub(crate) id: Option<Type>,
    pub(crate) error: Option<Type>,
    /// `snapshot(every = N, version = V)`.
    pub(crate) snapshot: Option<SnapshotAttr>,
    pub(crate) krate: Option<Path>,
}

/// `snapshot(every = N, version = V)` of `#[aggregate(...)]`.
pub(crate) struct SnapshotAttr {
    /// The `snapshot` key, for errors about the policy as a whole.
    pub(crate) key: Path,
    pub(crate) every: u64,
    pub(crate) version: u32,
}

pub(crate) fn aggregate_attrs(cx: &Ctxt, attrs: &[Attribute], ident: &Ident) -> AggregateAttrs {
    let mut name = Slot::new(AGGREGATE, NAME);
    let mut id = Slot::new(AGGREGATE, ID);
    let mut error = Slot::new(AGGREGATE, ERROR);
    let mut krate = Slot::new(AGGREGATE, CRATE);
    let mut snapshot = Slot::new(AGGREGATE, SNAPSHOT);
    // Whether a `name` was written, valid or not: a bad one is reported on its literal, and
    // the default is then not checked too.
    let mut named = false;
    parse_attrs(
        cx,
        attrs,
        AGGREGATE,
        &mut [
            (NAME, &mut |meta| {
                let lit: LitStr = meta.value()?.parse()?;
                named = true;
                if is_category(&lit.value()) {
                    name.set(cx, &meta.path, lit.value());
                } else {
                    cx.error_spanned_by(
                        &lit,
                        format!(
                            "invalid name {:?}: an aggregate's stored name is its stream category: use only `a-z`, `0-9` and `_`, e.g. `name = \"bank_account\"`",
                            lit.value()
                        ),
                    );
                }
                Ok(())
            }),
            (ID, &mut |meta| id.parse(cx, meta)),
            (ERROR, &mut |meta| error.parse(cx, meta)),
            (SNAPSHOT, &mut |meta| {
                if let Some(policy) = snapshot_attr(cx, meta)? {
                    snapshot.set(cx, &meta.path, policy);
                }
                Ok(())
            }),
            (CRATE, &mut |meta| krate.parse(cx, meta)),
        ],
    );
    let name = name.value.unwrap_or_else(|| {
        let default = snake_case(&ident.to_string());
        if !named && !is_category(&default) {
            cx.error_spanned_by(
                ident,
                format!(
                    "the stored name of `{ident}` would be {default:?}, but a stream category uses only `a-z`, `0-9` and `_`: give one with `#[aggregate(name = \"...\")]`"
                ),
            );
        }
        default
    });
    AggregateAttrs {
        name,
        id: id.value,
        error: error.value,
        snapshot: snapshot.value,
        krate: krate.value,
    }
}

/// `snapshot(every = N, version = V)`: `every` required (at least 1), `version` from 1
/// (default 1). `None` when it was reported.
fn snapshot_attr(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Option<SnapshotAttr>> {
    let mut every = Slot::new(SNAPSHOT, EVERY);
    let mut version = Slot::new(SNAPSHOT, VERSION);
    let valid = std::cell::Cell::new(true);
    meta.parse_nested_meta(|inner| {
        dispatch(
            cx,
            SNAPSHOT,
            &inner,
            &mut [
                (EVERY, &mut |m| {
                    let lit: LitInt = m.value()?.parse()?;
                    match lit.base10_parse::<u64>() {
                        Ok(n) if n >= 1 => every.set(cx, &m.path, n),
                        _ => {
                            valid.set(false);
                            cx.error_spanned_by(
                                &lit,
                                "`every` is how many events are folded between snapshots: an integer from 1",
                            );
                        }
                    }
                    Ok(())
                }),
                (VERSION, &mut |m| {
                    let lit: LitInt = m.value()?.parse()?;
                    match lit.base10_parse::<u32>() {
                        Ok(v) if v >= 1 => version.set(cx, &m.path, v),
                        _ => {
                            valid.set(false);
                            cx.error_spanned_by(
                                &lit,
                                "`version` is the version of the snapshot's shape: an integer from 1",
                            );
                        }
                    }
                    Ok(())
                }),
            ],
        )
    })?;
    let Some(every) = every.value else {
        if valid.get() {
            cx.error_spanned_by(
                &meta.path,
                "`snapshot(...)` needs `every = N`: how many events are folded between snapshots, e.g. `snapshot(every = 100)`",
            );
        }
        return Ok(None);
    };
    Ok(valid.get().then(|| SnapshotAttr {
        key: meta.path.clone(),
        every,
        version: version.value.unwrap_or(1),
    }))
}

/// `#[projection(...)]` or `#[reactor(...)]`.
pub(crate) struct ListenerAttrs {
    /// The checkpoint's key: given, or the type name in snake_case.
    pub(crate) name: String,
    /// The read model's version (reactors have none: they never replay).
    pub(crate) version: u32,
    /// The read model's tables (SQL), for a store that keeps it in tables.
    pub(crate) ddl: Option<LitStr>,
    pub(crate) krate: Option<Path>,
}

/// A listener's name: a checkpoint key, `[a-z0-9_]+` like a category.
pub(crate) fn listener_attrs(
    cx: &Ctxt,
    attrs: &[Attribute],
    attr: Symbol,
    ident: &Ident,
) -> ListenerAttrs {
    let mut name = Slot::new(attr, NAME);
    let mut version = Slot::new(attr, VERSION);
    let mut krate = Slot::new(attr, CRATE);
    let mut ddl = Slot::new(attr, DDL);
    let mut named = false;
    {
        let mut name_handler = |meta: &ParseNestedMeta<'_>| {
            let lit: LitStr = meta.value()?.parse()?;
            named = true;
            if is_category(&lit.value()) {
                name.set(cx, &meta.path, lit.value());
            } else {
                cx.error_spanned_by(
                    &lit,
                    format!(
                        "invalid name {:?}: a listener's name is the key of its checkpoint: use only `a-z`, `0-9` and `_`, e.g. `name = \"balances\"`",
                        lit.value()
                    ),
                );
            }
            Ok(())
        };
        let mut version_handler = |meta: &ParseNestedMeta<'_>| {
            let lit: LitInt = meta.value()?.parse()?;
            match lit.base10_parse::<u32>() {
                Ok(v) if v >= 1 => version.set(cx, &meta.path, v),
                _ => cx.error_spanned_by(
                    &lit,
                    "`version` is the read model's version, from 1: a new one is built beside the serving one",
                ),
            }
            Ok(())
        };
        let mut krate_handler = |meta: &ParseNestedMeta<'_>| krate.parse(cx, meta);
        let mut ddl_handler = |meta: &ParseNestedMeta<'_>| ddl.parse(cx, meta);
        if attr == PROJECTION {
            parse_attrs(
                cx,
                attrs,
                attr,
                &mut [
                    (NAME, &mut name_handler),
                    (VERSION, &mut version_handler),
                    (DDL, &mut ddl_handler),
                    (CRATE, &mut krate_handler),
                ],
            );
        } else {
            parse_attrs(
                cx,
                attrs,
                attr,
                &mut [(NAME, &mut name_handler), (CRATE, &mut krate_handler)],
            );
        }
    }
    let name = name.value.unwrap_or_else(|| {
        let default = snake_case(&ident.to_string());
        if !named && !is_category(&default) {
            cx.error_spanned_by(
                ident,
                format!(
                    "the name of `{ident}` would be {default:?}, but a listener's name uses only `a-z`, `0-9` and `_`: give one with `#[{attr}(name = \"...\")]`"
                ),
            );
        }
        default
    });
    ListenerAttrs {
        name,
        version: version.value.unwrap_or(1),
        ddl: ddl.value,
        krate: krate.value,
    }
}

/// The arguments of `#[projection_impl(...)]` / `#[reactor_impl(...)]`: only `crate`.
pub(crate) fn listener_impl_args(cx: &Ctxt, attr: Symbol, args: TokenStream) -> Option<Path> {
    let mut krate = Slot::new(attr, CRATE);
    let mut table: [(Symbol, Handler<'_>); 1] = [(CRATE, &mut |meta| krate.parse(cx, meta))];
    let parser = syn::meta::parser(|meta| dispatch(cx, attr, &meta, &mut table));
    if let Err(err) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(err);
    }
    krate.value
}

pub(crate) struct ImplArgs {
    pub(crate) event: Option<Ident>,
    pub(crate) command: Option<Ident>,
    pub(crate) krate: Option<Path>,
}

pub(crate) fn aggregate_impl_args(cx: &Ctxt, args: TokenStream) -> ImplArgs {
    let mut event = Slot::new(AGGREGATE_IMPL, EVENT);
    let mut command = Slot::new(AGGREGATE_IMPL, COMMAND);
    let mut krate = Slot::new(AGGREGATE_IMPL, CRATE);
    let mut table: [(Symbol, Handler<'_>); 3] = [
        (EVENT, &mut |meta| event.parse(cx, meta)),
        (COMMAND, &mut |meta| command.parse(cx, meta)),
        (CRATE, &mut |meta| krate.parse(cx, meta)),
    ];
    let parser = syn::meta::parser(|meta| dispatch(cx, AGGREGATE_IMPL, &meta, &mut table));
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

/// `#[personal(subject = other_field)]` on an event's field: the subject field's name, or
/// `None` (not marked, or reported).
pub(crate) fn personal_attr(cx: &Ctxt, field: &syn::Field) -> Option<Ident> {
    let attrs: Vec<&Attribute> = field
        .attrs
        .iter()
        .filter(|a| a.path() == PERSONAL)
        .collect();
    let first = *attrs.first()?;
    if matches!(first.meta, syn::Meta::Path(_)) {
        cx.error_spanned_by(
            first,
            "`#[personal]` needs its data subject: `#[personal(subject = customer_id)]`, naming the field that holds the subject's id",
        );
        return None;
    }
    let mut subject = Slot::new(PERSONAL, SUBJECT);
    parse_attrs(
        cx,
        &field.attrs,
        PERSONAL,
        &mut [(SUBJECT, &mut |meta| subject.parse(cx, meta))],
    );
    if subject.value.is_none() {
        cx.error_spanned_by(
            first,
            "`#[personal(...)]` needs `subject = field`: the field that holds the data subject's id",
        );
    }
    subject.value
}

/// The name serde writes a field under: its `#[serde(rename = "...")]` (or `rename(serialize
/// = "...")`), if any.
pub(crate) fn serde_rename(field: &syn::Field) -> Option<String> {
    let mut renamed = None;
    for attr in field.attrs.iter().filter(|a| a.path() == SERDE) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path == RENAME {
                if meta.input.peek(Token![=]) {
                    let name: LitStr = meta.value()?.parse()?;
                    renamed = Some(name.value());
                } else {
                    meta.parse_nested_meta(|inner| {
                        let name: LitStr = inner.value()?.parse()?;
                        if inner.path.is_ident("serialize") {
                            renamed = Some(name.value());
                        }
                        Ok(())
                    })?;
                }
            } else if meta.input.peek(Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.input.parse::<proc_macro2::Group>()?;
            }
            Ok(())
        });
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::{is_category, snake_case};

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("BankAccount"), "bank_account");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Account2Fa"), "account2_fa");
        assert_eq!(snake_case("My_Thing"), "my_thing");
    }

    #[test]
    fn categories_use_lowercase_digits_and_underscores() {
        assert!(is_category("bank_account2"));
        assert!(!is_category(""));
        assert!(!is_category("Bank"));
        assert!(!is_category("bank-account"));
        assert!(!is_category("bücher"));
    }
}
