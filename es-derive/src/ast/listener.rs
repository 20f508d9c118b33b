//! The typed model of a `#[projection_impl]` or `#[reactor_impl]` block: its `#[on]`
//! handlers, read by syntax. A handler is `fn(&mut self, event: &E)` (a reactor's takes
//! `&self`), the event also as `&Envelope<E>`, optionally a last `ctx: &mut C` (the store's
//! context, the same `C` for every handler of a block), sync or `async`, returning `()` or
//! `Result<(), Err>` (any `Err: Debug`). Each problem is one error on its own token.

use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, Path, PathArguments,
    Type, TypeReference,
};

use super::{TypeRef, plain_path, type_ref};
use crate::ctxt::Ctxt;
use crate::render::render;
use crate::symbol::{CFG, CFG_ATTR, ES_CORE, ON, Symbol};

/// A read model (`&mut self` handlers) or a reactor (`&self`).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Projection,
    Reactor,
}

impl Kind {
    pub(crate) fn attribute(self) -> Symbol {
        match self {
            Self::Projection => crate::symbol::PROJECTION_IMPL,
            Self::Reactor => crate::symbol::REACTOR_IMPL,
        }
    }
}

pub(crate) struct ListenerImpl {
    /// The block, `#[on]` markers stripped.
    pub(crate) item: ItemImpl,
    pub(crate) handlers: Vec<OnFn>,
}

pub(crate) struct OnFn {
    pub(crate) method: Ident,
    pub(crate) event: TypeRef,
    /// Takes `&Envelope<E>` (else `&E`).
    pub(crate) envelope: bool,
    /// The `C` of a last `&mut C`.
    pub(crate) context: Option<TypeRef>,
    pub(crate) is_async: bool,
    /// The return type, for the span of its check.
    pub(crate) output: syn::ReturnType,
    /// Callable as written (else nothing calls it).
    pub(crate) valid: bool,
}

/// `#[on]` by itself, through es-core (`#[es_core::on]`), or through `crate = path`.
fn is_on(attr: &Path, krate: Option<&Path>) -> bool {
    let Some(last) = attr.segments.last() else {
        return false;
    };
    if last.ident != ON {
        return false;
    }
    let Some(first) = attr.segments.first() else {
        return false;
    };
    let through_crate = krate
        .and_then(|k| k.segments.first())
        .is_some_and(|k| k.ident == first.ident);
    attr.segments.len() == 1 || first.ident == ES_CORE || through_crate
}

pub(crate) fn parse(
    cx: &Ctxt,
    mut item: ItemImpl,
    kind: Kind,
    krate: Option<&Path>,
) -> ListenerImpl {
    let attribute = kind.attribute();
    if let Some((path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            format!("`#[{attribute}]` goes on the listener's inherent impl block (`impl Balances {{ ... }}`), not on a trait impl"),
        );
    }
    let mut handlers = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        if take_on(cx, f, krate) {
            handlers.extend(handler(cx, f, kind));
        }
    }
    ListenerImpl { item, handlers }
}

/// Strips `#[on]` (a marker here, not a macro); reports arguments, repeats and `#[cfg]`.
fn take_on(cx: &Ctxt, f: &mut ImplItemFn, krate: Option<&Path>) -> bool {
    let mut found = false;
    let mut kept: Vec<Attribute> = Vec::with_capacity(f.attrs.len());
    for attr in std::mem::take(&mut f.attrs) {
        if !is_on(attr.path(), krate) {
            kept.push(attr);
            continue;
        }
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            cx.error_spanned_by(&attr, "`#[on]` takes no arguments: write `#[on]`");
        }
        if found {
            cx.error_spanned_by(
                &attr,
                format!("duplicate `#[on]` on `{}`: give it once", f.sig.ident),
            );
        }
        found = true;
    }
    f.attrs = kept;
    if found {
        for attr in f
            .attrs
            .iter()
            .filter(|a| a.path() == CFG || a.path() == CFG_ATTR)
        {
            cx.error_spanned_by(
                attr,
                "`#[on]` handlers cannot be conditional: the listener's event types list every one; put the `#[cfg]` on the whole impl block",
            );
        }
    }
    found
}

/// The event type of `&E` or `&Envelope<E>`.
fn event_type(ty: &Type) -> Option<(TypeRef, bool)> {
    let Type::Reference(TypeReference {
        mutability: None,
        elem,
        ..
    }) = ty
    else {
        return None;
    };
    let path = plain_path(elem, true)?;
    let last = path.segments.last()?;
    if last.ident == "Envelope" {
        if let PathArguments::AngleBracketed(args) = &last.arguments
            && let [GenericArgument::Type(inner)] = args.args.iter().collect::<Vec<_>>()[..]
        {
            return type_ref(inner).map(|t| (t, true));
        }
        return None;
    }
    type_ref(elem).map(|t| (t, false))
}

fn handler(cx: &Ctxt, f: &ImplItemFn, kind: Kind) -> Option<OnFn> {
    let sig = &f.sig;
    let (receiver_text, mutable) = match kind {
        Kind::Projection => ("&mut self", true),
        Kind::Reactor => ("&self", false),
    };
    let expects = format!(
        "`#[on]` expects `fn({receiver_text}, event: &E)` (the event also as `&Envelope<E>`, optionally a last `ctx: &mut C`)"
    );
    let mut valid = true;
    let mut problem = |tokens: &dyn quote::ToTokens, message: String| {
        valid = false;
        cx.error_spanned_by(tokens, message);
    };
    if let Some(token) = &sig.constness {
        problem(
            token,
            format!("{expects}; found `const fn`: remove `const`"),
        );
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        problem(
            token,
            format!("{expects}; found `unsafe fn`: remove `unsafe`"),
        );
    }
    if !sig.generics.params.is_empty() {
        problem(
            &sig.generics,
            format!(
                "{expects}; found generic parameters `{}`: remove them",
                render(&sig.generics)
            ),
        );
    }
    match sig.receiver() {
        Some(r)
            if r.mutability.is_none()
                && matches!(&r.kind, syn::ReceiverKind::Reference(_, _, m) if m.is_some() == mutable) =>
            {}
        Some(r) => problem(
            r,
            format!(
                "{expects}; found `{}`: {}",
                render(r),
                match kind {
                    Kind::Projection =>
                        "a read model's handler folds the event into it: write `&mut self`",
                    Kind::Reactor =>
                        "a reactor's handler acts on the event and keeps no state: write `&self`",
                }
            ),
        ),
        None => problem(
            &sig.ident,
            format!("{expects}; found no `self`: add `{receiver_text}` as the first argument"),
        ),
    }
    let args: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let event = match args.first() {
        None => {
            problem(
                &sig.ident,
                format!("{expects}; found no event argument: add `event: &E`"),
            );
            None
        }
        Some(arg) => match event_type(&arg.ty) {
            Some(event) => Some(event),
            None => {
                problem(
                    &arg.ty,
                    format!(
                        "{expects}; found `{}`: take the event by reference, `&MoneyDeposited` or `&Envelope<MoneyDeposited>`, naming its type by a plain path",
                        render(&arg.ty)
                    ),
                );
                None
            }
        },
    };
    let context = match args.get(1) {
        None => None,
        Some(arg) => match &*arg.ty {
            Type::Reference(TypeReference {
                mutability: Some(_),
                elem,
                ..
            }) => match type_ref(elem) {
                Some(c) => Some(c),
                None => {
                    problem(
                        elem,
                        format!(
                            "{expects}; found context `{}`: name it by a plain path, e.g. `&mut PgConnection`",
                            render(elem)
                        ),
                    );
                    None
                }
            },
            other => {
                problem(
                    other,
                    format!(
                        "{expects}; found `{}`: the store's context comes as `&mut C`, e.g. `tx: &mut PgConnection`",
                        render(other)
                    ),
                );
                None
            }
        },
    };
    for extra in args.iter().skip(2) {
        problem(
            extra,
            format!(
                "{expects}; found an extra argument `{}`: remove it",
                render(extra)
            ),
        );
    }
    let is_async = sig.asyncness.is_some();
    if kind == Kind::Projection
        && is_async
        && context.is_none()
        && args.len() < 2
        && let Some(token) = &sig.asyncness
    {
        problem(
            token,
            format!(
                "{expects}; found `async fn` without a context: a read model without one is folded in memory, synchronously: remove `async`, or take the store's transaction (`tx: &mut PgConnection`) to write tables"
            ),
        );
    }
    let (event, envelope) = event?;
    Some(OnFn {
        method: sig.ident.clone(),
        event,
        envelope,
        context,
        is_async,
        output: sig.output.clone(),
        valid,
    })
}
