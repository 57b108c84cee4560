//! Registry authentication: anonymous, Basic, and Bearer token challenges,
//! with a token cache per scope set that honors expiry.
//!
//! Credentials are resolved once per registry: explicit settings, then the
//! docker/containers credential stores (see `credstore`). Tokens and passwords
//! never reach logs, errors or `Debug` output; header values we build are
//! marked sensitive.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderValue;
use tokio::sync::{Mutex, OnceCell};

use crate::config::{Credentials, DefaultCredentials};
use crate::error::{registry_detail, Error};

/// Access requested for one request: `repository:<name>:<actions>` scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope(Vec<String>);

impl Scope {
    pub(crate) fn pull(repo: &str) -> Self {
        Self(vec![format!("repository:{repo}:pull")])
    }
    pub(crate) fn push(repo: &str) -> Self {
        Self(vec![format!("repository:{repo}:pull,push")])
    }
    /// Cancelling an upload session is a `DELETE`, which distribution
    /// authorizes as the `delete` action.
    pub(crate) fn delete(repo: &str) -> Self {
        Self(vec![format!("repository:{repo}:delete")])
    }
    pub(crate) fn with_pull(mut self, repo: &str) -> Self {
        let s = format!("repository:{repo}:pull");
        if !self.0.contains(&s) {
            self.0.push(s);
        }
        self
    }
    fn key(&self) -> String {
        let mut v = self.0.clone();
        v.sort();
        v.join(" ")
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Parse `Bearer realm="...",service="..."` or `Basic realm="..."`.
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let v = value.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    out
}

struct Token {
    value: String,
    expires: Instant,
}

#[derive(Default)]
struct State {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Token>,
}

/// Auth state of one registry.
pub(crate) struct RegistryAuth {
    registry: String,
    explicit: Option<Credentials>,
    defaults: DefaultCredentials,
    creds: OnceCell<Option<Credentials>>,
    state: Mutex<State>,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("credentials", &"<redacted>")
            .finish()
    }
}

fn sensitive(s: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(s).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn basic_value(c: &Credentials) -> Option<HeaderValue> {
    let raw = format!("{}:{}", c.username, c.password);
    sensitive(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
}

impl RegistryAuth {
    pub(crate) fn new(
        registry: &str,
        explicit: Option<Credentials>,
        defaults: DefaultCredentials,
    ) -> Self {
        Self {
            registry: registry.into(),
            explicit,
            defaults,
            creds: OnceCell::new(),
            state: Mutex::new(State::default()),
        }
    }

    async fn credentials(&self) -> Result<Option<&Credentials>, Error> {
        let c = self
            .creds
            .get_or_try_init(|| async {
                if let Some(c) = &self.explicit {
                    return Ok(Some(c.clone()));
                }
                match self.defaults {
                    DefaultCredentials::None => Ok(None),
                    DefaultCredentials::DockerConfig => {
                        crate::credstore::lookup(&self.registry).await
                    }
                }
            })
            .await?;
        Ok(c.as_ref())
    }

    /// The `Authorization` value to send for `scope`, if we know one.
    pub(crate) async fn header(&self, scope: &Scope) -> Result<Option<HeaderValue>, Error> {
        let challenge = self.state.lock().await.challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials().await?.and_then(basic_value)),
            Some(Challenge::Bearer { .. }) => {
                let st = self.state.lock().await;
                Ok(st
                    .tokens
                    .get(&scope.key())
                    .filter(|t| t.expires > Instant::now())
                    .and_then(|t| sensitive(&format!("Bearer {}", t.value))))
            }
        }
    }

    /// Answer a 401: remember the challenge and, for Bearer, fetch a fresh
    /// token for `scope` from the realm.
    pub(crate) async fn on_challenge(
        &self,
        http: &reqwest::Client,
        www_authenticate: Option<&str>,
        scope: &Scope,
        method: &str,
        url: &str,
        allow_http_realm: bool,
    ) -> Result<(), Error> {
        let challenge =
            www_authenticate
                .and_then(parse_challenge)
                .ok_or_else(|| Error::Unauthorized {
                    method: method.into(),
                    url: url.into(),
                    status: 401,
                    detail: String::new(),
                    hint: "the registry sent no usable WWW-Authenticate challenge".into(),
                })?;
        if let Challenge::Bearer { realm, service } = &challenge {
            let token = self
                .fetch_token(http, realm, service.as_deref(), scope, allow_http_realm)
                .await?;
            self.state.lock().await.tokens.insert(scope.key(), token);
        } else if self.credentials().await?.is_none() {
            return Err(self.no_credentials(method, url));
        }
        self.state.lock().await.challenge = Some(challenge);
        Ok(())
    }

    pub(crate) async fn has_credentials(&self) -> bool {
        matches!(self.credentials().await, Ok(Some(_)))
    }

    pub(crate) fn no_credentials(&self, method: &str, url: &str) -> Error {
        Error::Unauthorized {
            method: method.into(),
            url: url.into(),
            status: 401,
            detail: String::new(),
            hint: format!(
                "no credentials for {}: give them with `credentials`, or `docker login {}`",
                self.registry, self.registry
            ),
        }
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
        allow_http_realm: bool,
    ) -> Result<Token, Error> {
        let mut url = url::Url::parse(realm).map_err(|e| Error::Protocol {
            url: realm.into(),
            reason: format!("token realm is not a URL: {e}"),
        })?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if allow_http_realm || loopback => {}
            _ => {
                return Err(Error::CrossHost {
                    registry: self.registry.clone(),
                    host: format!("{realm} (plain-http token realm)"),
                })
            }
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in &scope.0 {
                q.append_pair("scope", s);
            }
        }
        let shown = url.to_string();
        let mut req = http.get(url);
        if let Some(c) = self.credentials().await? {
            if let Some(v) = basic_value(c) {
                req = req.header(reqwest::header::AUTHORIZATION, v);
            }
        }
        tracing::debug!(realm = %shown, "requesting registry token");
        let resp = req.send().await.map_err(|source| Error::Transport {
            method: "GET".into(),
            url: shown.clone(),
            hint: "the token service is unreachable",
            source,
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|source| Error::Transport {
            method: "GET".into(),
            url: shown.clone(),
            hint: "the token service closed the connection",
            source,
        })?;
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized {
                method: "GET".into(),
                url: shown,
                status: status.as_u16(),
                detail: registry_detail(&body),
                hint: format!(
                    "the token service refused the credentials for {}; check username and password",
                    self.registry
                ),
            });
        }
        if !status.is_success() {
            return Err(Error::Status {
                method: "GET".into(),
                url: shown,
                status: status.as_u16(),
                detail: registry_detail(&body),
                retry_after: None,
            });
        }
        #[derive(serde::Deserialize)]
        struct Resp {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let r: Resp = serde_json::from_slice(&body).map_err(|_| Error::Protocol {
            url: shown.clone(),
            reason: "token response is not JSON".into(),
        })?;
        let value = r
            .token
            .or(r.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Protocol {
                url: shown,
                reason: "token response has no token".into(),
            })?;
        // Renew a little early: 90% of the lifetime, at least 60 s by default.
        let life = Duration::from_secs(r.expires_in.unwrap_or(60).max(1));
        Ok(Token {
            value,
            expires: Instant::now() + life.mul_f64(0.9),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.io/token",service="registry.io",scope="repository:a:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.io/token".into(),
                service: Some("registry.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn scope_keys_are_order_independent() {
        let a = Scope::push("a").with_pull("b");
        let b = Scope(vec![
            "repository:b:pull".into(),
            "repository:a:pull,push".into(),
        ]);
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn header_values_are_sensitive_in_debug() {
        let v = basic_value(&Credentials::new("u", "topsecret")).unwrap();
        assert!(v.is_sensitive());
        assert!(!format!("{v:?}").contains("dTp0b3BzZWNyZXQ"));
        let a = RegistryAuth::new(
            "r",
            Some(Credentials::new("u", "topsecret")),
            DefaultCredentials::None,
        );
        assert!(!format!("{a:?}").contains("topsecret"));
    }
}
