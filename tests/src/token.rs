//! A small bearer-token issuer for distribution's `auth: token` mode.
//!
//! It runs axum on its own thread with its own tokio runtime on 127.0.0.1,
//! checks basic credentials on `GET /token` (or an OAuth2 password grant on
//! `POST /token`), and answers with an ES256 JWT
//! (JWS compact form, signed by hand with `p256`) granting the requested
//! scopes. The signing certificate travels in the JWT `x5c` header and is
//! issued by a CA that the registry trusts through `rootcertbundle`.
//!
//! It never binds anything but loopback and stops when dropped.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde_json::json;

use crate::pki::Leaf;

/// Clock-skew leeway distribution 2.8 adds to `exp` (and subtracts from `nbf`).
pub const DISTRIBUTION_LEEWAY_SECS: u64 = 60;

/// What the issuer needs to know to mint tokens.
pub struct TokenConfig {
    pub user: String,
    pub password: String,
    /// `aud` claim; the registry's `auth.token.service`.
    pub service: String,
    /// `iss` claim; the registry's `auth.token.issuer`.
    pub issuer: String,
    /// Seconds until the registry refuses the token (also `expires_in`).
    pub ttl_secs: u64,
    /// Signing certificate (issued by the CA in the registry's rootcertbundle).
    pub signer: Leaf,
}

/// One request the issuer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The basic-auth user, if any credentials were sent.
    pub user: Option<String>,
    /// Every `scope` query value, in order.
    pub scopes: Vec<String>,
    pub status: u16,
}

struct Issuer {
    cfg: TokenConfig,
    key: SigningKey,
    log: Arc<Mutex<Vec<TokenRequest>>>,
}

/// A running token issuer. Stops on drop.
pub struct TokenServer {
    port: u16,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    /// Bind 127.0.0.1 on a free port and start serving.
    pub fn start(cfg: TokenConfig) -> Result<TokenServer> {
        let key = SigningKey::from_pkcs8_der(&cfg.signer.key.serialize_der())
            .context("loading the token signing key")?;
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the token issuer")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let issuer = Arc::new(Issuer {
            cfg,
            key,
            log: log.clone(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let thread = std::thread::Builder::new()
            .name(format!("token-issuer-{port}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let app = Router::new()
                        .route("/token", get(token_get).post(token_post))
                        .with_state(issuer);
                    let _ = ready_tx.send(Ok(()));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.await;
                        })
                        .await;
                });
            })?;
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("token issuer thread did not start")??;
        Ok(TokenServer {
            port,
            log,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The realm URL to put in the registry config.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// Every token request answered so far, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every `scope` value, split on spaces (OAuth2 joins scopes with spaces).
fn scopes_of(params: &[(String, String)]) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned))
        .filter(|s| !s.is_empty())
        .collect()
}

fn param(params: &[(String, String)], key: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

/// Docker token protocol: `GET /token?service=..&scope=..[&scope=..]&account=..`
/// with basic credentials (none: an anonymous token granting nothing).
async fn token_get(
    State(issuer): State<Arc<Issuer>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let creds = basic_credentials(&headers);
    answer(&issuer, creds, scopes_of(&query), param(&query, "account"))
}

/// OAuth2 password grant: `POST /token` with a form of `grant_type=password`,
/// `username`, `password`, `scope` (space-separated) and `service`.
async fn token_post(
    State(issuer): State<Arc<Issuer>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if param(&form, "grant_type").as_deref() != Some("password") {
        let status = StatusCode::BAD_REQUEST;
        issuer.log.lock().unwrap().push(TokenRequest {
            user: param(&form, "username"),
            scopes: scopes_of(&form),
            status: status.as_u16(),
        });
        return (
            status,
            axum::Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let creds = param(&form, "username").zip(param(&form, "password"));
    answer(&issuer, creds, scopes_of(&form), None)
}

fn answer(
    issuer: &Issuer,
    creds: Option<(String, String)>,
    scopes: Vec<String>,
    account: Option<String>,
) -> Response {
    let (status, response) = match &creds {
        Some((user, password)) if *user == issuer.cfg.user && *password == issuer.cfg.password => {
            if account.as_deref().is_some_and(|a| a != user) {
                (
                    StatusCode::UNAUTHORIZED,
                    json!({"errors": [{"code": "UNAUTHORIZED", "message": "account does not match credentials"}]}),
                )
            } else {
                match issuer.mint(user, &scopes) {
                    Ok(body) => (StatusCode::OK, body),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"errors": [{"code": "UNKNOWN", "message": e.to_string()}]}),
                    ),
                }
            }
        }
        Some(_) => (
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]}),
        ),
        // Anonymous: a token that grants nothing, as public registries do.
        None => match issuer.mint("", &[]) {
            Ok(body) => (StatusCode::OK, body),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"errors": [{"code": "UNKNOWN", "message": e.to_string()}]}),
            ),
        },
    };
    issuer.log.lock().unwrap().push(TokenRequest {
        user: creds.map(|(u, _)| u),
        scopes,
        status: status.as_u16(),
    });
    let mut resp = (status, axum::Json(response)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"atp-token\""),
        );
    }
    resp
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// `repository:atp/router:pull,push` → access entry. The name may itself
/// contain `:` (a registry host with a port), so split on the first and last.
fn access_entry(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

impl Issuer {
    fn mint(&self, subject: &str, scopes: &[String]) -> Result<serde_json::Value> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        // distribution accepts a token until `exp + 60s`; pull `exp` in by that
        // leeway so the registry stops accepting it exactly `ttl_secs` after issue.
        let exp = (now + self.cfg.ttl_secs).saturating_sub(DISTRIBUTION_LEEWAY_SECS);
        let access: Vec<serde_json::Value> =
            scopes.iter().filter_map(|s| access_entry(s)).collect();
        let jti: [u8; 16] = rand::random();
        let claims = json!({
            "iss": self.cfg.issuer,
            "sub": subject,
            "aud": self.cfg.service,
            "exp": exp,
            "nbf": now.saturating_sub(5),
            "iat": now,
            "jti": hex::encode(jti),
            "access": access,
        });
        let header = json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(self.cfg.signer.cert.der())],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
        );
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        let issued_at = time::OffsetDateTime::from_unix_timestamp(now as i64)?
            .format(&time::format_description::well_known::Rfc3339)?;
        Ok(json!({
            "token": jwt,
            "access_token": jwt,
            "expires_in": self.cfg.ttl_secs,
            "issued_at": issued_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_with_port_in_name_splits_on_first_and_last_colon() {
        let e = access_entry("repository:127.0.0.1:5000/atp/router:pull,push").unwrap();
        assert_eq!(e["type"], "repository");
        assert_eq!(e["name"], "127.0.0.1:5000/atp/router");
        assert_eq!(e["actions"], json!(["pull", "push"]));
    }

    #[test]
    fn registry_catalog_scope() {
        let e = access_entry("registry:catalog:*").unwrap();
        assert_eq!(e["name"], "catalog");
        assert_eq!(e["actions"], json!(["*"]));
    }
}
