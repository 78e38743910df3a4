//! Request authentication: AWS SigV4 over the exact bytes sent (the compressed body when it
//! is compressed), HTTP basic auth, or none. Secrets never reach a log line.

use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::config::AuthConfig;

/// Why a request could not be authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The credentials provider failed (no credentials in the environment, expired SSO, ...).
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    /// aws-sigv4 refused to sign (a URL it cannot parse, say).
    #[error("cannot sign the request: {0}")]
    Signing(String),
    /// A header value the signer produced is not a valid HTTP header.
    #[error("invalid signed header {0}")]
    Header(String),
}

/// How requests are authenticated; built once at cold start.
#[derive(Clone)]
pub enum Auth {
    /// AWS SigV4.
    SigV4 {
        /// Where credentials come from: the environment in Lambda, aws-config's chain in the CLI.
        credentials: SharedCredentialsProvider,
        /// The signing region.
        region: String,
        /// `es` or `aoss`.
        service: String,
    },
    /// `Authorization: Basic ...`, precomputed and marked sensitive.
    Basic(HeaderValue),
    /// Nothing.
    None,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SigV4 { region, service, .. } => write!(f, "SigV4({service}, {region})"),
            Self::Basic(_) => f.write_str("Basic(***)"),
            Self::None => f.write_str("None"),
        }
    }
}

impl Auth {
    /// The authentication for `config`, with `credentials` used for SigV4.
    pub fn new(config: &AuthConfig, credentials: Option<SharedCredentialsProvider>) -> Result<Self, AuthError> {
        Ok(match config {
            AuthConfig::SigV4 { region, service } => Self::SigV4 {
                credentials: credentials.ok_or_else(|| AuthError::Credentials("no credentials provider".into()))?,
                region: region.clone(),
                service: service.clone(),
            },
            AuthConfig::Basic { user, password } => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()));
                let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                    .map_err(|_| AuthError::Header("authorization".into()))?;
                // Sensitive values are redacted from hyper's and reqwest's debug output.
                value.set_sensitive(true);
                Self::Basic(value)
            }
            AuthConfig::None => Self::None,
        })
    }

    /// Adds the authentication headers for a request of `method` to `url` whose other signed
    /// headers are `headers` and whose body is exactly `body`.
    pub async fn apply(&self, method: &str, url: &str, headers: &mut HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        match self {
            Self::None => Ok(()),
            Self::Basic(value) => {
                headers.insert(AUTHORIZATION, value.clone());
                Ok(())
            }
            Self::SigV4 {
                credentials,
                region,
                service,
            } => {
                let creds = credentials
                    .provide_credentials()
                    .await
                    .map_err(|e| AuthError::Credentials(e.to_string()))?;
                let identity = creds.into();
                let mut settings = SigningSettings::default();
                // OpenSearch Serverless requires the payload hash as a header; the managed
                // service accepts it, so it is always sent.
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
                let params = v4::SigningParams::builder()
                    .identity(&identity)
                    .region(region)
                    .name(service)
                    .time(SystemTime::now())
                    .settings(settings)
                    .build()
                    .map_err(|e| AuthError::Signing(e.to_string()))?
                    .into();
                let pairs: Vec<(&str, &str)> = headers
                    .iter()
                    .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
                    .collect();
                let signable = SignableRequest::new(method, url, pairs.into_iter(), SignableBody::Bytes(body))
                    .map_err(|e| AuthError::Signing(e.to_string()))?;
                let (instructions, _) = sign(signable, &params)
                    .map_err(|e| AuthError::Signing(e.to_string()))?
                    .into_parts();
                let (signed, _) = instructions.into_parts();
                for header in signed {
                    let name = HeaderName::from_static(header.name());
                    let mut value =
                        HeaderValue::from_str(header.value()).map_err(|_| AuthError::Header(header.name().into()))?;
                    value.set_sensitive(header.sensitive() || name == AUTHORIZATION);
                    headers.insert(name, value);
                }
                Ok(())
            }
        }
    }
}

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`,
/// where Lambda puts the function role's credentials. Reading three variables at cold start
/// costs nothing; aws-config's full chain (profiles, SSO, IMDS) is for the CLI on a laptop.
pub fn credentials_from_env() -> Option<SharedCredentialsProvider> {
    let key = std::env::var("AWS_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty())?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty())?;
    let token = std::env::var("AWS_SESSION_TOKEN").ok().filter(|v| !v.is_empty());
    Some(SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
        key,
        secret,
        token,
        None,
        "environment",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[tokio::test]
    async fn basic_auth_header_is_sensitive() {
        let auth = Auth::new(
            &AuthConfig::Basic {
                user: "u".into(),
                password: Secret::new("p@ss"),
            },
            None,
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        auth.apply("POST", "https://h/_bulk", &mut headers, b"").await.unwrap();
        let value = &headers[AUTHORIZATION];
        assert_eq!(value.to_str().unwrap(), "Basic dTpwQHNz");
        assert!(value.is_sensitive());
        assert!(!format!("{auth:?} {headers:?}").contains("dTpwQHNz"));
    }

    #[tokio::test]
    async fn sigv4_signs_the_body_it_is_given() {
        let creds = SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token".into()),
            None,
            "test",
        ));
        let auth = Auth::new(
            &AuthConfig::SigV4 {
                region: "eu-west-1".into(),
                service: "es".into(),
            },
            Some(creds),
        )
        .unwrap();
        let mut a = HeaderMap::new();
        a.insert("content-type", HeaderValue::from_static("application/x-ndjson"));
        let mut b = a.clone();
        auth.apply("POST", "https://h.example/_bulk", &mut a, b"one")
            .await
            .unwrap();
        auth.apply("POST", "https://h.example/_bulk", &mut b, b"two")
            .await
            .unwrap();
        let authz = a[AUTHORIZATION].to_str().unwrap();
        assert!(authz.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{authz}");
        assert!(authz.contains("/eu-west-1/es/aws4_request"));
        assert!(authz.contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"));
        assert_eq!(
            a["x-amz-content-sha256"], "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed",
            "sha256 of the body"
        );
        assert_eq!(a["x-amz-security-token"], "session-token");
        assert!(a[AUTHORIZATION].is_sensitive() && a["x-amz-security-token"].is_sensitive());
        assert_ne!(a[AUTHORIZATION], b[AUTHORIZATION]);
    }

    #[tokio::test]
    async fn sigv4_without_credentials_is_a_clear_error() {
        let err = Auth::new(
            &AuthConfig::SigV4 {
                region: "r".into(),
                service: "es".into(),
            },
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("credentials"));
    }
}
