//! The distribution-spec HTTP client for one repository: endpoint and scheme choice,
//! authentication (anonymous, Basic, Bearer tokens with scopes, OAuth2 refresh tokens),
//! retries with backoff, and resumable blob reads.
//!
//! Written on `reqwest` rather than taken from `oci-client`: kiln needs to stream a
//! blob's bytes straight into its store and snapshot while hashing them, to resume
//! interrupted downloads (`Range`) and uploads (upload status), and to retry 429/5xx
//! with `Retry-After`; `oci-client` does none of these and buffers whole layers.

use crate::auth::{AuthFiles, Credentials};
use crate::config::{is_loopback, Settings};
use crate::error::{RegistryError, Result};
use crate::limits::{human, MAX_ERROR_BODY, MAX_MANIFEST, MAX_TOKEN};
use kiln_oci::{media, Digest, Reference};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::error::Error as _;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

/// Attempts per request (the first try included) on 429, 5xx and dropped connections.
const ATTEMPTS: u32 = 6;
/// What `GET manifests` accepts, most preferred first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How to reach registries: TLS verification, credentials, settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// `Some(false)`: `--tls-verify=false` (unverified TLS, then plain HTTP).
    pub tls_verify: Option<bool>,
    /// Where stored credentials are looked up when none are given.
    pub auth: AuthFiles,
    /// Insecure registries and mirrors from the kiln config and environment.
    pub settings: Settings,
    /// Credentials given on the command line; they win over stored ones.
    pub credentials: Option<Credentials>,
}

impl Options {
    /// Settings from the config file and environment, stored credentials.
    pub fn load(tls_verify: Option<bool>, authfile: Option<std::path::PathBuf>) -> Result<Self> {
        Ok(Self {
            tls_verify,
            auth: AuthFiles { explicit: authfile },
            settings: Settings::load()?,
            credentials: None,
        })
    }
}

/// One endpoint: a base URL, the path prefix of a mirror, and whether plain HTTP may
/// be tried when TLS fails.
#[derive(Clone, Debug)]
struct Endpoint {
    base: Url,
    prefix: String,
    http_fallback: bool,
}

/// How the registry asked to be authenticated.
#[derive(Clone, Debug)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by scope string.
    tokens: HashMap<String, String>,
}

/// A request to send, rebuilt for every attempt.
pub(crate) struct Req<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(header::HeaderName, String)>,
    pub body: Body<'a>,
    /// Whether a failed attempt may simply be repeated.
    pub idempotent: bool,
}

/// The body of a request.
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Opens the body anew for each attempt: a reader and its length.
    Stream(&'a (dyn Fn() -> io::Result<(Box<dyn Read + Send>, u64)> + Sync)),
}

/// A client for one repository of one registry.
pub struct Repo {
    registry: String,
    repository: String,
    endpoint: Mutex<Endpoint>,
    http: Http,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
    /// `pull` or `pull,push`.
    actions: &'static str,
    /// Other repositories this session reads from (cross-repository mounts).
    extra_pull: Mutex<Vec<String>>,
}

/// The host Docker Hub's API lives on.
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn parse_mirror(m: &str, insecure: bool) -> Option<Endpoint> {
    let (scheme, rest) = match m.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("https", m),
    };
    let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let base = Url::parse(&format!("{scheme}://{host}/")).ok()?;
    Some(Endpoint {
        base,
        prefix: prefix.trim_matches('/').to_string(),
        http_fallback: insecure && scheme == "https",
    })
}

impl Repo {
    /// A client for `reference`'s repository; `push` asks for push rights.
    pub fn new(opts: &Options, reference: &Reference, push: bool) -> Result<Self> {
        Self::with_endpoint(opts, reference, push, None)
    }

    /// Clients for pulling `reference`: its mirrors first, then the registry itself.
    pub fn for_pull(opts: &Options, reference: &Reference) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        if let Some(mirrors) = opts.settings.mirrors.get(reference.registry()) {
            for m in mirrors {
                let host = m
                    .split("://")
                    .last()
                    .unwrap_or(m)
                    .split('/')
                    .next()
                    .unwrap_or(m);
                let insecure = opts.tls_verify == Some(false) || opts.settings.is_insecure(host);
                if let Some(ep) = parse_mirror(m, insecure) {
                    out.push(Self::with_endpoint(opts, reference, false, Some(ep))?);
                }
            }
        }
        out.push(Self::new(opts, reference, false)?);
        Ok(out)
    }

    fn with_endpoint(
        opts: &Options,
        reference: &Reference,
        push: bool,
        endpoint: Option<Endpoint>,
    ) -> Result<Self> {
        let registry = reference.registry().to_string();
        // RFC 6761: `.invalid` names never resolve, and resolvers should say so without
        // asking the network.
        let host = registry
            .split(':')
            .next()
            .unwrap_or(&registry)
            .to_ascii_lowercase();
        if host == "invalid" || host.ends_with(".invalid") {
            return Err(RegistryError::Unreachable {
                registry: registry.clone(),
                reason: format!("unknown host: {host} does not resolve (an .invalid name)"),
            });
        }
        let insecure = opts.tls_verify == Some(false) || opts.settings.is_insecure(&registry);
        let endpoint =
            match endpoint {
                Some(e) => e,
                None => {
                    // Loopback registries speak plain HTTP (Docker's default for them);
                    // other insecure ones get unverified TLS first, then HTTP.
                    let plain = insecure && is_loopback(&registry);
                    let scheme = if plain { "http" } else { "https" };
                    let base = Url::parse(&format!("{scheme}://{}/", api_host(&registry)))
                        .map_err(|e| RegistryError::Protocol {
                            registry: registry.clone(),
                            reason: format!("not a valid registry address: {e}"),
                        })?;
                    Endpoint {
                        base,
                        prefix: String::new(),
                        http_fallback: insecure && !plain,
                    }
                }
            };
        let http = Http::builder()
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            // Applies to each wait on the network: a stalled transfer fails, a long one
            // does not.
            .timeout(Duration::from_secs(300))
            .danger_accept_invalid_certs(insecure)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| RegistryError::Unreachable {
                registry: registry.clone(),
                reason: e.to_string(),
            })?;
        let credentials = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => opts.auth.lookup(&registry, reference.repository())?,
        };
        Ok(Self {
            registry,
            repository: reference.repository().to_string(),
            endpoint: Mutex::new(endpoint),
            http,
            credentials,
            auth: Mutex::new(AuthState::default()),
            actions: if push { "pull,push" } else { "pull" },
            extra_pull: Mutex::new(Vec::new()),
        })
    }

    /// The registry as the user named it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Asks for read access to another repository of the same registry as well (the
    /// source of a cross-repository mount).
    pub fn add_pull_scope(&self, repository: &str) {
        let mut v = self.extra_pull.lock().expect("scope lock");
        if !v.iter().any(|r| r == repository) && repository != self.repository {
            v.push(repository.to_string());
        }
    }

    /// `/v2/<prefix>/<repository>/<rest>` on the current endpoint.
    pub(crate) fn url(&self, rest: &str) -> Url {
        let ep = self.endpoint.lock().expect("endpoint lock").clone();
        let repo = if ep.prefix.is_empty() {
            self.repository.clone()
        } else {
            format!("{}/{}", ep.prefix, self.repository)
        };
        ep.base
            .join(&format!("v2/{repo}/{rest}"))
            .expect("repository paths are valid URL paths")
    }

    /// Resolves a `Location` header against the endpoint.
    pub(crate) fn location(&self, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.protocol("the upload answer has no Location header"))?;
        resp.url()
            .join(loc)
            .map_err(|e| self.protocol(format!("bad Location `{loc}`: {e}")))
    }

    pub(crate) fn protocol(&self, reason: impl Into<String>) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry.clone(),
            reason: reason.into(),
        }
    }

    fn scope(&self) -> String {
        let mut s = format!("repository:{}:{}", self.repository, self.actions);
        for r in self.extra_pull.lock().expect("scope lock").iter() {
            s.push_str(&format!(" repository:{r}:pull"));
        }
        s
    }

    /// The Authorization header for the current scope, fetching a token if needed.
    fn authorization(&self) -> Result<Option<String>> {
        let challenge = self.auth.lock().expect("auth lock").challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(match &self.credentials {
                Some(Credentials::Basic { username, password }) => {
                    use base64::Engine;
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{password}"))
                    ))
                }
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service }) => {
                let scope = self.scope();
                if let Some(t) = self.auth.lock().expect("auth lock").tokens.get(&scope) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let token = self.fetch_token(&realm, service.as_deref(), &scope)?;
                self.auth
                    .lock()
                    .expect("auth lock")
                    .tokens
                    .insert(scope, token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// The token endpoint: GET with Basic credentials (or none), or the OAuth2 POST
    /// for an identity token.
    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let mut url =
            Url::parse(realm).map_err(|e| self.protocol(format!("bad realm `{realm}`: {e}")))?;
        let scopes: Vec<&str> = scope.split(' ').collect();
        let resp = match &self.credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh),
                    ("client_id", "kiln"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let joined = scopes.join(" ");
                form.push(("scope", &joined));
                self.send_once(self.http.post(url.clone()).form(&form))
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in &scopes {
                        q.append_pair("scope", s);
                    }
                }
                let mut rb = self.http.get(url.clone());
                if let Some(Credentials::Basic { username, password }) = other {
                    rb = rb.basic_auth(username, Some(password));
                }
                self.send_once(rb)
            }
        }?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                detail: format!(": the token service refused the credentials ({status})"),
            });
        }
        if !status.is_success() {
            return Err(self.protocol(format!("the token service answered {status}")));
        }
        let body: serde_json::Value =
            resp.json_value(MAX_TOKEN, |e| self.protocol(format!("token answer: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| self.protocol("the token answer holds no token"))
    }

    fn send_once(&self, rb: RequestBuilder) -> Result<Response> {
        rb.send().map_err(|e| self.transport_error(&e))
    }

    fn transport_error(&self, e: &reqwest::Error) -> RegistryError {
        let reason = if is_dns_error(e) {
            let host = e.url().and_then(|u| u.host_str()).unwrap_or(&self.registry);
            format!("unknown host: {host} does not resolve")
        } else {
            // reqwest's own message quotes the whole URL, upload state tokens included:
            // name the path, then the causes.
            let what = match e.url() {
                Some(u) => format!("{} failed", u.path()),
                None => "the request failed".to_string(),
            };
            match e.source() {
                Some(src) => format!("{what}: {}", error_chain(src)),
                None => format!("{what}: {e}"),
            }
        };
        RegistryError::Unreachable {
            registry: self.registry.clone(),
            reason,
        }
    }

    fn build(&self, req: &Req<'_>) -> io::Result<RequestBuilder> {
        let mut rb = self.http.request(req.method.clone(), req.url.clone());
        for (k, v) in &req.headers {
            rb = rb.header(k, v);
        }
        rb = match req.body {
            Body::Empty => {
                if req.method == Method::PUT
                    || req.method == Method::POST
                    || req.method == Method::PATCH
                {
                    rb.header(header::CONTENT_LENGTH, "0")
                } else {
                    rb
                }
            }
            Body::Bytes(b) => rb.body(b.to_vec()),
            Body::Stream(open) => {
                let (reader, len) = open()?;
                rb.body(reqwest::blocking::Body::sized(reader, len))
            }
        };
        Ok(rb)
    }

    /// Sends a request: authenticates on a 401 challenge, retries 429, 5xx and dropped
    /// connections with backoff (honouring `Retry-After`), and falls back from
    /// unverified TLS to plain HTTP for insecure registries. Returns the response of
    /// any other status for the caller to judge.
    pub(crate) fn execute(&self, mut req: Req<'_>) -> Result<Response> {
        let mut attempt = 0;
        let mut authed_after_challenge = false;
        loop {
            attempt += 1;
            let mut rb = self
                .build(&req)
                .map_err(|e| self.protocol(format!("reading the upload: {e}")))?;
            if let Some(a) = self.authorization()? {
                rb = rb.header(header::AUTHORIZATION, a);
            }
            let resp = match rb.send() {
                Ok(r) => r,
                Err(e) => {
                    if self.try_http_fallback(&e) {
                        req.url.set_scheme("http").ok();
                        attempt -= 1;
                        continue;
                    }
                    if is_dns_error(&e) || !req.idempotent || attempt >= ATTEMPTS {
                        return Err(self.transport_error(&e));
                    }
                    std::thread::sleep(backoff(attempt, None));
                    continue;
                }
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = parse_challenge(resp.headers());
                if authed_after_challenge || challenge.is_none() {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        detail: error_detail(resp),
                    });
                }
                if matches!(challenge, Some(Challenge::Basic)) && self.credentials.is_none() {
                    return Err(RegistryError::Unauthorized {
                        registry: self.registry.clone(),
                        detail: String::new(),
                    });
                }
                let mut st = self.auth.lock().expect("auth lock");
                st.challenge = challenge;
                st.tokens.clear();
                drop(st);
                authed_after_challenge = true;
                attempt -= 1;
                continue;
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || matches!(status.as_u16(), 500 | 502 | 503 | 504);
            if retryable && attempt < ATTEMPTS && (req.idempotent || status.as_u16() == 429) {
                let wait = retry_after(resp.headers());
                std::thread::sleep(backoff(attempt, wait));
                continue;
            }
            return Ok(resp);
        }
    }

    /// For an insecure registry whose TLS attempt failed: switch to plain HTTP.
    fn try_http_fallback(&self, e: &reqwest::Error) -> bool {
        let mut ep = self.endpoint.lock().expect("endpoint lock");
        if ep.http_fallback && ep.base.scheme() == "https" && e.is_connect() {
            ep.base.set_scheme("http").ok();
            ep.http_fallback = false;
            return true;
        }
        false
    }

    /// Turns a non-success response into the error users should read.
    pub(crate) fn status_error(
        &self,
        what: &str,
        method: &Method,
        resp: Response,
    ) -> RegistryError {
        let status = resp.status();
        let path = resp.url().path().to_string();
        match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                what: what.to_string(),
            },
            StatusCode::UNAUTHORIZED => RegistryError::Unauthorized {
                registry: self.registry.clone(),
                detail: error_detail(resp),
            },
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: self.registry.clone(),
                repository: self.repository.clone(),
            },
            _ => RegistryError::Http {
                registry: self.registry.clone(),
                method: method.to_string(),
                path,
                status: status.as_u16(),
                message: error_detail(resp),
            },
        }
    }

    /// `GET /v2/` (with authentication): checks that the registry answers and that the
    /// credentials are accepted. Used by `kiln login`.
    pub fn ping(&self) -> Result<()> {
        let url = {
            let ep = self.endpoint.lock().expect("endpoint lock");
            ep.base.join("v2/").expect("static path")
        };
        let resp = self.execute(Req {
            method: Method::GET,
            url,
            headers: vec![],
            body: Body::Empty,
            idempotent: true,
        })?;
        if resp.status().is_success() {
            // A registry that never challenged has not checked the credentials: ask for
            // a token of this repository's scope to make it do so.
            if self.credentials.is_some() {
                self.authorization()?;
            }
            Ok(())
        } else {
            Err(self.status_error(&format!("registry {}", self.registry), &Method::GET, resp))
        }
    }

    /// Fetches a manifest or index by tag or digest. Returns its bytes, media type and
    /// digest, checked against the digest asked for and `Docker-Content-Digest`.
    pub fn get_manifest(&self, reference: &str) -> Result<(Vec<u8>, String, Digest)> {
        let what = format!("{}/{}:{}", self.registry, self.repository, reference)
            .replace(":sha256:", "@sha256:");
        let resp = self.execute(Req {
            method: Method::GET,
            url: self.url(&format!("manifests/{reference}")),
            headers: vec![(header::ACCEPT, MANIFEST_ACCEPT.into())],
            body: Body::Empty,
            idempotent: true,
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(&format!("manifest {what}"), &Method::GET, resp));
        }
        let header_digest = content_digest(resp.headers());
        let mut media_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
            .unwrap_or_default();
        let too_large = || {
            self.protocol(format!(
                "manifest {what} is larger than {}, the most kiln accepts: refused",
                human(MAX_MANIFEST)
            ))
        };
        if resp.content_length().is_some_and(|n| n > MAX_MANIFEST) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        resp.take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.protocol(format!("reading manifest {what}: {e}")))?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(too_large());
        }
        let digest = Digest::of_bytes(&bytes);
        for expected in [Digest::parse(reference).ok(), header_digest]
            .into_iter()
            .flatten()
        {
            if expected != digest {
                return Err(RegistryError::DigestMismatch {
                    registry: self.registry.clone(),
                    digest: expected.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        // Some registries send a generic type: the document's own mediaType decides.
        if media::kind(&media_type).is_none() {
            let doc: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| self.protocol(format!("manifest {what} is not JSON: {e}")))?;
            media_type = match doc.get("mediaType").and_then(|m| m.as_str()) {
                Some(m) => m.to_string(),
                None if doc.get("manifests").is_some() => media::OCI_INDEX.into(),
                None => media::OCI_MANIFEST.into(),
            };
        }
        if doc_schema_v1(&media_type) {
            return Err(self.protocol(format!(
                "manifest {what} is Docker schema 1, which is deprecated and not supported"
            )));
        }
        Ok((bytes, media_type, digest))
    }

    /// `HEAD` of a blob: its size when the registry has it.
    pub fn blob_exists(&self, digest: &Digest) -> Result<Option<u64>> {
        let resp = self.execute(Req {
            method: Method::HEAD,
            url: self.url(&format!("blobs/{digest}")),
            headers: vec![],
            body: Body::Empty,
            idempotent: true,
        })?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_error(&format!("blob {digest}"), &Method::HEAD, resp)),
        }
    }

    /// A reader of a blob's bytes that resumes where it broke off when the connection
    /// drops. It yields at most `size` bytes (the size the descriptor declares): a
    /// registry that sends more gets an error (see [`BlobReader::oversized`]), one that
    /// sends less gets an error once the resumes are spent. The caller verifies the
    /// digest: the reader does not.
    pub fn get_blob(&self, digest: &Digest, size: u64) -> Result<BlobReader<'_>> {
        let resp = self.open_blob(digest, 0)?;
        Ok(BlobReader {
            repo: self,
            digest: digest.clone(),
            size,
            offset: 0,
            resp: Some(resp),
            resumes: 0,
            oversized: false,
        })
    }

    fn open_blob(&self, digest: &Digest, offset: u64) -> Result<Response> {
        let mut headers = vec![];
        if offset > 0 {
            headers.push((header::RANGE, format!("bytes={offset}-")));
        }
        let resp = self.execute(Req {
            method: Method::GET,
            url: self.url(&format!("blobs/{digest}")),
            headers,
            body: Body::Empty,
            idempotent: true,
        })?;
        if !resp.status().is_success() {
            return Err(self.status_error(
                &format!("blob {digest} in {}/{}", self.registry, self.repository),
                &Method::GET,
                resp,
            ));
        }
        if offset > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(self.protocol(format!(
                "blob {digest}: the connection dropped and the registry cannot resume (no Range support)"
            )));
        }
        Ok(resp)
    }
}

impl Repo {
    /// The referrers of `digest` (artifacts such as SBOMs and signatures whose `subject`
    /// it is): the referrers API of distribution spec 1.1, or, on registries without
    /// it, the fallback tag `sha256-<hex>` that spec defines. An empty index when none.
    pub fn referrers(
        &self,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<kiln_oci::types::Index> {
        let mut url = self.url(&format!("referrers/{digest}"));
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let resp = self.execute(Req {
            method: Method::GET,
            url,
            headers: vec![(header::ACCEPT, media::OCI_INDEX.into())],
            body: Body::Empty,
            idempotent: true,
        })?;
        let mut index: kiln_oci::types::Index = if resp.status().is_success()
            && resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with(media::OCI_INDEX))
        {
            let v = resp.json_value(MAX_MANIFEST, |e| {
                self.protocol(format!("referrers of {digest}: {e}"))
            })?;
            serde_json::from_value(v)
                .map_err(|e| self.protocol(format!("referrers of {digest}: {e}")))?
        } else if resp.status() == StatusCode::NOT_FOUND || resp.status().is_success() {
            match self.get_manifest(&referrers_tag(digest)) {
                Ok((bytes, _, _)) => serde_json::from_slice(&bytes)
                    .map_err(|e| self.protocol(format!("referrers tag of {digest}: {e}")))?,
                Err(RegistryError::NotFound { .. }) => kiln_oci::types::Index::default(),
                Err(e) => return Err(e),
            }
        } else {
            return Err(self.status_error(&format!("referrers of {digest}"), &Method::GET, resp));
        };
        if let Some(t) = artifact_type {
            index
                .manifests
                .retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(index)
    }
}

/// The tag the referrers fallback uses for `digest`: `sha256-<hex>`.
pub fn referrers_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm(), digest.hex())
}

fn doc_schema_v1(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.docker.distribution.manifest.v1")
}

/// Reads a blob, reopening the download at the current offset when it breaks, and
/// never past the size its descriptor declares.
pub struct BlobReader<'a> {
    repo: &'a Repo,
    digest: Digest,
    size: u64,
    offset: u64,
    resp: Option<Response>,
    resumes: u32,
    oversized: bool,
}

impl BlobReader<'_> {
    /// Whether the registry sent more bytes than the declared size (the read that saw
    /// the extra byte failed, and the connection was closed).
    pub fn oversized(&self) -> bool {
        self.oversized
    }

    /// Bytes read so far (never more than the declared size).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The error for a registry that sent more than declared.
    pub fn oversized_error(&self) -> RegistryError {
        self.repo.protocol(format!(
            "blob {} is larger than the {} bytes its descriptor declares: the registry sent more, and the download was stopped there",
            self.digest, self.size
        ))
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.oversized {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                self.oversized_error().to_string(),
            ));
        }
        // One byte past the declared size is asked for, to see whether there is more.
        let allowed = (self.size.saturating_sub(self.offset) + 1).min(buf.len() as u64) as usize;
        let buf = &mut buf[..allowed];
        loop {
            let resp = match self.resp.as_mut() {
                Some(r) => r,
                None => {
                    let r = self
                        .repo
                        .open_blob(&self.digest, self.offset)
                        .map_err(io::Error::other)?;
                    self.resp.insert(r)
                }
            };
            match resp.read(buf) {
                Ok(0) if self.offset < self.size => {
                    // The server closed early without an error: resume.
                }
                Ok(n) if self.offset + n as u64 > self.size => {
                    // More than declared: stop here, whatever else the server has.
                    self.oversized = true;
                    self.resp = None;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        self.oversized_error().to_string(),
                    ));
                }
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if self.resumes + 1 >= ATTEMPTS => return Err(e),
                Err(_) => {}
            }
            self.resumes += 1;
            if self.resumes >= ATTEMPTS {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "blob {}: the download broke off at byte {} of {}",
                        self.digest, self.offset, self.size
                    ),
                ));
            }
            self.resp = None;
            std::thread::sleep(backoff(self.resumes, None));
        }
    }
}

/// Parses `WWW-Authenticate`.
fn parse_challenge(headers: &HeaderMap) -> Option<Challenge> {
    for v in headers.get_all(header::WWW_AUTHENTICATE) {
        let Ok(v) = v.to_str() else { continue };
        let (scheme, params) = v.trim().split_once(' ').unwrap_or((v.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let p = parse_params(params);
            let realm = p.get("realm")?.clone();
            return Some(Challenge::Bearer {
                realm,
                service: p.get("service").cloned(),
            });
        }
    }
    None
}

/// `key="value", key2=value2` (RFC 7235 auth-params), quotes and escapes handled.
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
                            val.push(n);
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

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(60)))
}

/// Exponential backoff from 250 ms, capped at 8 s, or what the server asked for.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after.unwrap_or_else(|| Duration::from_millis((250u64 << attempt.min(5)).min(8000) / 2))
}

/// `Docker-Content-Digest`, when present and well-formed.
pub(crate) fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|s| Digest::parse(s.trim()).ok())
}

/// The registry's own explanation (the distribution spec's error body), if any.
fn error_detail(resp: Response) -> String {
    let mut body = String::new();
    let _ = resp.take(MAX_ERROR_BODY).read_to_string(&mut body);
    let doc: serde_json::Value = match serde_json::from_str(&body) {
        Ok(d) => d,
        Err(_) => return String::new(),
    };
    let msgs: Vec<String> = doc
        .get("errors")
        .and_then(|e| e.as_array())
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                    let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                    format!("{code}: {msg}")
                })
                .collect()
        })
        .unwrap_or_default();
    if msgs.is_empty() {
        String::new()
    } else {
        format!(" ({})", msgs.join("; "))
    }
}

fn is_dns_error(e: &reqwest::Error) -> bool {
    let chain = error_chain(e);
    chain.contains("dns error") || chain.contains("failed to lookup address")
}

/// The error and its sources in one line: reqwest's own message says little.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![];
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p: &String| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

trait JsonValue {
    /// The body as JSON; a body over `cap` bytes is refused unread. `fail` makes the
    /// error from what is wrong with the body (the caller names the request).
    fn json_value(
        self,
        cap: u64,
        fail: impl Fn(String) -> RegistryError,
    ) -> Result<serde_json::Value>;
}

impl JsonValue for Response {
    fn json_value(
        self,
        cap: u64,
        fail: impl Fn(String) -> RegistryError,
    ) -> Result<serde_json::Value> {
        if self.content_length().is_some_and(|n| n > cap) {
            return Err(fail(format!(
                "larger than {}, the most kiln accepts",
                human(cap)
            )));
        }
        let mut body = Vec::new();
        self.take(cap + 1)
            .read_to_end(&mut body)
            .map_err(|e| fail(e.to_string()))?;
        if body.len() as u64 > cap {
            return Err(fail(format!(
                "larger than {}, the most kiln accepts",
                human(cap)
            )));
        }
        serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))
    }
}

/// The reference's tag or digest as the manifest endpoint takes it (`latest` if none).
pub fn manifest_ref(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let mut h = HeaderMap::new();
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
            ),
        );
        match parse_challenge(&h) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="Registry Realm""#),
        );
        assert!(matches!(parse_challenge(&h), Some(Challenge::Basic)));
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        assert!(backoff(1, None) < backoff(3, None));
        assert!(backoff(10, None) <= Duration::from_secs(8));
        assert_eq!(
            backoff(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }
}
