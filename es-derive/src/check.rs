//! Rules that span several items of one `#[aggregate_impl]`: no event type applied twice, no
//! command type handled twice, no two types sharing a final identifier (the enums name their
//! variants after it), and every event a command emits has an `#[apply]`. Each failure points
//! at the user's token and says what to write. The stored-name rule needs the `Event` impls,
//! so it is a const assertion in the expansion (see `expand::aggregate_impl`).

use std::collections::HashMap;

use syn::Ident;

use crate::ast::{AggregateImpl, TypeRef};
use crate::attr::snake_case;
use crate::ctxt::Ctxt;
use crate::render::render;

/// Checks the model; returns false when nothing should be generated (a user type takes a
/// generated enum's name: generating it would only add errors about a name clash).
pub(crate) fn check(
    cx: &Ctxt,
    model: &mut AggregateImpl,
    event_enum: &Ident,
    command_enum: &Ident,
) -> bool {
    let mut generate = true;
    let used = model
        .applies
        .iter()
        .map(|a| (&a.event, "event"))
        .chain(model.commands.iter().map(|c| (&c.command, "command")));
    for (ty, kind) in used {
        for (generated, key) in [(event_enum, "event"), (command_enum, "command")] {
            if ty.ident == *generated {
                generate = false;
                cx.error_spanned_by(
                    &ty.ty,
                    format!(
                        "this {kind} type is named `{generated}`, the name of the generated {key} enum: rename the type, or give the enum another name with `#[aggregate_impl({key} = ...)]`"
                    ),
                );
            }
        }
    }
    check_unique(
        cx,
        model.applies.iter().map(|a| (&a.event, &a.method)),
        "event",
        "applied",
        "`#[apply]`",
        event_enum,
    );
    check_unique(
        cx,
        model.commands.iter().map(|c| (&c.command, &c.method)),
        "command",
        "handled",
        "`#[command]`",
        command_enum,
    );
    let applied: HashMap<String, &TypeRef> = model
        .applies
        .iter()
        .map(|a| (a.event.ident.to_string(), &a.event))
        .collect();
    for command in &mut model.commands {
        let Some(emits) = &command.emits else {
            continue;
        };
        let mut all_applied = true;
        for ty in emits.types() {
            if ty.ident == *event_enum || applied.contains_key(&ty.ident.to_string()) {
                continue;
            }
            all_applied = false;
            cx.error_spanned_by(
                &ty.ty,
                format!(
                    "`{}` is emitted by `{}` but never applied: add `#[apply] fn {}(&mut self, event: &{}) {{ ... }}` to this impl block (the macro reads types by name: no type aliases)",
                    render(&ty.ty),
                    command.method,
                    snake_case(&ty.ident.to_string()),
                    render(&ty.ty),
                ),
            );
        }
        if !all_applied {
            command.valid = false;
        }
    }
    generate
}

fn check_unique<'a>(
    cx: &Ctxt,
    items: impl Iterator<Item = (&'a TypeRef, &'a Ident)>,
    kind: &str,
    verb: &str,
    marker: &str,
    generated: &Ident,
) {
    let mut seen: HashMap<String, (&TypeRef, &Ident)> = HashMap::new();
    for (ty, method) in items {
        match seen.get(&ty.ident.to_string()) {
            Some((first, first_method)) if first.same_type(ty) => cx.error_spanned_by(
                &ty.ty,
                format!(
                    "{kind} type `{}` is {verb} twice, by `{first_method}` and by `{method}`: keep one {marker} method per {kind} type",
                    render(&ty.ty)
                ),
            ),
            Some((first, _)) => cx.error_spanned_by(
                &ty.ty,
                format!(
                    "two {kind} types end in `{}` (`{}` and `{}`): `{generated}` names its variants after the final identifier, so rename one of them",
                    ty.ident,
                    render(&first.ty),
                    render(&ty.ty)
                ),
            ),
            None => {
                seen.insert(ty.ident.to_string(), (ty, method));
            }
        }
    }
}
