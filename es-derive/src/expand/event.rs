//! `#[derive(Event)]`: `impl Event` with the stored name and schema version, and, for a type
//! that reads older versions, its upcasting step: `previous = OldType` (through `From`,
//! down that type's own chain) or `upcast = path` (one JSON step). The rules a `previous`
//! type must keep (same stored name, exactly one version lower) are const assertions spanned
//! at its token, so a broken chain is one error there.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Path, Type};

use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::{data_kind, krate, with_errors};
use crate::render::render;

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
        .as_ref()
        .map_or_else(|| ident.to_string(), syn::LitStr::value);
    let version = attrs.version.unwrap_or(1);
    let step = match (&attrs.previous, &attrs.upcast) {
        (Some(_), Some(upcast)) => {
            cx.error_spanned_by(
                upcast,
                format!(
                    "`{ident}` gives both `previous` and `upcast`: give one (`previous = OldType` reads the older version through `From`, `upcast = path` through a step on its JSON)"
                ),
            );
            None
        }
        (Some(previous), None) if version == 1 => {
            cx.error_spanned_by(previous, older_than_one(ident, "previous"));
            None
        }
        (None, Some(upcast)) if version == 1 => {
            cx.error_spanned_by(upcast, older_than_one(ident, "upcast"));
            None
        }
        (Some(previous), None) => Some(Step::Previous(previous)),
        (None, Some(upcast)) => Some(Step::Upcast(upcast)),
        (None, None) => None,
    };
    let upcasting = step
        .as_ref()
        .map(|step| upcasting(step, &krate, version))
        .unwrap_or_default();
    // A free constant cannot name a generic type's parameters: a generic event's chain is
    // checked by its `From` alone.
    let checks = match &step {
        Some(Step::Previous(previous)) if input.generics.params.is_empty() => previous_checks(
            ident,
            previous,
            &krate,
            &name,
            version,
            attrs.name.is_some(),
        ),
        _ => TokenStream::new(),
    };
    let chain = match &step {
        Some(Step::Previous(previous)) => {
            quote_spanned!(previous.span()=> <#previous as #krate::Event>::__contracts(__out);)
        }
        _ => TokenStream::new(),
    };
    // The schema through autoref: `ViaJsonSchema` when the type derives `JsonSchema`,
    // `NoSchema` otherwise (a generic type: always the latter).
    let contracts = quote! {
        fn __contracts(__out: &mut ::std::vec::Vec<#krate::contracts::Contract>) {
            #[allow(unused_imports)]
            use #krate::__private::{NoSchema as _, ViaJsonSchema as _};
            __out.push(#krate::contracts::Contract::new(
                #name,
                #version,
                (&&#krate::__private::SchemaProbe::<Self>::new()).schema(),
            ));
            #chain
        }
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let tokens = quote_spanned! {ident.span()=>
        const _: () = {
            // Not listed as "other types implementing `Event`" in a user's error: the list
            // would hold every event in scope (and es-core's own test events) and help nobody.
            #[automatically_derived]
            #[diagnostic::do_not_recommend]
            impl #impl_generics #krate::Event for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
                const VERSION: u16 = #version;
                #upcasting
                #contracts
            }
            #checks
        };
    };
    with_errors(cx, tokens)
}

enum Step<'a> {
    Previous(&'a Type),
    Upcast(&'a Path),
}

fn older_than_one(ident: &syn::Ident, key: &str) -> String {
    format!(
        "`{ident}` is version 1: there is no older version for `{key}` to read; give the type its new version (`#[event(version = 2, {key} = ...)]`)"
    )
}

/// `OLDEST_VERSION` and `from_stored` for a type that reads the version below its own.
fn upcasting(step: &Step<'_>, krate: &TokenStream, version: u16) -> TokenStream {
    let json = quote!(#krate::__private::serde_json);
    let (oldest, older) = match step {
        Step::Previous(previous) => {
            // Spanned at the `previous` type: a missing `From` is reported there.
            let from = quote_spanned!(previous.span()=> <Self as ::core::convert::From<#previous>>::from(__older));
            let oldest =
                quote_spanned!(previous.span()=> <#previous as #krate::Event>::OLDEST_VERSION);
            let read = quote_spanned!(previous.span()=> <#previous as #krate::Event>::from_stored);
            (
                oldest,
                quote! {
                    if (<Self as #krate::Event>::OLDEST_VERSION..#version).contains(&__schema_version) {
                        return match #read(__schema_version, __payload) {
                            ::core::result::Result::Ok(__older) => ::core::result::Result::Ok(#from),
                            ::core::result::Result::Err(__error) => ::core::result::Result::Err(__error),
                        };
                    }
                },
            )
        }
        Step::Upcast(path) => {
            let step = quote_spanned!(path.span()=> #krate::__private::upcast_step(#path, __schema_version, __payload));
            (
                quote!(#version - 1),
                quote! {
                    if __schema_version == #version - 1 {
                        let __upcast = #step?;
                        return ::core::result::Result::map_err(
                            #json::from_value::<Self>(__upcast),
                            #krate::DecodeError::Payload,
                        );
                    }
                },
            )
        }
    };
    quote! {
        const OLDEST_VERSION: u16 = #oldest;

        fn from_stored(
            __schema_version: u16,
            __payload: &#json::Value,
        ) -> ::core::result::Result<Self, #krate::DecodeError> {
            if __schema_version == #version {
                return #krate::__private::deserialize_current::<Self>(__payload);
            }
            #older
            ::core::result::Result::Err(#krate::DecodeError::UnsupportedVersion {
                stored: __schema_version,
                current: #version,
            })
        }
    }
}

/// The `previous` type keeps this one's stored name and sits exactly one version lower:
/// one const assertion each, spanned at its token.
fn previous_checks(
    ident: &syn::Ident,
    previous: &Type,
    krate: &TokenStream,
    name: &str,
    version: u16,
    named: bool,
) -> TokenStream {
    let shown = render(previous);
    let same_name = if named {
        format!(
            "`{shown}`, the previous version of `{ident}`, must be stored under the same name: give it `#[event(name = \"{name}\")]`"
        )
    } else {
        format!(
            "`{shown}`, the previous version of `{ident}`, must be stored under the same name: give both `#[event(name = \"...\")]` with one name"
        )
    };
    let one_lower = format!(
        "`{shown}`, the previous version of `{ident}` (version {version}), must be version {}: each step of a chain is one version",
        version - 1
    );
    quote_spanned! {previous.span()=>
        const _: () = ::core::assert!(
            #krate::__private::str_eq(
                <#previous as #krate::Event>::NAME,
                <#ident as #krate::Event>::NAME,
            ),
            #same_name,
        );
        const _: () = ::core::assert!(
            <#previous as #krate::Event>::VERSION as u32 + 1 == #version as u32,
            #one_lower,
        );
    }
}
