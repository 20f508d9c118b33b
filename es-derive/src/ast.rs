//! The typed model of an `#[aggregate_impl]` block: its `#[command]` and `#[apply]` methods,
//! each keeping the user's tokens for spans. Parsing reports every malformed signature and
//! still returns what it could read, so one mistake does not hide the next.

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, PathArguments, ReceiverKind,
    ReturnType, Signature, Type, TypePath,
};

use crate::ctxt::Ctxt;
use crate::render::{render, render_sig};
use crate::symbol::{APPLY, CFG, CFG_ATTR, COMMAND};

/// The impl block, with the `#[command]` / `#[apply]` markers stripped.
pub(crate) struct AggregateImpl {
    pub(crate) item: ItemImpl,
    /// The aggregate's type name (`Account` in `impl Account`).
    pub(crate) self_ident: Ident,
    pub(crate) commands: Vec<CommandFn>,
    pub(crate) applies: Vec<ApplyFn>,
}

/// A type named by its final identifier (`events::Opened` -> `Opened`).
#[derive(Clone)]
pub(crate) struct TypeRef {
    pub(crate) ty: Type,
    pub(crate) ident: Ident,
}

impl TypeRef {
    pub(crate) fn same_type(&self, other: &Self) -> bool {
        self.ty.to_token_stream().to_string() == other.ty.to_token_stream().to_string()
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
    /// `None` when the return type could not be read: the dispatch arm is then left out.
    pub(crate) emits: Option<Emits>,
    pub(crate) error_ty: Option<Type>,
    /// The signature is well-formed (else the method is not called).
    pub(crate) valid: bool,
}

pub(crate) struct ApplyFn {
    pub(crate) method: Ident,
    pub(crate) event: TypeRef,
    /// The signature is well-formed (else the method is not called).
    pub(crate) valid: bool,
}

const COMMAND_SHAPE: &str = "`#[command]` expects `fn(&self, cmd: C) -> Result<R, E>`";
const APPLY_SHAPE: &str = "`#[apply]` expects `fn(&mut self, event: &E)`";

pub(crate) fn parse(cx: &Ctxt, mut item: ItemImpl) -> Option<AggregateImpl> {
    if let Some((path, _)) = &item.trait_ {
        cx.error_spanned_by(
            path,
            "`#[aggregate_impl]` goes on the aggregate's inherent impl block (`impl Account { ... }`), not on a trait impl",
        );
    }
    let self_ident = match &*item.self_ty {
        Type::Path(TypePath {
            qself: None, path, ..
        }) => path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let Some(self_ident) = self_ident else {
        cx.error_spanned_by(
            &item.self_ty,
            "`#[aggregate_impl]` expects `impl Aggregate { ... }` on a struct that derives `Aggregate`",
        );
        return None;
    };

    let mut commands = Vec::new();
    let mut applies = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let marker = take_markers(cx, f);
        match marker {
            Some(Marker::Command) => commands.extend(parse_command(cx, f)),
            Some(Marker::Apply) => applies.extend(parse_apply(cx, f)),
            None => {}
        }
    }
    Some(AggregateImpl {
        item,
        self_ident,
        commands,
        applies,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Marker {
    Command,
    Apply,
}

/// Removes `#[command]` / `#[apply]` from the method (they are not real attributes) and says
/// which one it had.
fn take_markers(cx: &Ctxt, f: &mut ImplItemFn) -> Option<Marker> {
    let mut found: Option<(Marker, Span)> = None;
    let mut kept = Vec::with_capacity(f.attrs.len());
    for attr in std::mem::take(&mut f.attrs) {
        let marker = if attr.path() == COMMAND {
            Marker::Command
        } else if attr.path() == APPLY {
            Marker::Apply
        } else {
            kept.push(attr);
            continue;
        };
        let name = if marker == Marker::Command {
            COMMAND
        } else {
            APPLY
        };
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            cx.error_spanned_by(
                &attr,
                format!("`#[{name}]` takes no arguments: write `#[{name}]`"),
            );
        }
        match found {
            Some((first, _)) if first == marker => cx.error_spanned_by(
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
            None => found = Some((marker, attr.span())),
        }
    }
    if let Some((marker, _)) = found {
        let name = if marker == Marker::Command {
            COMMAND
        } else {
            APPLY
        };
        for attr in kept
            .iter()
            .filter(|a| a.path() == CFG || a.path() == CFG_ATTR)
        {
            cx.error_spanned_by(
                attr,
                format!(
                    "`#[{name}]` methods cannot be conditional: the event and command enums list every one; put the `#[cfg]` on the whole impl block, or on the aggregate's module"
                ),
            );
        }
    }
    f.attrs = kept;
    found.map(|(m, _)| m)
}

/// The type's final identifier, when it is a plain path without generic arguments.
fn plain_type(ty: &Type) -> Option<TypeRef> {
    match ty {
        Type::Path(TypePath {
            qself: None, path, ..
        }) => {
            let last = path.segments.last()?;
            matches!(last.arguments, PathArguments::None).then(|| TypeRef {
                ty: ty.clone(),
                ident: last.ident.clone(),
            })
        }
        Type::Paren(p) => plain_type(&p.elem),
        Type::Group(g) => plain_type(&g.elem),
        _ => None,
    }
}

fn typed_args(sig: &Signature) -> Vec<&syn::PatType> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// `&self` (`mutable`: `&mut self`).
fn has_ref_receiver(sig: &Signature, mutable: bool) -> bool {
    match sig.receiver() {
        Some(r) => {
            r.mutability.is_none()
                && matches!(&r.kind, ReceiverKind::Reference(_, _, m) if m.is_some() == mutable)
        }
        None => false,
    }
}

fn parse_command(cx: &Ctxt, f: &ImplItemFn) -> Option<CommandFn> {
    let sig = &f.sig;
    let args = typed_args(sig);
    let command = args.first().and_then(|a| plain_type(&a.ty));

    let hint = if sig.asyncness.is_some() {
        Some("a command is decided synchronously; remove `async`".to_owned())
    } else if sig.constness.is_some() || !matches!(sig.safety, syn::Safety::Default) {
        Some("remove the qualifiers before `fn`".to_owned())
    } else if !sig.generics.params.is_empty() {
        Some("remove the generic parameters".to_owned())
    } else if !has_ref_receiver(sig, false) {
        Some("a command decides against the state without changing it: take `&self`".to_owned())
    } else if args.len() != 1 {
        Some("take exactly one argument, the command".to_owned())
    } else if let Type::Reference(r) = &*args[0].ty {
        Some(format!(
            "take the command by value: `cmd: {}`",
            render(&r.elem)
        ))
    } else if command.is_none() {
        Some(
            "the command must be a struct type named by a path without generic arguments"
                .to_owned(),
        )
    } else {
        None
    };
    if let Some(hint) = &hint {
        cx.error_spanned_by(
            sig,
            format!("{COMMAND_SHAPE}; found `{}`: {hint}", render_sig(sig)),
        );
    }

    let (emits, error_ty) = match result_parts(&sig.output) {
        Some((ok, err)) => (parse_emits(cx, ok, false), Some(err.clone())),
        None => {
            let found = match &sig.output {
                ReturnType::Default => "no return type".to_owned(),
                ReturnType::Type(_, ty) => format!("`{}`", render(ty)),
            };
            let span_target: &dyn ToTokens = match &sig.output {
                ReturnType::Default => &sig.ident,
                ReturnType::Type(_, ty) => ty,
            };
            cx.error_spanned_by(
                span_target,
                format!(
                    "{COMMAND_SHAPE}; found {found}: return `Result<R, E>` where `E` is the aggregate's error (or converts into it with `Into`)"
                ),
            );
            (None, None)
        }
    };

    // Without a command type there is no variant to generate.
    let command = command.or_else(|| {
        args.first().and_then(|a| match &*a.ty {
            Type::Reference(r) => plain_type(&r.elem),
            _ => None,
        })
    })?;
    Some(CommandFn {
        method: sig.ident.clone(),
        command,
        emits,
        error_ty,
        valid: hint.is_none(),
    })
}

/// `Result<R, E>` -> (R, E), read by syntax.
fn result_parts(output: &ReturnType) -> Option<(&Type, &Type)> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let Type::Path(TypePath {
        qself: None, path, ..
    }) = &**ty
    else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(ok), Some(err), None) => Some((ok, err)),
        _ => None,
    }
}

fn parse_emits(cx: &Ctxt, ty: &Type, nested: bool) -> Option<Emits> {
    let unsupported = |cx: &Ctxt, ty: &Type| {
        cx.error_spanned_by(
            ty,
            format!(
                "a `#[command]` returns `Result<R, E>` where `R` is one event type, `()`, `Option<Ev>`, `Vec<Ev>`, a tuple of these, or the generated event enum; found `{}` (the macro reads `R` by its syntax: no type aliases, no deeper nesting)",
                render(ty)
            ),
        );
        None
    };
    match ty {
        Type::Tuple(t) if t.elems.is_empty() => Some(Emits::Nothing),
        Type::Tuple(t) if !nested => {
            let parts: Vec<Option<Emits>> =
                t.elems.iter().map(|e| parse_emits(cx, e, true)).collect();
            parts
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .map(Emits::Tuple)
        }
        Type::Paren(p) => parse_emits(cx, &p.elem, nested),
        Type::Path(TypePath {
            qself: None, path, ..
        }) => {
            let Some(last) = path.segments.last() else {
                return unsupported(cx, ty);
            };
            match &last.arguments {
                PathArguments::None => plain_type(ty).map(Emits::One),
                PathArguments::AngleBracketed(args)
                    if (last.ident == "Option" || last.ident == "Vec") && args.args.len() == 1 =>
                {
                    let inner = match args.args.first() {
                        Some(GenericArgument::Type(inner)) => plain_type(inner),
                        _ => None,
                    };
                    match inner {
                        Some(inner) if last.ident == "Option" => Some(Emits::Optional(inner)),
                        Some(inner) => Some(Emits::Many(inner)),
                        None => unsupported(cx, ty),
                    }
                }
                _ => unsupported(cx, ty),
            }
        }
        _ => unsupported(cx, ty),
    }
}

fn parse_apply(cx: &Ctxt, f: &ImplItemFn) -> Option<ApplyFn> {
    let sig = &f.sig;
    let args = typed_args(sig);
    let event_ty = args.first().map(|a| &*a.ty);
    let by_ref = match event_ty {
        Some(Type::Reference(r)) if r.mutability.is_none() => plain_type(&r.elem),
        _ => None,
    };
    let returns_unit = match &sig.output {
        ReturnType::Default => true,
        ReturnType::Type(_, ty) => matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
    };
    let hint = if sig.asyncness.is_some() {
        Some("applying an event is synchronous; remove `async`".to_owned())
    } else if sig.constness.is_some() || !matches!(sig.safety, syn::Safety::Default) {
        Some("remove the qualifiers before `fn`".to_owned())
    } else if !sig.generics.params.is_empty() {
        Some("remove the generic parameters".to_owned())
    } else if !has_ref_receiver(sig, true) {
        Some("applying an event changes the state: take `&mut self`".to_owned())
    } else if args.len() != 1 {
        Some("take exactly one argument, the event".to_owned())
    } else if by_ref.is_none() {
        match event_ty.and_then(plain_type) {
            Some(t) => Some(format!(
                "take the event by reference: `event: &{}`",
                render(&t.ty)
            )),
            None => Some(
                "the event must be a struct type named by a path without generic arguments"
                    .to_owned(),
            ),
        }
    } else if !returns_unit {
        Some("applying an event cannot fail and returns nothing: remove the return type".to_owned())
    } else {
        None
    };
    if let Some(hint) = &hint {
        cx.error_spanned_by(
            sig,
            format!("{APPLY_SHAPE}; found `{}`: {hint}", render_sig(sig)),
        );
    }
    let event = by_ref.or_else(|| event_ty.and_then(plain_type))?;
    Some(ApplyFn {
        method: sig.ident.clone(),
        event,
        valid: hint.is_none(),
    })
}
