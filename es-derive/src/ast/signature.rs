//! The signatures of marked methods: `#[command] fn(&self, cmd: C) -> Result<R, E>` and
//! `#[apply] fn(&mut self, event: &E)`. Each problem is one error on its own token (the
//! `async`, the receiver, the argument's type, the return type), so a user fixes them all in
//! one build.

use syn::{
    FnArg, GenericArgument, ImplItemFn, PatType, PathArguments, ReceiverKind, ReturnType,
    Signature, Type, TypePath,
};

use super::{ApplyFn, CommandFn, Emits, Marker, type_ref};
use crate::ctxt::Ctxt;
use crate::render::render;

/// What one marker expects of its method.
struct Shape {
    marker: Marker,
    /// The first half of every message.
    expects: &'static str,
    /// `&mut self` (else `&self`).
    mutable: bool,
    /// Why the receiver is what it is.
    receiver_why: &'static str,
    /// The argument, as the fix writes it.
    argument: &'static str,
}

const COMMAND: Shape = Shape {
    marker: Marker::Command,
    expects: "`#[command]` expects `fn(&self, cmd: C) -> Result<R, E>`",
    mutable: false,
    receiver_why: "a command decides against the state without changing it",
    argument: "cmd: C",
};

const APPLY: Shape = Shape {
    marker: Marker::Apply,
    expects: "`#[apply]` expects `fn(&mut self, event: &E)`",
    mutable: true,
    receiver_why: "applying an event changes the state",
    argument: "event: &E",
};

/// Reports what every marked method can get wrong, each on its token: qualifiers, generic
/// parameters, the receiver, the number of arguments. Returns whether all was well, and the
/// first typed argument.
fn check_common<'a>(cx: &Ctxt, sig: &'a Signature, shape: &Shape) -> (bool, Option<&'a PatType>) {
    let expects = shape.expects;
    let mut problems: Vec<syn::Error> = Vec::new();
    if let Some(token) = &sig.constness {
        problems.push(syn::Error::new_spanned(
            token,
            format!("{expects}; found `const fn`: remove `const`"),
        ));
    }
    if let Some(token) = &sig.asyncness {
        problems.push(syn::Error::new_spanned(
            token,
            format!(
                "{expects}; found `async fn`: a `#[{}]` method runs synchronously, remove `async`",
                shape.marker.symbol()
            ),
        ));
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        problems.push(syn::Error::new_spanned(
            token,
            format!(
                "{expects}; found `unsafe fn`: remove `unsafe` (the generated code calls it without an `unsafe` block)"
            ),
        ));
    }
    if !sig.generics.params.is_empty() {
        problems.push(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "{expects}; found generic parameters `{}`: remove them (each generated variant holds one concrete type)",
                render(&sig.generics)
            ),
        ));
    }
    let wanted = if shape.mutable { "&mut self" } else { "&self" };
    match sig.receiver() {
        Some(r) => {
            let right = r.mutability.is_none()
                && matches!(&r.kind, ReceiverKind::Reference(_, _, m) if m.is_some() == shape.mutable);
            if !right {
                problems.push(syn::Error::new_spanned(
                    r,
                    format!(
                        "{expects}; found `{}`: {}, take `{wanted}`",
                        render(r),
                        shape.receiver_why
                    ),
                ));
            }
        }
        None => {
            let msg = format!("{expects}; found no `self`: take `{wanted}` first");
            problems.push(match sig.inputs.first() {
                Some(arg) => syn::Error::new_spanned(arg, msg),
                None => syn::Error::new(sig.paren_token.span.join(), msg),
            });
        }
    }
    let mut typed = sig.inputs.iter().filter_map(|arg| match arg {
        FnArg::Typed(t) => Some(t),
        FnArg::Receiver(_) => None,
    });
    let first = typed.next();
    if first.is_none() {
        problems.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "{expects}; found no argument: add `{}` after `{wanted}`",
                shape.argument
            ),
        ));
    }
    for extra in typed {
        problems.push(syn::Error::new_spanned(
            extra,
            format!(
                "{expects}; found another argument `{}`: take only `{}`, remove this one",
                render(extra),
                shape.argument
            ),
        ));
    }
    let ok = problems.is_empty();
    for problem in problems {
        cx.syn_error(problem);
    }
    (ok, first)
}

/// A `#[command]` method; `None` when no command type can be read (no variant to generate).
pub(super) fn command(cx: &Ctxt, f: &ImplItemFn, conditional: bool) -> Option<CommandFn> {
    let sig = &f.sig;
    let expects = COMMAND.expects;
    let (mut valid, arg) = check_common(cx, sig, &COMMAND);
    valid &= !conditional;

    let command = arg.and_then(|arg| match &*arg.ty {
        Type::Reference(r) => {
            valid = false;
            cx.error_spanned_by(
                &arg.ty,
                format!(
                    "{expects}; found `{}`: take the command by value, `cmd: {}`",
                    render(&arg.ty),
                    render(&r.elem)
                ),
            );
            type_ref(&r.elem)
        }
        ty => {
            let command = type_ref(ty);
            if command.is_none() {
                valid = false;
                cx.error_spanned_by(
                    ty,
                    format!(
                        "{expects}; found `{}`: the command must be a struct type named by a path without generic arguments",
                        render(ty)
                    ),
                );
            }
            command
        }
    });

    let (emits, error_ty) = match result_parts(&sig.output) {
        Some((ok, err)) => (parse_emits(cx, ok, false), Some(err.clone())),
        None => {
            valid = false;
            let rule = "return `Result<R, E>` where `E` is the aggregate's error (or converts into it with `Into`)";
            match &sig.output {
                ReturnType::Default => cx.error_spanned_by(
                    &sig.ident,
                    format!("{expects}; found no return type: {rule}"),
                ),
                ReturnType::Type(_, ty) => {
                    cx.error_spanned_by(ty, format!("{expects}; found `{}`: {rule}", render(ty)))
                }
            }
            (None, None)
        }
    };

    Some(CommandFn {
        method: sig.ident.clone(),
        command: command?,
        emits,
        error_ty,
        valid,
    })
}

/// An `#[apply]` method; `None` when no event type can be read (no variant to generate).
pub(super) fn apply(cx: &Ctxt, f: &ImplItemFn, conditional: bool) -> Option<ApplyFn> {
    let sig = &f.sig;
    let expects = APPLY.expects;
    let (mut valid, arg) = check_common(cx, sig, &APPLY);
    valid &= !conditional;

    let event = arg.and_then(|arg| {
        let (event, fix) = match &*arg.ty {
            Type::Reference(r) if r.mutability.is_none() => (type_ref(&r.elem), None),
            Type::Reference(r) => (
                type_ref(&r.elem),
                Some(format!(
                    "take the event by shared reference, `event: &{}`",
                    render(&r.elem)
                )),
            ),
            ty => (
                type_ref(ty),
                Some(format!(
                    "take the event by reference, `event: &{}`",
                    render(ty)
                )),
            ),
        };
        let fix = match (&event, fix) {
            (None, _) => Some(
                "the event must be a struct type named by a path without generic arguments"
                    .to_owned(),
            ),
            (Some(_), fix) => fix,
        };
        if let Some(fix) = fix {
            valid = false;
            cx.error_spanned_by(
                &arg.ty,
                format!("{expects}; found `{}`: {fix}", render(&arg.ty)),
            );
        }
        event
    });

    if let ReturnType::Type(_, ty) = &sig.output
        && !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty())
    {
        valid = false;
        cx.error_spanned_by(
            ty,
            format!(
                "{expects}; found `-> {}`: applying an event cannot fail and returns nothing, remove the return type",
                render(ty)
            ),
        );
    }

    Some(ApplyFn {
        method: sig.ident.clone(),
        event: event?,
        valid,
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

/// The shape of a command's `R`; `nested`: inside a tuple, where tuples do not nest.
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
