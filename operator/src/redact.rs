//! Backend URLs without their credentials: a URL's userinfo
//! (`https://user:pass@host`) is replaced by `***` wherever a URL may appear in
//! a log line, an Event or a status message.

/// `text` with the userinfo of every URL in it replaced by `***`.
///
/// A URL is anything after `://` up to whitespace, a quote or a closing
/// bracket; its userinfo is the part before the last `@` of its authority (the
/// authority ends at the first `/`, `?` or `#`). Text without `://` comes back
/// unchanged.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let url_end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ']' | '>'))
            .unwrap_or(after.len());
        let authority_end = after[..url_end].find(['/', '?', '#']).unwrap_or(url_end);
        match after[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***");
                rest = &after[userinfo_end..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_userinfo(
                "error sending request for url (https://user:p%40ss@backend.example:8443/v1/tokens?x=1)"
            ),
            "error sending request for url (https://***@backend.example:8443/v1/tokens?x=1)"
        );
        assert_eq!(
            redact_userinfo("endpoint \"http://admin@h/\" and https://a:b@c"),
            "endpoint \"http://***@h/\" and https://***@c"
        );
        // An @ in the path is not userinfo.
        assert_eq!(
            redact_userinfo("http://host/users/a@b.c"),
            "http://host/users/a@b.c"
        );
        assert_eq!(redact_userinfo("no url here"), "no url here");
        assert_eq!(redact_userinfo("http://host:8080"), "http://host:8080");
    }

    #[test]
    fn backend_errors_display_without_userinfo() {
        let e = crate::Error::Backend(tokenops_client::Error::Config(
            "endpoint \"https://user:hunter2@backend.example\" is not a URL".into(),
        ));
        let shown = e.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("https://***@backend.example"), "{shown}");
    }
}
