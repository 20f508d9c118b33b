//! `#[derive(Aggregate)]`: `impl AggregateRoot` with the stored name, id and error types.
//! A lifetime parameter is reported here, on its token (`#[aggregate_impl]` stays quiet
//! about it); a missing `error` still implements the trait, so the `#[aggregate_impl]` block
//! beside it compiles without a cascade of "not an aggregate".

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::{data_kind, krate, with_errors};

pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let ident = &input.ident;
    let attrs = attr::aggregate_attrs(&cx, &input.attrs, ident);
    if !matches!(&input.data, Data::Struct(s) if matches!(s.fields, Fields::Named(_) | Fields::Unit))
    {
        let (found, span) = data_kind(input);
        cx.error_at(
            span,
            format!(
                "`#[derive(Aggregate)]` expects a struct with named fields or a unit struct (`struct {ident} {{ .. }}`): the aggregate's state; found {found}"
            ),
        );
    }
    let mut borrows = false;
    for param in input.generics.lifetimes() {
        borrows = true;
        let lifetime = &param.lifetime;
        cx.error_spanned_by(
            lifetime,
            format!(
                "an aggregate owns its data: `'static`, so `{ident}` cannot borrow for `{lifetime}`; remove `{lifetime}` and own the fields (`String` for `&{lifetime} str`, `Vec<T>` for `&{lifetime} [T]`)"
            ),
        );
    }
    if borrows {
        // No impl can be `'static` for every `'a`; `#[aggregate_impl]` implements nothing
        // for a borrowing type either, so nothing asks for this one.
        return with_errors(cx, TokenStream::new());
    }

    let krate = krate(attrs.krate.as_ref());
    let name = attrs.name;
    let id = attrs.id.map_or_else(
        || quote!(#krate::__private::Uuid),
        |ty| quote_spanned!(ty.span()=> #ty),
    );
    let error = match attrs.error {
        Some(error) => quote_spanned!(error.span()=> #error),
        // The stub's error type is the error itself: a type that fails to compile with this
        // message. rustc reports it once and then ignores every bound that involves it, so
        // the `Into` conversions of the `#[aggregate_impl]` block stay quiet.
        None => {
            let message = format!(
                "`#[derive(Aggregate)]` needs the domain error its commands return: add `#[aggregate(error = {ident}Error)]` (naming your error type)"
            );
            quote_spanned!(ident.span()=> [(); { ::core::compile_error!(#message); 0 }])
        }
    };
    let snapshot = attrs.snapshot.as_ref().map(|policy| {
        let (every, version) = (policy.every, policy.version);
        // Spanned at `snapshot`: a state without serde is reported there.
        let codec = quote_spanned!(policy.key.span()=> <Self as #krate::__private::Snapshottable>);
        let to = quote!(#codec::to_json(self));
        let from = quote!(#codec::from_json(__state));
        quote! {
            const SNAPSHOT: ::core::option::Option<#krate::SnapshotPolicy> =
                ::core::option::Option::Some(#krate::SnapshotPolicy::new(#every, #version));

            fn to_snapshot(
                &self,
            ) -> ::core::option::Option<
                ::core::result::Result<
                    #krate::__private::serde_json::Value,
                    #krate::__private::serde_json::Error,
                >,
            > {
                ::core::option::Option::Some(#to)
            }

            fn from_snapshot(
                __state: #krate::__private::serde_json::Value,
            ) -> ::core::option::Option<
                ::core::result::Result<Self, #krate::__private::serde_json::Error>,
            > {
                ::core::option::Option::Some(#from)
            }
        }
    });
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let tokens = quote_spanned! {ident.span()=>
        const _: () = {
            // Never listed as "implemented for" in another type's error: noise there.
            #[automatically_derived]
            #[diagnostic::do_not_recommend]
            impl #impl_generics #krate::AggregateRoot for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
                type Id = #id;
                type Error = #error;
                #snapshot
            }
        };
    };
    with_errors(cx, tokens)
}
