//! Rules that span several items of one `#[aggregate_impl]`: no event type applied twice, no
//! command type handled twice, no two types sharing a final identifier (the enums name their
//! variants after it), no type named like a generated enum, and every event a command emits
//! has an `#[apply]`. Each failure points at the user's token and says what to write. What
//! is reported is also taken out of the model (a duplicate's variant, a command's call), so
//! the expansion holds nothing that would fail again in generated code. The stored-name rule
//! needs the `Event` impls, so it is a const assertion in the expansion
//! (`expand::aggregate_impl`).

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

    let keep = unique(
        cx,
        model
            .applies
            .iter()
            .map(|a| (&a.event, &a.method))
            .collect(),
        &Kind {
            kind: "event",
            verb: "applied",
            marker: "`#[apply]`",
            generated: event_enum,
        },
    );
    retain_by_index(&mut model.applies, &keep);
    let keep = unique(
        cx,
        model
            .commands
            .iter()
            .map(|c| (&c.command, &c.method))
            .collect(),
        &Kind {
            kind: "command",
            verb: "handled",
            marker: "`#[command]`",
            generated: command_enum,
        },
    );
    retain_by_index(&mut model.commands, &keep);

    for command in &mut model.commands {
        let Some(emits) = &command.emits else {
            continue;
        };
        for ty in emits.types() {
            // By final identifier: the enum has one variant per identifier. A path to another
            // type with that identifier is rustc's to find (no `From` for it), on the user's
            // type; a re-export would make it the same type, which syntax cannot tell.
            if ty.ident == *event_enum || model.applies.iter().any(|a| a.event.ident == ty.ident) {
                continue;
            }
            command.valid = false;
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
    }
    generate
}

/// How one kind of marked method is named in messages.
struct Kind<'a> {
    kind: &'static str,
    verb: &'static str,
    marker: &'static str,
    generated: &'a Ident,
}

/// Reports every type after the first with a given final identifier; returns, per item,
/// whether it is kept (the first of its identifier).
fn unique(cx: &Ctxt, items: Vec<(&TypeRef, &Ident)>, kind: &Kind<'_>) -> Vec<bool> {
    let Kind {
        kind,
        verb,
        marker,
        generated,
    } = kind;
    let mut keep = Vec::with_capacity(items.len());
    for (i, (ty, method)) in items.iter().enumerate() {
        let first = items[..i].iter().find(|(seen, _)| seen.ident == ty.ident);
        match first {
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
            None => {}
        }
        keep.push(first.is_none());
    }
    keep
}

fn retain_by_index<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    items.retain(|_| flags.next().copied().unwrap_or(true));
}
