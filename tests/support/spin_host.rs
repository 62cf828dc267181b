//! A small Spin stand-in for end-to-end tests: it serves the built component
//! over HTTP on 127.0.0.1 with a fresh instance per request (as Spin does),
//! implements the Spin key-value and variables interfaces, and enforces the
//! manifest's `allowed_outbound_hosts`. Test infrastructure, never product.

use hyper::server::conn::http1;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

mod spin_wit {
    // The two Spin 2.0 interfaces the component imports, as Spin declares them.
    wasmtime::component::bindgen!({
        inline: r#"
            package fermyon:spin@2.0.0;

            interface key-value {
                resource store {
                    open: static func(label: string) -> result<store, error>;
                    get: func(key: string) -> result<option<list<u8>>, error>;
                    set: func(key: string, value: list<u8>) -> result<_, error>;
                    delete: func(key: string) -> result<_, error>;
                    exists: func(key: string) -> result<bool, error>;
                    get-keys: func() -> result<list<string>, error>;
                }
                variant error { store-table-full, no-such-store, access-denied, other(string) }
            }

            interface variables {
                get: func(name: string) -> result<string, error>;
                variant error { invalid-name(string), undefined(string), provider(string), other(string) }
            }

            world host {
                import key-value;
                import variables;
            }
        "#,
        world: "host",
        with: { "fermyon:spin/key-value.store": super::KvHandle },
    });
}
use spin_wit::fermyon::spin::{key_value, variables};

/// The open `default` store (the only label the manifest grants).
pub struct KvHandle;

/// What the manifest says about the component, plus the test's variables.
pub struct App {
    pub kv: Mutex<BTreeMap<String, Vec<u8>>>,
    component_variables: HashMap<String, String>,
    app_variables: Mutex<HashMap<String, String>>,
    allowed_outbound_hosts: Vec<String>,
    key_value_stores: Vec<String>,
    /// Per request (path), the largest linear memory its instance asked for.
    pub peak_memory: Mutex<Vec<(String, usize)>>,
    pub outbound_denied: Mutex<Vec<String>>,
    /// Everything the component wrote to stderr (Spin's component log).
    pub logs: Mutex<String>,
}

impl App {
    pub fn kv_set(&self, key: &str, value: &[u8]) {
        self.kv
            .lock()
            .unwrap()
            .insert(key.to_string(), value.to_vec());
    }

    /// The keys in the store now.
    pub fn kv_keys(&self) -> Vec<String> {
        self.kv.lock().unwrap().keys().cloned().collect()
    }

    pub fn kv_delete(&self, key: &str) {
        self.kv.lock().unwrap().remove(key);
    }

    fn resolve(&self, template: &str) -> Result<String, String> {
        let vars = self.app_variables.lock().unwrap();
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").ok_or("unterminated template")? + start;
            let name = rest[start + 2..end].trim();
            out.push_str(
                vars.get(name)
                    .ok_or_else(|| format!("variable {name} has no value"))?,
            );
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Reads `spin.toml`: variable defaults, and the component's variables,
/// stores and outbound hosts. `overrides` play the part of `--variable`.
pub fn load_app(manifest: &Path, component: &str, overrides: &[(&str, &str)]) -> Arc<App> {
    let text = std::fs::read_to_string(manifest).expect("read spin.toml");
    let doc: toml::Table = text.parse().expect("spin.toml is TOML");
    let mut app_variables = HashMap::new();
    if let Some(vars) = doc.get("variables").and_then(|v| v.as_table()) {
        for (k, v) in vars {
            if let Some(d) = v.get("default").and_then(|d| d.as_str()) {
                app_variables.insert(k.clone(), d.to_string());
            }
        }
    }
    for (k, v) in overrides {
        app_variables.insert(k.to_string(), v.to_string());
    }
    let c = &doc["component"][component];
    let strings = |key: &str| -> Vec<String> {
        c.get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let component_variables = c
        .get("variables")
        .and_then(|v| v.as_table())
        .map(|t| {
            t.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Arc::new(App {
        kv: Mutex::new(BTreeMap::new()),
        component_variables,
        app_variables: Mutex::new(app_variables),
        allowed_outbound_hosts: strings("allowed_outbound_hosts"),
        key_value_stores: strings("key_value_stores"),
        peak_memory: Mutex::new(Vec::new()),
        outbound_denied: Mutex::new(Vec::new()),
        logs: Mutex::new(String::new()),
    })
}

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]`, with `*` for
/// scheme, host or port, `*.domain` and IPv4 CIDR hosts, as Spin reads them.
struct OutboundRule {
    scheme: String,
    host: String,
    port: Option<String>,
}

impl OutboundRule {
    fn parse(s: &str) -> Option<Self> {
        let (scheme, rest) = s.split_once("://")?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => (h, Some(p.to_string())),
            _ => (rest, None),
        };
        Some(Self {
            scheme: scheme.to_string(),
            host: host.to_lowercase(),
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme == "*" || self.scheme == scheme;
        let host_ok = if self.host == "*" {
            true
        } else if let Some(domain) = self.host.strip_prefix("*.") {
            host.ends_with(&format!(".{domain}"))
        } else if let Some((net, bits)) = self.host.split_once('/') {
            match (
                net.parse::<Ipv4Addr>(),
                bits.parse::<u32>(),
                host.parse::<Ipv4Addr>(),
            ) {
                (Ok(net), Ok(bits), Ok(ip)) if bits <= 32 => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    u32::from(net) & mask == u32::from(ip) & mask
                }
                _ => false,
            }
        } else {
            self.host == host
        };
        let default = if scheme == "https" { 443 } else { 80 };
        let port_ok = match self.port.as_deref() {
            Some("*") => true,
            Some(p) => p.parse::<u16>() == Ok(port),
            None => port == default,
        };
        scheme_ok && host_ok && port_ok
    }
}

struct Hooks {
    rules: Arc<Vec<OutboundRule>>,
    app: Arc<App>,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: hyper::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    hyper::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        drop(fut);
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_string();
        let host = uri.host().unwrap_or_default().to_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        if !self.rules.iter().any(|r| r.allows(&scheme, &host, port)) {
            self.app
                .outbound_denied
                .lock()
                .unwrap()
                .push(format!("{scheme}://{host}:{port}"));
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
    app: Arc<App>,
    limits: PeakLimiter,
}

/// Records the largest linear memory the request's instance asks for.
#[derive(Default)]
struct PeakLimiter(usize);

impl wasmtime::ResourceLimiter for PeakLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.0 = self.0.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

type KvResult<T> = Result<T, key_value::Error>;

impl key_value::Host for State {}

impl key_value::HostStore for State {
    fn open(&mut self, label: String) -> KvResult<Resource<KvHandle>> {
        if !self.app.key_value_stores.contains(&label) {
            return Err(key_value::Error::AccessDenied);
        }
        if label != "default" {
            return Err(key_value::Error::NoSuchStore);
        }
        self.table
            .push(KvHandle)
            .map_err(|_| key_value::Error::StoreTableFull)
    }

    fn get(&mut self, _: Resource<KvHandle>, key: String) -> KvResult<Option<Vec<u8>>> {
        Ok(self.app.kv.lock().unwrap().get(&key).cloned())
    }

    fn set(&mut self, _: Resource<KvHandle>, key: String, value: Vec<u8>) -> KvResult<()> {
        self.app.kv_set(&key, &value);
        Ok(())
    }

    fn delete(&mut self, _: Resource<KvHandle>, key: String) -> KvResult<()> {
        self.app.kv_delete(&key);
        Ok(())
    }

    fn exists(&mut self, _: Resource<KvHandle>, key: String) -> KvResult<bool> {
        Ok(self.app.kv.lock().unwrap().contains_key(&key))
    }

    fn get_keys(&mut self, _: Resource<KvHandle>) -> KvResult<Vec<String>> {
        Ok(self.app.kv.lock().unwrap().keys().cloned().collect())
    }

    fn drop(&mut self, rep: Resource<KvHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl variables::Host for State {
    fn get(&mut self, name: String) -> Result<String, variables::Error> {
        let template = self
            .app
            .component_variables
            .get(&name)
            .ok_or_else(|| variables::Error::Undefined(format!("no variable for {name:?}")))?;
        self.app
            .resolve(template)
            .map_err(variables::Error::Provider)
    }
}

pub struct SpinHost {
    pub addrs: Vec<SocketAddr>,
    pub app: Arc<App>,
}

/// Compiles the component once and serves it on `listeners` free ports of
/// 127.0.0.1 (each port is a distinct `Host`, so a distinct route).
pub async fn serve(wasm: &Path, app: Arc<App>, listeners: usize) -> SpinHost {
    let engine = Engine::new(&Config::new()).expect("engine");
    let component = Component::from_file(&engine, wasm)
        .unwrap_or_else(|e| panic!("load {}: {e:?}", wasm.display()));
    let mut linker: Linker<State> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).unwrap();
    key_value::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s).unwrap();
    variables::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s).unwrap();
    let pre = ProxyPre::new(
        linker
            .instantiate_pre(&component)
            .expect("component imports satisfied"),
    )
    .unwrap();

    let mut rules = Vec::new();
    for h in &app.allowed_outbound_hosts {
        let resolved = app.resolve(h).expect("allowed_outbound_hosts template");
        if resolved.is_empty() {
            continue; // Spin skips entries whose variables are empty.
        }
        rules.push(
            OutboundRule::parse(&resolved)
                .unwrap_or_else(|| panic!("bad allowed_outbound_hosts entry {resolved}")),
        );
    }
    let rules = Arc::new(rules);
    let mut addrs = Vec::new();
    for _ in 0..listeners {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        accept_loop(listener, pre.clone(), app.clone(), rules.clone());
    }
    SpinHost { addrs, app }
}

fn accept_loop(
    listener: TcpListener,
    pre: ProxyPre<State>,
    served_app: Arc<App>,
    rules: Arc<Vec<OutboundRule>>,
) {
    tokio::spawn(async move {
        loop {
            let Ok((client, peer)) = listener.accept().await else {
                continue;
            };
            let (pre, app, rules) = (pre.clone(), served_app.clone(), rules.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (pre, app, rules) = (pre.clone(), app.clone(), rules.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(handle(pre, app, rules, peer, req).await)
                    }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(client), service)
                    .await;
            });
        }
    });
}

async fn handle(
    pre: ProxyPre<State>,
    app: Arc<App>,
    rules: Arc<Vec<OutboundRule>>,
    peer: SocketAddr,
    mut req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<HyperOutgoingBody> {
    // Spin passes the full URL and routing facts in `spin-*` headers.
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let extra = [
        ("spin-full-url", format!("http://{host}{path_and_query}")),
        ("spin-path-info", req.uri().path().to_string()),
        ("spin-matched-route", "/...".to_string()),
        ("spin-client-addr", peer.to_string()),
    ];
    for (k, v) in extra {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            req.headers_mut().insert(k, v);
        }
    }
    match run(pre, app, rules, req).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("test host: {e:?}");
            let body = http_body_util::Full::new(bytes::Bytes::from(format!("{e:?}")));
            use http_body_util::BodyExt;
            hyper::Response::builder()
                .status(500)
                .body(body.map_err(|never| match never {}).boxed_unsync())
                .unwrap()
        }
    }
}

async fn run(
    pre: ProxyPre<State>,
    app: Arc<App>,
    rules: Arc<Vec<OutboundRule>>,
    req: hyper::Request<hyper::body::Incoming>,
) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
    let stderr = MemoryOutputPipe::new(1 << 20);
    let state = State {
        wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        hooks: Hooks {
            rules,
            app: app.clone(),
        },
        limits: PeakLimiter::default(),
        app,
    };
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limits);
    let path = req.uri().path().to_string();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        let result = proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await;
        let log = String::from_utf8_lossy(&stderr.contents()).into_owned();
        let data = store.data();
        data.app.logs.lock().unwrap().push_str(&log);
        data.app
            .peak_memory
            .lock()
            .unwrap()
            .push((path, data.limits.0));
        result
    });
    match receiver.await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => match task.await {
            Ok(Ok(())) => wasmtime::bail!("guest never set a response"),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.into()),
        },
    }
}
