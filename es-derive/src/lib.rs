//! Procedural macros of `es-core`: `#[derive(Event)]`, `#[derive(Command)]`,
//! `#[derive(Aggregate)]`, `#[aggregate_impl]` and its method markers `#[command]` and
//! `#[apply]`; the read side's `#[derive(Projection)]`, `#[derive(Reactor)]`,
//! `#[projection_impl]`, `#[reactor_impl]` and their handler marker `#[on]`. Use them through
//! `es_core::prelude`.
//!
//! This file holds only the entry points. The work is staged: `attr` parses attributes,
//! `ast` builds a typed model of an `#[aggregate_impl]` block, `check` enforces the rules
//! that span several items, `expand` runs the stages and emits. Errors are collected
//! (`ctxt`), so a user sees every mistake in one build, and each points at the user's own
//! token.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod render;
mod symbol;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Implements `es_core::Event`. `#[event(name = "StoredName", version = 2)]`, both optional
/// (default: the type name, version 1); `previous = OldType` or `upcast = path` for reading
/// older versions; `#[personal(subject = other_field)]` on a field to store it encrypted
/// under its data subject's key.
#[proc_macro_derive(Event, attributes(event, personal))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    expand::event::derive(&parse_macro_input!(input as DeriveInput)).into()
}

/// Implements `es_core::Command`.
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    expand::command::derive(&parse_macro_input!(input as DeriveInput)).into()
}

/// Implements `es_core::AggregateRoot`. `#[aggregate(name = "account", id = AccountId,
/// error = AccountError)]`: `error` required, `name` defaults to the type name in
/// snake_case, `id` to `uuid::Uuid`.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    expand::aggregate::derive(&parse_macro_input!(input as DeriveInput)).into()
}

/// On the aggregate's inherent impl block: implements `es_core::Aggregate` from its
/// `#[command]` and `#[apply]` methods and generates `{Type}Event` and `{Type}Command`
/// (`#[aggregate_impl(event = Name, command = Name)]` renames them).
#[proc_macro_attribute]
pub fn aggregate_impl(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::aggregate_impl::attribute(args.into(), input.into()).into()
}

/// Marks a method of an `#[aggregate_impl]` block that decides a command:
/// `fn(&self, cmd: C) -> Result<R, E>`. The block reads and removes it; anywhere else it is
/// an error that says so.
#[proc_macro_attribute]
pub fn command(_args: TokenStream, input: TokenStream) -> TokenStream {
    expand::marker::stray(ast::Marker::Command, input.into()).into()
}

/// Marks a method of an `#[aggregate_impl]` block that applies an event:
/// `fn(&mut self, event: &E)`. The block reads and removes it; anywhere else it is an error
/// that says so.
#[proc_macro_attribute]
pub fn apply(_args: TokenStream, input: TokenStream) -> TokenStream {
    expand::marker::stray(ast::Marker::Apply, input.into()).into()
}

/// Names a listener that folds a read model: implements `es_core::__private::ListenerMeta`.
/// `#[projection(name = "balances", version = 2)]`, both optional (default: the type name in
/// snake_case, version 1; a new version is rebuilt beside the serving one).
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(input: TokenStream) -> TokenStream {
    expand::listener::derive(
        &parse_macro_input!(input as DeriveInput),
        ast::listener::Kind::Projection,
    )
    .into()
}

/// Names a listener that reacts with commands (a process manager, a saga).
/// `#[reactor(name = "transfers")]`, optional (default: the type name in snake_case).
#[proc_macro_derive(Reactor, attributes(reactor))]
pub fn derive_reactor(input: TokenStream) -> TokenStream {
    expand::listener::derive(
        &parse_macro_input!(input as DeriveInput),
        ast::listener::Kind::Reactor,
    )
    .into()
}

/// On a read model's inherent impl block: implements `es_core::Projection` from its `#[on]`
/// handlers, `fn(&mut self, event: &E)` (or `&Envelope<E>`, optionally a last `ctx: &mut C`).
#[proc_macro_attribute]
pub fn projection_impl(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::listener::attribute(args.into(), input.into(), ast::listener::Kind::Projection).into()
}

/// On a reactor's inherent impl block: implements `es_core::Projection` from its `#[on]`
/// handlers, `fn(&self, event: &E)` (or `&Envelope<E>`), usually `async`. The handlers stay
/// callable as ordinary methods.
#[proc_macro_attribute]
pub fn reactor_impl(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::listener::attribute(args.into(), input.into(), ast::listener::Kind::Reactor).into()
}

/// Marks a handler of a `#[projection_impl]` or `#[reactor_impl]` block. The block reads and
/// removes it; anywhere else it is an error that says so.
#[proc_macro_attribute]
pub fn on(_args: TokenStream, input: TokenStream) -> TokenStream {
    expand::marker::stray_on(input.into()).into()
}
