//! Removing credentials from URLs before they are logged, stored or returned.

/// Value that replaces a secret.
pub const REDACTED: &str = "REDACTED";

/// Query parameters whose values are secrets (compared case-insensitively): the credentials a
/// location URL could carry for S3, GCS or Azure (refused by `Location::parse`, which uses this
/// list), and those of presigned S3 URLs and Azure SAS tokens.
const SECRET_PARAMS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "token",
    "password",
    "access_key",
    "account_key",
    "sas",
    "sas_token",
    "sig",
    "service_account_key",
    "x-amz-credential",
    "x-amz-signature",
    "x-amz-security-token",
];

/// `url` with the value of every credential query parameter, and any `user:password@` part,
/// replaced by `REDACTED`. Everything else is kept byte for byte, so the result still names the
/// same place; works on strings that are not valid URLs too, since those end up in error messages.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = redact_userinfo(base);
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_param(k) => format!("{k}={REDACTED}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Whether the query parameter `key` carries a secret.
pub(crate) fn is_secret_param(key: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(key))
}

/// `scheme://user:pass@host/...` → `scheme://REDACTED@host/...`.
fn redact_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
        None => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_query_are_replaced_and_the_rest_is_kept() {
        let url = "s3://bkt/pre/x.tar.gz?endpoint=http://127.0.0.1:9000&access_key_id=AKIA123&secret_access_key=s3cr3t&session_token=tok&region=eu";
        let r = redact_url(url);
        assert_eq!(
            r,
            "s3://bkt/pre/x.tar.gz?endpoint=http://127.0.0.1:9000&access_key_id=REDACTED&secret_access_key=REDACTED&session_token=REDACTED&region=eu"
        );
    }

    #[test]
    fn parameter_names_match_whatever_their_case() {
        let r = redact_url(
            "https://h/o?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1&Secret_Access_Key=zz",
        );
        assert!(
            !r.contains("abc") && !r.contains("AK%2F1") && !r.contains("zz"),
            "{r}"
        );
    }

    #[test]
    fn userinfo_is_replaced() {
        assert_eq!(
            redact_url("s3://AKIA:s3cr3t@bkt/p?region=x"),
            "s3://REDACTED@bkt/p?region=x"
        );
        // an '@' after the authority is part of the path, not credentials
        assert_eq!(redact_url("s3://bkt/a@b"), "s3://bkt/a@b");
    }

    #[test]
    fn strings_without_credentials_are_unchanged() {
        for s in [
            "/backups/x.tar.gz",
            "file:///b/x.tar.gz",
            "s3://b/p?region=r&allow_http=true",
            "not a url ?&=",
            "",
        ] {
            assert_eq!(redact_url(s), s);
        }
    }
}
