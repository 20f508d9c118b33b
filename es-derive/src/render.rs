//! Tokens rendered as a person writes them, for error messages and generated docs:
//! `Vec<Ev>`, `&mut self`, `fn(&self, cmd: C) -> Result<R, E>`.

use quote::ToTokens;
use syn::{ReturnType, Signature};

/// Tokens as a person writes them: `Vec<Ev>`, `&mut self`, `a::B`.
pub(crate) fn render(tokens: &dyn ToTokens) -> String {
    let raw = tokens.to_token_stream().to_string();
    let mut s = raw
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" :", ":");
    if s.starts_with("::") && !raw.starts_with("::") {
        s.insert(0, ' ');
    }
    s
}

pub(crate) fn render_sig(sig: &Signature) -> String {
    let mut out = String::new();
    if sig.constness.is_some() {
        out.push_str("const ");
    }
    if sig.asyncness.is_some() {
        out.push_str("async ");
    }
    if !matches!(sig.safety, syn::Safety::Default) {
        out.push_str(&render(&sig.safety));
        out.push(' ');
    }
    out.push_str("fn");
    if !sig.generics.params.is_empty() {
        out.push_str(&render(&sig.generics));
    }
    out.push('(');
    let args: Vec<String> = sig.inputs.iter().map(|a| render(a)).collect();
    out.push_str(&args.join(", "));
    out.push(')');
    if let ReturnType::Type(_, ty) = &sig.output {
        out.push_str(" -> ");
        out.push_str(&render(ty));
    }
    out
}
