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
pub(crate) mod listener;
pub(crate) mod marker;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::{Data, DeriveInput, Path};

use crate::ctxt::Ctxt;

/// The path of es-core: `::es_core`, or the user's `crate = path` for re-exporters.
pub(crate) fn krate(path: Option<&Path>) -> TokenStream {
    path.map_or_else(|| quote!(::es_core), |p| quote!(#p))
}

/// The path of es-core located at `span`, for a bound rustc may report: a path spanned at
/// the macro call would take the whole bound, and its error, to the attribute. A `crate =
/// path` keeps its hygiene (a `$crate` still resolves) and only moves.
pub(crate) fn krate_at(path: Option<&Path>, span: Span) -> TokenStream {
    fn locate(tokens: TokenStream, span: Span) -> TokenStream {
        tokens
            .into_iter()
            .map(|mut tree| {
                if let TokenTree::Group(group) = &tree {
                    let mut moved =
                        proc_macro2::Group::new(group.delimiter(), locate(group.stream(), span));
                    moved.set_span(group.span().located_at(span));
                    return TokenTree::Group(moved);
                }
                tree.set_span(tree.span().located_at(span));
                tree
            })
            .collect()
    }
    path.map_or_else(
        || quote_spanned!(span=> ::es_core),
        |p| locate(p.to_token_stream(), span),
    )
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
