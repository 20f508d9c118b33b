//! The typed model of an `#[aggregate_impl]` block: its `#[command]` and `#[apply]` methods,
//! each keeping the user's tokens for spans. Parsing reports every malformed signature and
//! still returns what it could read, so one mistake does not hide the next; a method that
//! cannot be called as written is kept with `valid: false`, so its variant exists and
//! nothing calls it.

use quote::ToTokens;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, Path, PathArguments,
    ReceiverKind, ReturnType, Signature, Type, TypePath,
};

use crate::ctxt::Ctxt;
use crate::render::{render, render_sig};
use crate::symbol::{APPLY, CFG, CFG_ATTR, COMMAND, Symbol};

/// The impl block, with the `#[command]` / `#[apply]` markers stripped.
pub(crate) struct AggregateImpl {
    pub(crate) item: ItemImpl,
    /// The aggregate's type name (`Account` in `impl Account`).
    pub(crate) self_ident: Ident,
    pub(crate) commands: Vec<CommandFn>,
    pub(crate) applies: Vec<ApplyFn>,
}

/// A type named by a plain path (`events::Opened`), the variant named after its final
/// identifier (`Opened`).
#[derive(Clone)]
pub(crate) struct TypeRef {
    /// As the user wrote it, for spans and generated code.
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

const COMMAND_SHAPE: &str = "`#[command]` expects `fn(&self, cmd: C) -> Result<R, E>`";
const APPLY_SHAPE: &str = "`#[apply]` expects `fn(&mut self, event: &E)`";

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

    /// The marker an attribute names.
    fn of(attr: &Path) -> Option<Self> {
        [Self::Command, Self::Apply]
            .into_iter()
            .find(|m| attr == m.symbol())
    }
}

/// The model of the block; `Err` with the block (markers stripped) when it is not on a type
/// the macro can name.
pub(crate) fn parse(cx: &Ctxt, mut item: ItemImpl) -> Result<AggregateImpl, Box<ItemImpl>> {
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
        match take_marker(cx, f) {
            Some(Marker::Command) => commands.extend(parse_command(cx, f)),
            Some(Marker::Apply) => applies.extend(parse_apply(cx, f)),
            None => {}
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
    Ok(AggregateImpl {
        item,
        self_ident,
        commands,
        applies,
    })
}

/// Removes `#[command]` / `#[apply]` from the method (they are markers, not attributes rustc
/// knows) and says which one it had. A marked method under a `#[cfg]` is reported here: the
/// enums list every marked method, so it cannot come and go.
fn take_marker(cx: &Ctxt, f: &mut ImplItemFn) -> Option<Marker> {
    let mut found: Option<Marker> = None;
    let mut kept: Vec<Attribute> = Vec::with_capacity(f.attrs.len());
    for attr in std::mem::take(&mut f.attrs) {
        let Some(marker) = Marker::of(attr.path()) else {
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
    for attr in f
        .attrs
        .iter()
        .filter(|a| a.path() == CFG || a.path() == CFG_ATTR)
    {
        cx.error_spanned_by(
            attr,
            format!(
                "`#[{}]` methods cannot be conditional: the event and command enums list every one; put the `#[cfg]` on the whole impl block, or on the aggregate's module",
                marker.symbol()
            ),
        );
    }
    Some(marker)
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
        ident: path.segments.last()?.ident.clone(),
    })
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
    let command = args.first().and_then(|a| type_ref(&a.ty));

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
            Type::Reference(r) => type_ref(&r.elem),
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
                PathArguments::None => type_ref(ty).map(Emits::One),
                PathArguments::AngleBracketed(args)
                    if (last.ident == "Option" || last.ident == "Vec") && args.args.len() == 1 =>
                {
                    let inner = match args.args.first() {
                        Some(GenericArgument::Type(inner)) => type_ref(inner),
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
        Some(Type::Reference(r)) if r.mutability.is_none() => type_ref(&r.elem),
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
        match event_ty.and_then(type_ref) {
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
    let event = by_ref.or_else(|| event_ty.and_then(type_ref))?;
    Some(ApplyFn {
        method: sig.ident.clone(),
        event,
        valid: hint.is_none(),
    })
}
