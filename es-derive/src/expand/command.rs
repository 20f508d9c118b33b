//! `#[derive(Command)]`: `impl Command` with the command's name, its JSON tag: the type
//! name, or `#[command(name = "...")]`, a contract like an event's stored name.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote_spanned};
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Field, Fields, LitStr};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::{data_kind, krate, with_errors};
use crate::symbol::{RENAME, SERDE};

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let attrs = attr::command_attrs(&cx, &input.attrs);
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
    if let Data::Struct(data) = &input.data {
        for field in &data.fields {
            if field.ident.as_ref().is_some_and(|i| i.unraw() == "type") || renamed_to_type(field) {
                cx.error_spanned_by(
                    field.ident.as_ref().map_or_else(|| field.ty.to_token_stream(), ToTokens::to_token_stream),
                    format!(
                        "a command's JSON carries its type in a `type` key (`{{\"type\": \"{}\", ..}}`), so no field may be called `type`: rename the field, e.g. `kind` or `#[serde(rename = \"account_type\")]`",
                        input.ident
                    ),
                );
            }
        }
    }
    let krate = krate(attrs.krate.as_ref());
    let ident = &input.ident;
    let name = attrs
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), LitStr::value);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let tokens = quote_spanned! {ident.span()=>
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::Command for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
            }
        };
    };
    with_errors(cx, tokens)
}

/// Whether `#[serde(rename = "type")]` (or `rename(serialize = "type", ..)`) renames the field
/// to `type`. Other serde keys are serde's business: skipped, never reported here.
fn renamed_to_type(field: &Field) -> bool {
    let mut renamed = false;
    for attr in field.attrs.iter().filter(|a| a.path() == SERDE) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path == RENAME {
                if meta.input.peek(syn::Token![=]) {
                    let name: LitStr = meta.value()?.parse()?;
                    renamed |= name.value() == "type";
                } else {
                    meta.parse_nested_meta(|inner| {
                        let name: LitStr = inner.value()?.parse()?;
                        renamed |= name.value() == "type";
                        Ok(())
                    })?;
                }
            } else if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                meta.input.parse::<proc_macro2::Group>()?;
            }
            Ok(())
        });
    }
    renamed
}
