//! The page's "Warm the cache" form and pins table, and the page a prefetch
//! streams: a row an object as the walk's lines come, under a progress bar.
//! No script: each line appends a new bar, and the style shows only the
//! last (`p.meter:not(:last-of-type)`), which browsers apply as the page
//! loads.

use super::{head, size};
use crate::web::home::esc;
use serde_json::Value;

/// A pin as the page lists it.
pub struct PinRow {
    /// The route, and the image as pulled through it.
    pub id: String,
    pub objects: usize,
    pub bytes: u64,
    /// Unix seconds.
    pub pinned_at: u64,
}

/// The form that starts a prefetch.
pub fn form(admin_path: &str) -> String {
    format!(
        "<form id=\"warm\" method=\"post\" action=\"{}/prefetch\">\n\
         <label>Image <input name=\"image\" required size=\"40\" placeholder=\"library/alpine:3.20\"></label>\n\
         <label>Platforms <input name=\"platforms\" size=\"24\" placeholder=\"linux/amd64, linux/arm64\"></label>\n\
         <label><input type=\"checkbox\" name=\"pin\"> Pin it</label>\n\
         <button type=\"submit\">Warm the cache</button>\n</form>\n\
         <p class=\"note\">The image as a pull through this proxy names it (<code>ghcr.io/owner/image:tag</code> for a registry named in the path); platforms comma-separated, none for all. A pin keeps the image out of eviction once all of it is cached.</p>\n",
        esc(admin_path)
    )
}

/// The pins, each with a button that removes it.
pub fn pins(rows: &[PinRow], admin_path: &str, now: u64) -> String {
    if rows.is_empty() {
        return "<p id=\"pins\">No pins.</p>\n".to_string();
    }
    let mut out = String::from(
        "<table id=\"pins\"><tr><th>image</th><th>objects</th><th>size</th><th>pinned</th><th></th></tr>\n",
    );
    for r in rows {
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{} min ago</td>\
             <td><form method=\"post\" action=\"{}/unpin\"><input type=\"hidden\" name=\"pin\" value=\"{}\"><button type=\"submit\">Unpin</button></form></td></tr>\n",
            esc(&r.id),
            r.objects,
            size(r.bytes),
            now.saturating_sub(r.pinned_at) / 60,
            esc(admin_path),
            esc(&r.id),
        ));
    }
    out.push_str("</table>\n");
    out
}

/// A page of the form's mistakes (or why it was not acted on), each a
/// sentence, and the way back.
pub fn mistakes(admin_path: &str, messages: &[String]) -> String {
    let items: String = messages
        .iter()
        .map(|m| format!("<li>{}</li>", esc(m)))
        .collect();
    format!(
        "{}<h1>Not done</h1>\n<ul id=\"mistakes\">{items}</ul>\n{}</body></html>\n",
        head("registry-proxy: not done"),
        back(admin_path)
    )
}

fn back(admin_path: &str) -> String {
    format!(
        "<p><a id=\"back\" href=\"{}/\">Back to the status page</a></p>\n",
        esc(admin_path)
    )
}

/// The streamed page's beginning: the image and the rows' headings.
pub fn head_of_walk(image: &str) -> String {
    format!(
        "{}<h1>Warming <code>{}</code></h1>\n<div id=\"walk\">\
         <div class=\"row\"><b>object</b><b>digest</b><b>size</b><b>outcome</b></div>\n",
        head("registry-proxy: warming the cache"),
        esc(image)
    )
}

/// What the streamed page has counted of the walk's lines. The walk does
/// not say up front how many objects it will go through (it learns of each
/// manifest's blobs as it reads the manifest): the bars are indeterminate
/// until the summary, then show what was cached of all that was walked.
#[derive(Default)]
pub struct Progress {
    objects: u64,
    /// Bytes cached so far, as the lines count them.
    bytes: u64,
    /// Bytes of the objects that failed or were left.
    missed: u64,
}

impl Progress {
    /// The HTML for one line of the walk: a row and a bar, or for the
    /// summary the last bar, the figures and the way back.
    pub fn line(&mut self, line: &Value, admin_path: &str) -> String {
        if line["kind"] == "summary" {
            return self.summary(line, admin_path);
        }
        let size_of = line["size"].as_u64().unwrap_or(0);
        self.objects += 1;
        self.bytes = line["bytes"].as_u64().unwrap_or(self.bytes);
        let outcome = outcome(line);
        if matches!(line["outcome"].as_str(), Some("failed" | "left")) {
            self.missed = self.missed.saturating_add(size_of);
        }
        let kind = match line["platform"].as_str() {
            Some(p) => format!("{} {}", text(&line["kind"]), esc(p)),
            None => text(&line["kind"]),
        };
        let digest = line["digest"].as_str().unwrap_or_default();
        format!(
            "<div class=\"row\"><span>{kind}</span><code title=\"{}\">{}</code><span class=\"n\">{}</span><span class=\"{}\">{outcome}</span></div>\n\
             <p class=\"meter\"><span><label>Objects <progress></progress></label> {} so far</span>\
             <span><label>Bytes <progress></progress></label> {} so far</span></p>\n",
            esc(digest),
            esc(&short(digest)),
            size(size_of),
            text(&line["outcome"]),
            self.objects,
            size(self.bytes),
        )
    }

    fn summary(&self, s: &Value, admin_path: &str) -> String {
        let n = |k: &str| s[k].as_u64().unwrap_or(0);
        let (objects, done) = (n("objects"), n("cached") + n("already"));
        let walked = self.bytes.saturating_add(self.missed);
        let bar = format!(
            "<p class=\"meter\" id=\"done\"><span><label>Objects <progress value=\"{done}\" max=\"{}\"></progress></label> {done} of {objects} cached</span>\
             <span><label>Bytes <progress value=\"{}\" max=\"{}\"></progress></label> {} of {}</span></p>\n</div>\n",
            objects.max(1),
            self.bytes,
            walked.max(1),
            size(self.bytes),
            size(walked),
        );
        let complete = match (s["complete"].as_bool(), n("left")) {
            (Some(true), _) => "All of the image is in the cache.".to_string(),
            (_, 0) => "Not all of the image is in the cache: see the failed rows.".to_string(),
            (_, left) => format!(
                "{left} objects were left when the time limit came: warm it again to go on (what is cached is not fetched again)."
            ),
        };
        format!(
            "{bar}<div id=\"summary\"><p>{objects} objects: {} fetched, {} already cached, {} failed, {} left; {} in the cache.</p>\n<p>{complete}</p>\n{}</div>\n{}</body></html>\n",
            n("cached"),
            n("already"),
            n("failed"),
            n("left"),
            size(n("bytes")),
            pin(&s["pin"]),
            back(admin_path),
        )
    }
}

/// What the summary says of the pin, if one was asked for.
fn pin(pin: &Value) -> String {
    match pin["pinned"].as_bool() {
        None => String::new(),
        Some(true) => format!(
            "<p id=\"pin\">Pinned: {} kept out of eviction.</p>\n",
            size(pin["bytes"].as_u64().unwrap_or(0))
        ),
        Some(false) => format!(
            "<p id=\"pin\">Not pinned: {}.</p>\n",
            esc(pin["reason"].as_str().unwrap_or("no reason given"))
        ),
    }
}

/// An object's outcome in words.
fn outcome(line: &Value) -> String {
    match line["outcome"].as_str().unwrap_or_default() {
        "cached" => "fetched".to_string(),
        "already" => "already cached".to_string(),
        "left" => "left: the time limit came first".to_string(),
        "failed" => format!(
            "failed: {}",
            esc(line["reason"].as_str().unwrap_or("no reason given"))
        ),
        other => esc(other),
    }
}

/// A string field of a line, escaped; empty when it is not a string.
fn text(v: &Value) -> String {
    esc(v.as_str().unwrap_or_default())
}

/// `sha256:` and the first 12 hex digits: enough to tell objects apart on
/// the page (the whole digest is the title).
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => {
            format!("{algorithm}:{}", hex.chars().take(12).collect::<String>())
        }
        None if digest.is_empty() => "–".to_string(),
        None => digest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every value from the walk's lines or the pins is escaped: an
    /// upstream names digests, platforms and reasons.
    #[test]
    fn rows_bars_and_pins_escape_what_they_show() {
        let mut p = Progress::default();
        let evil = "<img src=x>";
        let row = p.line(
            &json!({"kind": "manifest", "digest": format!("sha256:{evil}"), "size": 10,
                    "outcome": "failed", "reason": evil, "platform": evil, "bytes": 0}),
            "/a\"b",
        );
        assert!(!row.contains(evil), "{row}");
        assert!(row.contains("failed: &lt;img src=x&gt;"), "{row}");
        assert!(row.contains("1 so far"), "{row}");
        let left = json!({"kind": "blob", "digest": "sha256:0123456789abcdef", "size": 30,
                          "outcome": "left", "bytes": 0});
        assert!(p.line(&left, "/p").contains(">sha256:0123456789ab<"));
        let end = p.line(
            &json!({"kind": "summary", "objects": 2, "cached": 0, "already": 0,
                    "failed": 1, "left": 1, "bytes": 0, "complete": false,
                    "pin": {"pinned": false, "reason": evil}}),
            "/a\"b",
        );
        assert!(!end.contains(evil) && !end.contains("/a\"b"), "{end}");
        // The bytes bar's end is what was walked, failed and left included.
        assert!(end.contains("<progress value=\"0\" max=\"40\">"), "{end}");
        assert!(end.contains("1 objects were left"), "{end}");
        let pins = pins(
            &[PinRow {
                id: evil.into(),
                objects: 3,
                bytes: 2048,
                pinned_at: 0,
            }],
            "/p",
            120,
        );
        assert!(!pins.contains(evil), "{pins}");
        assert!(pins.contains("value=\"&lt;img src=x&gt;\""), "{pins}");
        assert!(
            pins.contains("2.0 KiB") && pins.contains("2 min ago"),
            "{pins}"
        );
        assert!(!mistakes("/p", &[evil.to_string()]).contains(evil));
    }
}
