//! `#[derive(Command)]`: `impl Command` with the command's type name.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::{Data, DeriveInput, Fields};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::{data_kind, krate, with_errors};

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let krate_path = attr::command_attrs(&cx, &input.attrs);
    if !matches!(&input.data, Data::Struct(s) if matches!(s.fields, Fields::Named(_) | Fields::Unit))
    {
        let (found, span) = data_kind(input);
        cx.error_at(
            span,
            format!(
                "`#[derive(Command)]` expects a struct with named fields or a unit struct (`struct {0} {{ .. }}` or `struct {0};`): a command arrives as a JSON object tagged with its type; found {found}",
                input.ident
            ),
        );
    }
    let krate = krate(krate_path.as_ref());
    let ident = &input.ident;
    let name = ident.to_string();
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let tokens = quote_spanned! {ident.span()=>
        #[automatically_derived]
        impl #impl_generics #krate::Command for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
        }
    };
    with_errors(cx, tokens)
}
