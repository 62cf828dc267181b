//! A real browser for the status page: Debian's headless Chromium, driven
//! through chromedriver's W3C WebDriver API (and, for screenshots of the
//! whole page, the Chrome DevTools Protocol chromedriver passes through).

use super::http::{self, Reply};
use super::watched::{self, Watched};
use super::{registry, rt};
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::Path;

/// The key W3C WebDriver gives element references under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    _driver: Watched,
    session: String,
}

fn call(method: &str, url: &str, body: Value) -> Value {
    let body = if method == "GET" || method == "DELETE" {
        String::new()
    } else {
        body.to_string()
    };
    let r: Reply = rt().block_on(http::send(
        method,
        url,
        &[("content-type", "application/json")],
        body,
    ));
    assert_eq!(r.status, 200, "{method} {url}: {}", r.text());
    r.json()["value"].clone()
}

impl Browser {
    pub fn start(dir: &Path) -> Browser {
        let port = registry::free_port();
        let driver = watched::spawn(
            "chromedriver",
            &[&format!("--port={port}")],
            dir,
            &dir.join("chromedriver.log"),
        );
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let profile = dir.join(format!("chromium-{port}"));
        // As root, in a closed network: no sandbox, nothing fetched at start.
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let session = call("POST", &format!("{base}/session"), caps)["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        let session = format!("{base}/session/{session}");
        // A click on a form's button can return before the next page is in:
        // lookups wait for their element (each test looks, after a click, for
        // one the page before did not have).
        call(
            "POST",
            &format!("{session}/timeouts"),
            json!({"implicit": 10_000}),
        );
        Browser {
            _driver: driver,
            session,
        }
    }

    pub fn open(&self, url: &str) {
        call(
            "POST",
            &format!("{}/url", self.session),
            json!({"url": url}),
        );
    }

    pub fn element(&self, css: &str) -> String {
        let found = call(
            "POST",
            &format!("{}/element", self.session),
            json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT].as_str().expect("an element").to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        call(
            "POST",
            &format!("{}/element/{e}/value", self.session),
            json!({"text": text}),
        );
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        call(
            "POST",
            &format!("{}/element/{e}/click", self.session),
            json!({}),
        );
    }

    /// The text a person sees in the element.
    pub fn text(&self, css: &str) -> String {
        let e = self.element(css);
        call(
            "GET",
            &format!("{}/element/{e}/text", self.session),
            json!({}),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub fn source(&self) -> String {
        call("GET", &format!("{}/source", self.session), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves the whole page, not only the window, as a PNG at `path`:
    /// a person can then look at what the test saw.
    pub fn screenshot(&self, path: &Path) {
        let cdp = |cmd: &str, params: Value| {
            call(
                "POST",
                &format!("{}/goog/cdp/execute", self.session),
                json!({"cmd": cmd, "params": params}),
            )
        };
        // WebDriver's own screenshot stops at the window's edge: the
        // layout's size lets DevTools capture beyond it.
        let size = &cdp("Page.getLayoutMetrics", json!({}))["cssContentSize"];
        let clip = json!({
            "x": 0, "y": 0, "scale": 1,
            "width": size["width"].as_f64().unwrap_or(800.0).ceil(),
            "height": size["height"].as_f64().unwrap_or(600.0).ceil(),
        });
        let shot = cdp(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("a screenshot"))
            .expect("a base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        std::fs::write(path, png).expect("the screenshot written");
    }

    pub fn cookies(&self) -> Vec<Value> {
        call("GET", &format!("{}/cookie", self.session), json!({}))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = rt().block_on(http::send("DELETE", &self.session, &[], String::new()));
    }
}
