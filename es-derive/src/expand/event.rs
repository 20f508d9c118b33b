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
    let personal = personal_fields(&cx, input);
    let upcasting = decoding(step.as_ref(), &personal, &krate, version);
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

/// A field marked `#[personal(subject = other)]`: its JSON name, its type, and the JSON
/// name of the field holding its data subject.
pub(crate) struct PersonalField {
    pub(crate) json: String,
    pub(crate) ty: Type,
    pub(crate) subject: String,
}

/// `OLDEST_VERSION`, `PERSONAL` and `from_stored` for a type that reads older versions or
/// has personal fields (none of them otherwise: the trait's defaults serve).
fn decoding(
    step: Option<&Step<'_>>,
    personal: &[PersonalField],
    krate: &TokenStream,
    version: u16,
) -> TokenStream {
    if step.is_none() && personal.is_empty() {
        return TokenStream::new();
    }
    let json = quote!(#krate::__private::serde_json);
    let (oldest, older) = match step {
        None => (None, TokenStream::new()),
        Some(Step::Previous(previous)) => {
            // Spanned at the `previous` type: a missing `From` is reported there.
            let from = quote_spanned!(previous.span()=> <Self as ::core::convert::From<#previous>>::from(__older));
            let oldest =
                quote_spanned!(previous.span()=> <#previous as #krate::Event>::OLDEST_VERSION);
            let read = quote_spanned!(previous.span()=> <#previous as #krate::Event>::from_stored);
            (
                Some(oldest),
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
        Some(Step::Upcast(path)) => {
            let step = quote_spanned!(path.span()=> #krate::__private::upcast_step(#path, __schema_version, __payload));
            (
                Some(quote!(#version - 1)),
                quote! {
                    if __schema_version == #version - 1 {
                        let __upcast = #step?;
                        return __current(&__upcast);
                    }
                },
            )
        }
    };
    let oldest = oldest.map(|oldest| quote!(const OLDEST_VERSION: u16 = #oldest;));
    // A forgotten personal field reads as `null`: its type's `Default` instead.
    let current = if personal.is_empty() {
        quote!(#krate::__private::deserialize_current::<Self>(__payload))
    } else {
        let names = personal.iter().map(|p| &p.json);
        let fixes = personal.iter().map(|p| {
            let (name, ty) = (&p.json, &p.ty);
            let default = quote_spanned!(ty.span()=> <#ty as ::core::default::Default>::default());
            quote! {
                if let ::core::option::Option::Some(__field) = __fields.get_mut(#name)
                    && __field.is_null()
                {
                    *__field = #json::to_value(#default).unwrap_or(#json::Value::Null);
                }
            }
        });
        quote! {
            let __forgotten = [#(#names),*]
                .iter()
                .any(|__name| __payload.get(*__name).is_some_and(#json::Value::is_null));
            if !__forgotten {
                return #krate::__private::deserialize_current::<Self>(__payload);
            }
            let mut __copy = ::core::clone::Clone::clone(__payload);
            if let ::core::option::Option::Some(__fields) = __copy.as_object_mut() {
                #(#fixes)*
            }
            #krate::__private::deserialize_current::<Self>(&__copy)
        }
    };
    let personal_const = (!personal.is_empty()).then(|| {
        let entries = personal.iter().map(|p| {
            let (field, subject) = (&p.json, &p.subject);
            quote!(#krate::Personal::new(#field, #subject))
        });
        quote!(const PERSONAL: &'static [#krate::Personal] = &[#(#entries),*];)
    });
    quote! {
        #oldest
        #personal_const

        fn from_stored(
            __schema_version: u16,
            __payload: &#json::Value,
        ) -> ::core::result::Result<Self, #krate::DecodeError> {
            #[allow(unused_variables)]
            let __current = |__payload: &#json::Value| -> ::core::result::Result<Self, #krate::DecodeError> {
                #current
            };
            if __schema_version == #version {
                return __current(__payload);
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

/// The fields marked `#[personal(subject = other)]`, checked: the subject is another field
/// of the struct, not personal itself. JSON names follow a field's `#[serde(rename =
/// "...")]`.
fn personal_fields(cx: &Ctxt, input: &DeriveInput) -> Vec<PersonalField> {
    let Data::Struct(data) = &input.data else {
        return Vec::new();
    };
    let json_name = |field: &syn::Field| {
        crate::attr::serde_rename(field).unwrap_or_else(|| {
            field
                .ident
                .as_ref()
                .map(|i| syn::ext::IdentExt::unraw(i).to_string())
                .unwrap_or_default()
        })
    };
    let marked: Vec<(&syn::Field, syn::Ident)> = data
        .fields
        .iter()
        .filter_map(|f| Some((f, crate::attr::personal_attr(cx, f)?)))
        .collect();
    let mut out = Vec::new();
    for (field, subject) in &marked {
        let Some(subject_field) = data
            .fields
            .iter()
            .find(|f| f.ident.as_ref().is_some_and(|i| i == subject))
        else {
            cx.error_spanned_by(
                subject,
                format!(
                    "`{}` has no field `{subject}`: `subject` names the field holding the data subject's id (a customer id, an e-mail hash)",
                    input.ident
                ),
            );
            continue;
        };
        if marked
            .iter()
            .any(|(f, _)| f.ident.as_ref() == Some(subject))
        {
            cx.error_spanned_by(
                subject,
                format!("`{subject}` is personal itself: the subject's id is stored in the clear, so it cannot be sealed under itself"),
            );
            continue;
        }
        out.push(PersonalField {
            json: json_name(field),
            ty: field.ty.clone(),
            subject: json_name(subject_field),
        });
    }
    out
}
