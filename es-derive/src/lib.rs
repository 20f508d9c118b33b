//! Procedural macros of `es-core`: `#[derive(Event)]`, `#[derive(Command)]`,
//! `#[derive(Aggregate)]` and `#[aggregate_impl]`. Use them through `es_core::prelude`.
//!
//! This file holds only the entry points. The work is staged: `attr` parses attributes,
//! `ast` builds a typed model of an `#[aggregate_impl]` block, `check` enforces the rules
//! that span several items, `expand` only emits. Errors are collected (`ctxt`), so a user
//! sees every mistake in one build, and each points at the user's own token.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod render;
mod symbol;

use proc_macro::TokenStream;
use quote::{ToTokens, format_ident};
use syn::{DeriveInput, ItemImpl, parse_macro_input};

/// Implements `es_core::Event`. `#[event(name = "StoredName", version = 2)]`, both optional
/// (default: the type name, version 1).
#[proc_macro_derive(Event, attributes(event))]
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
    let cx = ctxt::Ctxt::new();
    let args = attr::aggregate_impl_args(&cx, args.into());
    let item = match syn::parse::<ItemImpl>(input.clone()) {
        Ok(item) => item,
        Err(err) => {
            // Re-emit the user's item as written, plus the error.
            let _ = cx.check();
            let mut out = proc_macro2::TokenStream::from(input);
            out.extend(
                syn::Error::new(
                    err.span(),
                    "`#[aggregate_impl]` goes on the aggregate's inherent impl block: `impl Account { ... }`",
                )
                .to_compile_error(),
            );
            return out.into();
        }
    };
    let Some(mut model) = ast::parse(&cx, item.clone()) else {
        return expand::with_errors(cx, item.into_token_stream()).into();
    };
    let event_enum = args
        .event
        .unwrap_or_else(|| format_ident!("{}Event", model.self_ident));
    let command_enum = args
        .command
        .unwrap_or_else(|| format_ident!("{}Command", model.self_ident));
    if !check::check(&cx, &mut model, &event_enum, &command_enum) {
        return expand::with_errors(cx, model.item.into_token_stream()).into();
    }
    let krate = expand::krate(args.krate.as_ref());
    let names = expand::aggregate_impl::Names {
        krate: &krate,
        event_enum: &event_enum,
        command_enum: &command_enum,
    };
    expand::with_errors(cx, expand::aggregate_impl::expand(&model, &names)).into()
}
