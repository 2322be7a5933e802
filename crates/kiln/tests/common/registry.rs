//! A real registry for the registry tests: the CNCF distribution server (Debian's
//! `docker-registry`, distribution 2.8) on a loopback port with its storage in a temp dir,
//! optionally behind htpasswd basic auth; and a small forwarding proxy in front of it that
//! injects faults (corrupt blobs, connections dropped mid-body, 429s, bodies that never
//! end, manifests that lie about their config's size).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A `docker-registry serve` child process.
pub struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    auth: Option<(String, String)>,
}

impl Registry {
    /// An anonymous registry.
    pub fn open() -> Self {
        Self::start(None)
    }

    /// A registry that requires `user`/`pass` (htpasswd basic auth) for every request.
    pub fn with_auth(user: &str, pass: &str) -> Self {
        Self::start(Some((user.to_string(), pass.to_string())))
    }

    fn start(auth: Option<(String, String)>) -> Self {
        super::need("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let root = dir.path().join("storage");
        std::fs::create_dir_all(&root).unwrap();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
             maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: kiln-test-secret\n",
            root.display()
        );
        if let Some((user, pass)) = &auth {
            let htpasswd = super::need("htpasswd", "apache2-utils");
            let out = super::run(Command::new(htpasswd).args(["-Bbn", user, pass]));
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, out.trim_end().to_string() + "\n").unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                file.display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut r = Registry {
            dir,
            port,
            child: None,
            auth,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "registry already running");
        let bin = super::need("docker-registry", "docker-registry");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "docker-registry exited ({status}) before it was ready; its log:\n{}",
                    self.log()
                );
            }
            if let Some(code) = http_status(&self.addr(), "GET", "/v2/") {
                if code == 200 || code == 401 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry did not answer on {} within 10 s; its log:\n{}",
                    self.addr(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The user and password of an authenticated registry.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The storage root (`docker/registry/v2/...` below it).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The repository's directory in the storage.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.storage()
            .join("docker/registry/v2/repositories")
            .join(repo)
    }

    /// The blobs the repository links to (complete uploads), as `sha256:HEX`.
    pub fn linked_blobs(&self, repo: &str) -> Vec<String> {
        let dir = self.repo_dir(repo).join("_layers/sha256");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().join("link").exists())
                    .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The total size of the unfinished uploads' data in the repository.
    pub fn upload_bytes(&self, repo: &str) -> u64 {
        let dir = self.repo_dir(repo).join("_uploads");
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// What the registry logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again: same port, storage and configuration.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status code of `METHOD PATH` on `addr`, or None when nothing answers.
pub fn http_status(addr: &str, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `GET path` on `addr` (with `Accept` for every manifest type): the status, the headers
/// and the body. `auth` is `(user, pass)` for basic auth.
pub fn http_get(
    addr: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: {}\r\n",
        MANIFEST_TYPES.join(", ")
    );
    if let Some((u, p)) = auth {
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{u}:{p}").as_bytes())
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let head = read_head(&mut r).unwrap().expect("a response");
    let status = head
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head.chunked() {
        read_chunked(&mut r).unwrap()
    } else if let Some(n) = head.content_length() {
        let mut b = vec![0; n];
        r.read_exact(&mut b).unwrap();
        b
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b).unwrap();
        b
    };
    (status, head.headers, body)
}

/// The manifest media types a client accepts.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// The raw manifest `repo:reference` as the registry serves it, and its sha256 digest.
pub fn raw_manifest(
    addr: &str,
    repo: &str,
    reference: &str,
    auth: Option<(&str, &str)>,
) -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let (status, _, body) = http_get(addr, &format!("/v2/{repo}/manifests/{reference}"), auth);
    assert_eq!(
        status,
        200,
        "GET manifest {repo}:{reference} on {addr}: {}",
        String::from_utf8_lossy(&body)
    );
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
    (body, digest)
}

/// What a [`FaultProxy`] does to the traffic it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwards everything unchanged.
    None,
    /// In 200 responses to GETs of `/blobs/sha256:...`, one byte in the middle of the body
    /// is flipped; lengths and `Docker-Content-Digest` stay as upstream sent them.
    CorruptBlobs,
    /// The first GET of each blob path gets the headers and half of the body, then the
    /// connection is closed; later requests pass unchanged.
    DropBlobsOnce,
    /// The first request to each path gets `429 Too Many Requests` with `Retry-After: 1`.
    TooManyRequestsOnce,
    /// 200 responses to GETs of layers (blobs that are not JSON) carry no
    /// `Content-Length`: the real body, then zeros that never end (up to 64 GiB, or until
    /// the client stops reading). Configs pass unchanged.
    EndlessLayers,
    /// The same for configs (blobs that are JSON): the real config, then spaces.
    EndlessConfigs,
    /// 200 responses to GETs of manifests carry no `Content-Length`: the real manifest,
    /// then spaces that never end (still JSON, if anyone read it all).
    EndlessManifests,
    /// Manifests are served with their config's `size` raised to 64 MiB (and without
    /// `Docker-Content-Digest`, which no longer matches); blobs pass unchanged.
    HugeConfigSize,
}

/// The config size [`Fault::HugeConfigSize`] declares.
pub const HUGE_CONFIG_SIZE: u64 = 64 << 20;

/// A forwarding HTTP/1.1 proxy on 127.0.0.1 in front of a registry: one connection per
/// request (`Connection: close` both ways), a thread per connection.
pub struct FaultProxy {
    addr: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    endless: Arc<AtomicU64>,
    accept: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    pub fn new(upstream: &str, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let endless: Arc<AtomicU64> = Arc::default();
        let upstream = upstream.to_string();
        let accept = {
            let stop = stop.clone();
            let counts = counts.clone();
            let endless = endless.clone();
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let upstream = upstream.clone();
                    let counts = counts.clone();
                    let endless = endless.clone();
                    thread::spawn(move || {
                        let _ = handle(conn, &upstream, fault, &counts, &endless);
                    });
                }
            })
        };
        FaultProxy {
            addr,
            stop,
            counts,
            endless,
            accept: Some(accept),
        }
    }

    /// The bytes written after the real bodies by [`Fault::EndlessLayers`], [`Fault::EndlessConfigs`] and
    /// [`Fault::EndlessManifests`], all connections together (what the client read, plus
    /// what the sockets' buffers held when it closed).
    pub fn endless_bytes(&self) -> u64 {
        self.endless.load(Ordering::SeqCst)
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// How many requests `METHOD` the proxy saw for paths containing `path_part`.
    pub fn count(&self, method: &str, path_part: &str) -> usize {
        self.counts
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| {
                let (m, p) = k.split_once(' ').unwrap();
                m == method && p.contains(path_part)
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Every `METHOD PATH` the proxy saw, with its count.
    pub fn requests(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .counts
            .lock()
            .unwrap()
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        v.sort();
        v
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// A parsed HTTP message head.
struct Head {
    /// The request or status line.
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> Option<usize> {
        self.get("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The head with hop-by-hop framing replaced: `Connection: close` and, when a body
    /// length is given, that `Content-Length`.
    fn serialize(&self, body_len: Option<usize>) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            let lk = k.to_ascii_lowercase();
            if lk == "connection"
                || lk == "keep-alive"
                || lk == "transfer-encoding"
                || lk == "expect"
                || (body_len.is_some() && lk == "content-length")
            {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(n) = body_len {
            out.push_str(&format!("Content-Length: {n}\r\n"));
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }

    /// The head of a body that lasts until the connection closes: no `Content-Length`.
    fn serialize_unframed(&self) -> Vec<u8> {
        let mut h = Head {
            start: self.start.clone(),
            headers: self.headers.clone(),
        };
        h.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
        h.serialize(None)
    }
}

/// Writes `head` (unframed), `body`, then `filler` bytes until the client stops reading
/// (or 64 GiB), counting the filler in `sent`.
fn send_endless(
    client_w: &mut TcpStream,
    head: &Head,
    body: &[u8],
    filler: u8,
    sent: &AtomicU64,
) -> std::io::Result<()> {
    client_w.set_write_timeout(Some(Duration::from_secs(30)))?;
    client_w.write_all(&head.serialize_unframed())?;
    client_w.write_all(body)?;
    let chunk = vec![filler; 64 << 10];
    let mut n: u64 = 0;
    while n < 64 << 30 {
        client_w.write_all(&chunk)?;
        n += chunk.len() as u64;
        sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
    }
    let _ = client_w.shutdown(Shutdown::Both);
    Ok(())
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut start = String::new();
    if r.read_line(&mut start)? == 0 {
        return Ok(None);
    }
    let start = start.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head { start, headers }))
}

fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..])?;
        let mut crlf = String::new();
        r.read_line(&mut crlf)?;
    }
}

fn handle(
    client: TcpStream,
    upstream: &str,
    fault: Fault,
    counts: &Mutex<HashMap<String, usize>>,
    endless: &AtomicU64,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut client_w = client.try_clone()?;
    let mut client_r = BufReader::new(client);
    let Some(req) = read_head(&mut client_r)? else {
        return Ok(());
    };
    let mut parts = req.start.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    if req
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        client_w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = if req.chunked() {
        read_chunked(&mut client_r)?
    } else {
        let mut b = vec![0; req.content_length().unwrap_or(0)];
        client_r.read_exact(&mut b)?;
        b
    };
    let seen = {
        let mut c = counts.lock().unwrap();
        let n = c.entry(format!("{method} {path}")).or_insert(0);
        *n += 1;
        let all: usize = c
            .iter()
            .filter(|(k, _)| k.split_once(' ').unwrap().1 == path)
            .map(|(_, n)| n)
            .sum();
        (*c.get(&format!("{method} {path}")).unwrap(), all)
    };
    let (seen_this_method, seen_path) = seen;

    if fault == Fault::TooManyRequestsOnce && seen_path == 1 {
        client_w.write_all(
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        let _ = client_w.shutdown(Shutdown::Both);
        return Ok(());
    }

    // A new upstream connection per request.
    let up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut up_w = up.try_clone()?;
    let has_body = !body.is_empty() || req.content_length().is_some() || req.chunked();
    up_w.write_all(&req.serialize(has_body.then_some(body.len())))?;
    up_w.write_all(&body)?;
    up_w.flush()?;
    let mut up_r = BufReader::new(up);
    let mut resp = read_head(&mut up_r)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
    let status: u16 = resp
        .start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let bodiless =
        method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
    let mut rbody = Vec::new();
    let rlen = if bodiless {
        None
    } else if resp.chunked() {
        rbody = read_chunked(&mut up_r)?;
        Some(rbody.len())
    } else if let Some(n) = resp.content_length() {
        rbody.resize(n, 0);
        up_r.read_exact(&mut rbody)?;
        Some(n)
    } else {
        up_r.read_to_end(&mut rbody)?;
        Some(rbody.len())
    };

    let blob_get = method == "GET" && path.contains("/blobs/sha256:") && status == 200;
    let manifest_get = method == "GET" && path.contains("/manifests/") && status == 200;
    match fault {
        Fault::EndlessLayers if blob_get && rbody.first() != Some(&b'{') => {
            return send_endless(&mut client_w, &resp, &rbody, 0, endless);
        }
        Fault::EndlessConfigs if blob_get && rbody.first() == Some(&b'{') => {
            return send_endless(&mut client_w, &resp, &rbody, b' ', endless);
        }
        Fault::EndlessManifests if manifest_get => {
            return send_endless(&mut client_w, &resp, &rbody, b' ', endless);
        }
        Fault::HugeConfigSize if manifest_get => {
            if let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&rbody) {
                if doc.get("config").is_some() {
                    doc["config"]["size"] = HUGE_CONFIG_SIZE.into();
                    rbody = serde_json::to_vec(&doc).unwrap();
                    resp.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("docker-content-digest"));
                }
            }
            client_w.write_all(&resp.serialize(Some(rbody.len())))?;
            client_w.write_all(&rbody)?;
            client_w.flush()?;
            let _ = client_w.shutdown(Shutdown::Both);
            return Ok(());
        }
        Fault::CorruptBlobs if blob_get && !rbody.is_empty() => {
            let mid = rbody.len() / 2;
            rbody[mid] ^= 0x55;
        }
        Fault::DropBlobsOnce if blob_get && seen_this_method == 1 => {
            client_w.write_all(&resp.serialize(rlen))?;
            client_w.write_all(&rbody[..rbody.len() / 2])?;
            client_w.flush()?;
            let _ = client_w.shutdown(Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    // HEAD keeps upstream's Content-Length (the size of what GET would return).
    client_w.write_all(&resp.serialize(rlen))?;
    client_w.write_all(&rbody)?;
    client_w.flush()?;
    let _ = client_w.shutdown(Shutdown::Both);
    Ok(())
}

/// The Docker config of `{"auths": {REGISTRY: {"auth": base64(user:pass)}}}` parsed from
/// `path`, or None.
pub fn authfile_entry(path: &Path, registry: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auth = v.get("auths")?.get(registry)?.get("auth")?.as_str()?;
    Some(auth.to_string())
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
