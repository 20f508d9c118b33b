//! Code generation: each entry point runs its stages (`attr`, `ast`, `check`) and emits.
//! Every rule was checked before tokens are written. Generated code names everything by
//! absolute path (`::es_core::...`, `::core::...`), prefixes its locals with `__`, marks its
//! impls `#[automatically_derived]`, and puts them in `const _: () = { ... };`; only the items
//! a user names (the event and command enums) sit beside the user's code.

pub(crate) mod aggregate;
pub(crate) mod aggregate_impl;
pub(crate) mod aggregate_trait;
pub(crate) mod command;
pub(crate) mod event;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Path};

use crate::ctxt::Ctxt;

/// The path of es-core: `::es_core`, or the user's `crate = path` for re-exporters.
pub(crate) fn krate(path: Option<&Path>) -> TokenStream {
    path.map_or_else(|| quote!(::es_core), |p| quote!(#p))
}

/// The item plus every collected error: never only an error, so one mistake does not
/// cascade into "cannot find trait impl" everywhere else.
pub(crate) fn with_errors(cx: Ctxt, tokens: TokenStream) -> TokenStream {
    match cx.check() {
        Ok(()) => tokens,
        Err(err) => {
            let errors = err.to_compile_error();
            quote!(#tokens #errors)
        }
    }
}

/// What kind of item a derive landed on, for "expects a struct; found an enum".
pub(crate) fn data_kind(input: &DeriveInput) -> (&'static str, proc_macro2::Span) {
    match &input.data {
        Data::Struct(s) => match s.fields {
            syn::Fields::Named(_) => ("a struct with named fields", input.ident.span()),
            syn::Fields::Unnamed(_) => ("a tuple struct", input.ident.span()),
            syn::Fields::Unit => ("a unit struct", input.ident.span()),
        },
        Data::Enum(e) => ("an enum", e.enum_token.span),
        Data::Union(u) => ("a union", u.union_token.span),
    }
}
