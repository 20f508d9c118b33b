//! `#[derive(Event)]`: `impl Event` with the stored name and schema version.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::{Data, DeriveInput, Fields};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::{data_kind, krate, with_errors};

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let attrs = attr::event_attrs(&cx, &input.attrs);
    if !matches!(&input.data, Data::Struct(s) if matches!(s.fields, Fields::Named(_))) {
        let (found, span) = data_kind(input);
        cx.error_at(
            span,
            format!(
                "`#[derive(Event)]` expects a struct with named fields (`struct {0} {{ .. }}`, or `struct {0} {{}}` with none): an event is stored as a JSON object; found {found}",
                input.ident
            ),
        );
    }
    let krate = krate(attrs.krate.as_ref());
    let ident = &input.ident;
    let name = attrs
        .name
        .map_or_else(|| ident.to_string(), |lit| lit.value());
    let version = attrs.version.unwrap_or(1);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let tokens = quote_spanned! {ident.span()=>
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::Event for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
                const VERSION: u16 = #version;
            }
        };
    };
    with_errors(cx, tokens)
}
