//! The typed model of an `#[aggregate_impl]` block: its `#[command]` and `#[apply]` methods,
//! each keeping the user's tokens for spans. Parsing reports every malformed signature (one
//! error per problem, in `signature`) and still returns what it could read, so one mistake
//! does not hide the next; a method that cannot be called as written is kept with
//! `valid: false`, so its variant exists and nothing calls it.

pub(crate) mod listener;
mod signature;

use syn::{
    Attribute, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, Path, PathArguments, Type,
    TypePath,
};

use crate::ctxt::Ctxt;
use crate::symbol::{APPLY, CFG, CFG_ATTR, COMMAND, ES_CORE, Symbol};

/// The impl block, with the `#[command]` / `#[apply]` markers stripped.
pub(crate) struct AggregateImpl {
    pub(crate) item: ItemImpl,
    /// The aggregate's type name (`Account` in `impl Account`).
    pub(crate) self_ident: Ident,
    /// The impl names a lifetime (`impl<'a> Account<'a>`): `#[derive(Aggregate)]` reports it
    /// on the struct, so nothing here implements `Aggregate` for it.
    pub(crate) borrows: bool,
    pub(crate) commands: Vec<CommandFn>,
    pub(crate) applies: Vec<ApplyFn>,
}

/// A type named by a plain path (`events::Opened`), the variant named after its final
/// identifier (`Opened`).
#[derive(Clone)]
pub(crate) struct TypeRef {
    /// As the user wrote it, for spans and generated code.
    pub(crate) ty: Type,
    pub(crate) path: Path,
    pub(crate) ident: Ident,
}

impl TypeRef {
    /// Whether two paths name the same type, as far as syntax can tell.
    ///
    /// A macro cannot resolve paths, so this guesses from their segments: the final
    /// identifiers must match and, once a leading `::`, `crate::` or `self::` is dropped, one
    /// path must end with the other (`events::Opened` and `crate::events::Opened` from the
    /// crate root; `Opened` and `self::Opened`). `v1::Opened` and `v2::Opened` are two types.
    /// The guess only picks the message: the generated enum names its variants after the
    /// final identifier, so two paths ending alike are an error either way, reported as
    /// "handled twice" when they are probably one type and "two types end in" otherwise.
    pub(crate) fn same_type(&self, other: &Self) -> bool {
        fn segments(path: &Path) -> Vec<&Ident> {
            let mut idents: Vec<&Ident> = path.segments.iter().map(|s| &s.ident).collect();
            if idents
                .first()
                .is_some_and(|i| *i == "crate" || *i == "self")
            {
                idents.remove(0);
            }
            idents
        }
        let (a, b) = (segments(&self.path), segments(&other.path));
        let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        self.ident == other.ident && long.ends_with(&short)
    }
}

/// What a command's `Ok` value holds, read from its syntax.
pub(crate) enum Emits {
    /// `()`
    Nothing,
    /// `Ev` (or the generated enum)
    One(TypeRef),
    /// `Option<Ev>`
    Optional(TypeRef),
    /// `Vec<Ev>`
    Many(TypeRef),
    /// `(A, B, ...)` of the above
    Tuple(Vec<Emits>),
}

impl Emits {
    /// Every event type named, in order.
    pub(crate) fn types(&self) -> Vec<&TypeRef> {
        match self {
            Self::Nothing => Vec::new(),
            Self::One(t) | Self::Optional(t) | Self::Many(t) => vec![t],
            Self::Tuple(parts) => parts.iter().flat_map(Self::types).collect(),
        }
    }
}

pub(crate) struct CommandFn {
    pub(crate) method: Ident,
    pub(crate) command: TypeRef,
    /// `None` when the return type could not be read.
    pub(crate) emits: Option<Emits>,
    /// The `E` of `Result<R, E>`, when the return type could be read.
    pub(crate) error_ty: Option<Type>,
    /// The method can be called as written (else the dispatch arm does not call it).
    pub(crate) valid: bool,
}

pub(crate) struct ApplyFn {
    pub(crate) method: Ident,
    pub(crate) event: TypeRef,
    /// The method can be called as written (else the fold arm does not call it).
    pub(crate) valid: bool,
}

/// The two method markers of an `#[aggregate_impl]` block.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Marker {
    Command,
    Apply,
}

impl Marker {
    pub(crate) fn symbol(self) -> Symbol {
        match self {
            Self::Command => COMMAND,
            Self::Apply => APPLY,
        }
    }

    /// The marker an attribute names: `#[command]`, or by path through es-core
    /// (`#[es_core::command]`, `#[::es_core::prelude::apply]`) or through the `crate = path`
    /// of a re-exporter. Another crate's `#[x::command]` is not ours.
    fn of(attr: &Path, krate: Option<&Path>) -> Option<Self> {
        let last = &attr.segments.last()?.ident;
        let marker = [Self::Command, Self::Apply]
            .into_iter()
            .find(|m| last == m.symbol())?;
        let first = &attr.segments.first()?.ident;
        let through_crate = krate
            .and_then(|k| k.segments.first())
            .is_some_and(|k| k.ident == *first);
        (attr.segments.len() == 1 || first == ES_CORE || through_crate).then_some(marker)
    }
}

/// The model of the block; `Err` with the block (markers stripped, so they do not run as
/// macros) when it is not on a type the macro can name.
pub(crate) fn parse(
    cx: &Ctxt,
    mut item: ItemImpl,
    krate: Option<&Path>,
) -> Result<AggregateImpl, Box<ItemImpl>> {
    if let Some((path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[aggregate_impl]` goes on the aggregate's inherent impl block (`impl Account { ... }`), not on a trait impl",
        );
    }
    let mut commands = Vec::new();
    let mut applies = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let Some((marker, conditional)) = take_marker(cx, f, krate) else {
            continue;
        };
        match marker {
            Marker::Command => commands.extend(signature::command(cx, f, conditional)),
            Marker::Apply => applies.extend(signature::apply(cx, f, conditional)),
        }
    }
    let Some(self_path) = plain_path(&item.self_ty, true) else {
        cx.error_spanned_by(
            &item.self_ty,
            "`#[aggregate_impl]` expects `impl Aggregate { ... }` on a struct that derives `Aggregate`",
        );
        return Err(Box::new(item));
    };
    let Some(last) = self_path.segments.last() else {
        return Err(Box::new(item));
    };
    let self_ident = last.ident.clone();
    let borrows = item.generics.lifetimes().next().is_some() || names_lifetime(self_path);
    Ok(AggregateImpl {
        item,
        self_ident,
        borrows,
        commands,
        applies,
    })
}

/// Removes `#[command]` / `#[apply]` from the method (inside the block they are markers, not
/// macros) and says which one it had, and whether the method is under a `#[cfg]` (reported
/// here: the enums list every marked method, so it cannot come and go).
fn take_marker(cx: &Ctxt, f: &mut ImplItemFn, krate: Option<&Path>) -> Option<(Marker, bool)> {
    let mut found: Option<Marker> = None;
    let mut kept: Vec<Attribute> = Vec::with_capacity(f.attrs.len());
    for attr in std::mem::take(&mut f.attrs) {
        let Some(marker) = Marker::of(attr.path(), krate) else {
            kept.push(attr);
            continue;
        };
        let name = marker.symbol();
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            cx.error_spanned_by(
                &attr,
                format!("`#[{name}]` takes no arguments: write `#[{name}]`"),
            );
        }
        match found {
            Some(first) if first == marker => cx.error_spanned_by(
                &attr,
                format!("duplicate `#[{name}]` on `{}`: give it once", f.sig.ident),
            ),
            Some(_) => cx.error_spanned_by(
                &attr,
                format!(
                    "`{}` is marked both `#[command]` and `#[apply]`: a method either decides a command or applies an event",
                    f.sig.ident
                ),
            ),
            None => found = Some(marker),
        }
    }
    f.attrs = kept;
    let marker = found?;
    let mut conditional = false;
    for attr in f
        .attrs
        .iter()
        .filter(|a| a.path() == CFG || a.path() == CFG_ATTR)
    {
        conditional = true;
        cx.error_spanned_by(
            attr,
            format!(
                "`#[{}]` methods cannot be conditional: the event and command enums list every one; put the `#[cfg]` on the whole impl block, or on the aggregate's module",
                marker.symbol()
            ),
        );
    }
    Some((marker, conditional))
}

/// The path of a type written as a plain path (`a::B`, no `<T as Trait>::` qualifier);
/// `generics`: whether the last segment may carry generic arguments.
fn plain_path(ty: &Type, generics: bool) -> Option<&Path> {
    match ty {
        Type::Path(TypePath {
            qself: None, path, ..
        }) => {
            let last = path.segments.last()?;
            (generics || matches!(last.arguments, PathArguments::None)).then_some(path)
        }
        Type::Paren(p) => plain_path(&p.elem, generics),
        Type::Group(g) => plain_path(&g.elem, generics),
        _ => None,
    }
}

/// A type named by a plain path without generic arguments: the only kind that can name an
/// enum variant.
fn type_ref(ty: &Type) -> Option<TypeRef> {
    let path = plain_path(ty, false)?;
    Some(TypeRef {
        ty: ty.clone(),
        path: path.clone(),
        ident: path.segments.last()?.ident.clone(),
    })
}

/// `Account<'a>`, `Account<'_>`.
fn names_lifetime(path: &Path) -> bool {
    path.segments.iter().any(|s| match &s.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .any(|a| matches!(a, GenericArgument::Lifetime(_))),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::type_ref;

    fn same(a: &str, b: &str) -> bool {
        let a = type_ref(&syn::parse_str(a).expect("type")).expect("plain");
        let b = type_ref(&syn::parse_str(b).expect("type")).expect("plain");
        a.same_type(&b)
    }

    #[test]
    fn paths_to_one_type_compare_equal() {
        assert!(same("Opened", "Opened"));
        assert!(same("events::Opened", "crate::events::Opened"));
        assert!(same("self::Opened", "Opened"));
        assert!(same("::events::Opened", "events::Opened"));
        assert!(!same("v1::Opened", "v2::Opened"));
        assert!(!same("Opened", "Closed"));
        assert!(!same("a::Opened", "b::a::Closed"));
    }
}
