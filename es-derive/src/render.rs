//! Tokens rendered as a person writes them, for error messages and generated docs:
//! `Vec<Ev>`, `&mut self`, `events::Opened`.

use quote::ToTokens;

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
