//! URLs as canary-pilot prints, logs, stores and sends them: without the password of their
//! user information (`http://user:***@host/`), so that a credential in a metrics or hook URL
//! never reaches a log line, the state file, the API or a notification.

use url::Url;

/// `url` with its password, if any, replaced by `***`.
pub fn redacted(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Only URLs that cannot carry user information refuse a password; this one has one.
    let _ = shown.set_password(Some("***"));
    shown.to_string()
}

/// A `reqwest` error's text without the URL it names, which may hold a credential.
pub fn error_text(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        let url: Url = "http://user:s3cret@traefik:8082/metrics".parse().unwrap();
        let shown = redacted(&url);
        assert_eq!(shown, "http://user:***@traefik:8082/metrics");
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        let url: Url = "http://traefik:8082/metrics".parse().unwrap();
        assert_eq!(redacted(&url), "http://traefik:8082/metrics");
    }

    #[tokio::test]
    async fn a_request_error_does_not_name_the_url() {
        let e = reqwest::get("http://user:s3cret@127.0.0.1:1/metrics")
            .await
            .unwrap_err();
        let text = error_text(e);
        assert!(!text.contains("s3cret"), "{text}");
    }
}
