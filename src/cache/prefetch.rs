//! Prefetch: an image put into the cache before any client pulls it. It
//! goes through the services a pull goes through (the manifest and blob
//! caches, with the route's own credentials), so routing, bounds, checks
//! and partitions are a pull's; what is cached already costs no upstream
//! GET. Its progress is a JSON line per object, streamed as it goes.

mod fetch;

use crate::cache::layout::{BlobEntry, Scope};
use crate::cache::{bound, pins, repositories};
use crate::host::{Chunks, Host};
use crate::oci::descriptor::{Descriptor, ImageIndex, ImageManifest};
use crate::oci::digest::Digest;
use crate::oci::media_type::is_index;
use crate::oci::platform::Platform;
use crate::oci::reference::{Reference, RepositoryName};
use crate::routing::target::Target;
use fetch::Fetched;
use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use serde_json::json;

/// Objects one walk goes through at most: an index or referrers list of
/// 4 MiB names about 40,000, and each of their manifests as many layers,
/// which would keep a walk (and what it remembers for a pin) growing for
/// hours. Far more than any image has.
const MAX_OBJECTS: u64 = 10_000;
/// Entries of one index or referrers list walked at most; the platforms
/// of the largest multi-platform images are a few dozen.
const MAX_ENTRIES: usize = 1_000;

/// One image to prefetch, resolved as a pull through the proxy would be.
pub struct Prefetch {
    pub target: Target,
    /// The proxy's origin, for links in answers.
    pub origin: String,
    /// The name the client pulls by (before the route's mapping).
    pub name: RepositoryName,
    pub reference: Reference,
    /// `None`: every platform the index lists.
    pub platforms: Option<Vec<Platform>>,
    pub referrers: bool,
    pub pin: bool,
    /// Unix milliseconds after which no new object is started (a hosted
    /// platform's time limit); what is left is said, for another call.
    pub deadline: Option<u64>,
}

/// The progress lines as a body. The work runs as the body is read, and
/// holds the request's tasks open: the blob copies it starts run there.
pub fn progress<H: Host>(host: H, job: Prefetch) -> Chunks {
    let (out, lines) = futures::channel::mpsc::unbounded::<Vec<u8>>();
    let hold = host.alongside().hold();
    let work = async move {
        Walk::new(host, job, out).run().await;
        drop(hold);
    };
    let done = futures::stream::once(work).filter_map(|()| async { None });
    Box::pin(futures::stream::select(lines.map(Ok), done))
}

/// The walk over one image, and what it has done so far.
struct Walk<H: Host> {
    host: H,
    job: Prefetch,
    out: UnboundedSender<Vec<u8>>,
    counts: Counts,
    /// What a pin keeps: each object's cache key.
    held: Vec<String>,
    scope: Scope,
    /// The upstream's name of the repository (manifest keys hold it).
    upstream_name: String,
    max_size: u64,
}

#[derive(Default)]
struct Counts {
    objects: u64,
    cached: u64,
    already: u64,
    failed: u64,
    left: u64,
    /// Bytes of the objects done, cached or already there.
    bytes: u64,
    /// Bytes of the blobs committed, as the cache holds them, against
    /// `cache_max_size`.
    planned: u64,
    /// Why the first object that failed did: what a refused pin says.
    first_failure: Option<String>,
}

impl<H: Host> Walk<H> {
    fn new(host: H, job: Prefetch, out: UnboundedSender<Vec<u8>>) -> Self {
        let route = &job.target.route;
        let scope = Scope::of(&route.upstream, route.credentials.as_deref());
        let upstream_name = job
            .target
            .mapping
            .to_upstream(&job.name)
            .map_or_else(|| job.name.to_string(), |n| n.to_string());
        let max_size = bound::max_size(&host);
        Self {
            host,
            job,
            out,
            counts: Counts::default(),
            held: Vec::new(),
            scope,
            upstream_name,
            max_size,
        }
    }

    async fn run(mut self) {
        let reference = self.job.reference.clone();
        let root = fetch::manifest(&self.host, &self.job, &reference).await;
        let kind = if is_index(&root.media_type) {
            "index"
        } else {
            "manifest"
        };
        self.manifest_line(kind, &root, None);
        let mut subjects = Vec::new();
        if !matches!(root.fetched, Fetched::Failed(_)) {
            subjects.push(root.digest.clone());
            if is_index(&root.media_type) {
                self.platforms(&root.bytes, &mut subjects).await;
            } else {
                self.blobs(&root.bytes).await;
            }
            if self.job.referrers {
                for subject in subjects {
                    self.referrers(&subject).await;
                }
            }
        }
        self.summary();
    }

    /// The index's manifests for the chosen platforms, and their blobs.
    async fn platforms(&mut self, index: &[u8], subjects: &mut Vec<String>) {
        let entries = serde_json::from_slice::<ImageIndex>(index)
            .map(|i| i.manifests)
            .unwrap_or_default();
        let entries = self.at_most(entries, "index");
        let wanted = self.job.platforms.clone();
        for p in wanted.iter().flatten() {
            let listed = entries
                .iter()
                .any(|e| e.platform.as_ref().is_some_and(|d| p.matches(d)));
            if !listed {
                self.failed_line("manifest", "", 0, &format!("the index lists no {p}"));
            }
        }
        for entry in entries {
            let chosen = match (&wanted, &entry.platform) {
                (None, _) => true,
                (Some(ps), Some(d)) => ps.iter().any(|p| p.matches(d)),
                (Some(_), None) => false,
            };
            if chosen && self.image(&entry, "manifest").await {
                subjects.push(entry.digest.clone());
            }
        }
    }

    /// A manifest the index or referrers list, and its blobs; whether the
    /// cache holds it now.
    async fn image(&mut self, entry: &Descriptor, kind: &str) -> bool {
        if self.past_bound() {
            return false;
        }
        let Ok(digest) = Digest::parse(&entry.digest) else {
            self.failed_line(kind, &entry.digest, entry.size, "not a digest");
            return false;
        };
        if self.out_of_time(kind, &entry.digest, entry.size) {
            return false;
        }
        let platform = entry.platform.as_ref().map(|d| d.to_string());
        let m = fetch::manifest(&self.host, &self.job, &Reference::Digest(digest)).await;
        self.manifest_line(kind, &m, platform);
        if matches!(m.fetched, Fetched::Failed(_)) {
            return false;
        }
        self.blobs(&m.bytes).await;
        true
    }

    /// An image manifest's config and layers.
    async fn blobs(&mut self, manifest: &[u8]) {
        let Ok(m) = serde_json::from_slice::<ImageManifest>(manifest) else {
            return;
        };
        for blob in m.blobs() {
            self.blob(&blob).await;
        }
    }

    async fn blob(&mut self, blob: &Descriptor) {
        if self.past_bound() || self.out_of_time("blob", &blob.digest, blob.size) {
            return;
        }
        let fetched = match Digest::parse(&blob.digest) {
            _ if blob.is_foreign() => {
                Fetched::Failed("a foreign layer: the registry does not hold it".into())
            }
            _ if self.counts.planned.saturating_add(blob.size) > self.max_size => {
                Fetched::Failed(format!(
                    "the image is larger than cache_max_size ({} bytes)",
                    self.max_size
                ))
            }
            Ok(digest) => fetch::blob(&self.host, &self.job, &digest).await,
            Err(e) => Fetched::Failed(e.to_string()),
        };
        let fetched = match fetched {
            Fetched::Failed(why) => Fetched::Failed(why),
            done => self.committed(blob, done),
        };
        self.line("blob", &blob.digest, blob.size, &fetched, None);
    }

    /// A blob the cache holds now, checked against its descriptor: its
    /// committed size is what the plan counts, and one of another size
    /// than the manifest says fails (a pin must not count the manifest's
    /// word for bytes the cache holds).
    fn committed(&mut self, blob: &Descriptor, done: Fetched) -> Fetched {
        let key = self.scope.blob_key(&blob.digest);
        let Some(entry) = BlobEntry::load(self.host.cache().as_ref(), &key) else {
            // A copy finds no room when pins and copies under way fill
            // the bound; it is then only relayed.
            let why = "not in the cache once fetched: no room within cache_max_size beside \
                       the pins and copies under way, or evicted since";
            return Fetched::Failed(why.into());
        };
        self.counts.planned = self.counts.planned.saturating_add(entry.size);
        if entry.size != blob.size {
            return Fetched::Failed(format!(
                "the upstream's blob is {} bytes, its descriptor says {}",
                entry.size, blob.size
            ));
        }
        self.held.push(key);
        done
    }

    /// The referrers of one manifest, each with its blobs.
    async fn referrers(&mut self, subject: &str) {
        let Ok(digest) = Digest::parse(subject) else {
            return;
        };
        match fetch::referrers(&self.host, &self.job, &digest).await {
            Ok(found) => {
                for entry in self.at_most(found, "referrers list") {
                    self.image(&entry, "referrer").await;
                }
            }
            Err(why) => self.failed_line("referrers", subject, 0, &why),
        }
    }

    /// The first [`MAX_ENTRIES`] of a list; a failed line says what is not
    /// walked of a longer one.
    fn at_most(&mut self, mut entries: Vec<Descriptor>, list: &str) -> Vec<Descriptor> {
        if entries.len() > MAX_ENTRIES {
            let why = format!(
                "the {list} has {} entries: a prefetch walks the first {MAX_ENTRIES}",
                entries.len()
            );
            self.failed_line(list, "", 0, &why);
            entries.truncate(MAX_ENTRIES);
        }
        entries
    }

    /// Past [`MAX_OBJECTS`]: the walk stops, and says so once.
    fn past_bound(&mut self) -> bool {
        if self.counts.objects < MAX_OBJECTS {
            return false;
        }
        if self.counts.objects == MAX_OBJECTS {
            let why = format!("a prefetch walks at most {MAX_OBJECTS} objects: the rest is not");
            self.failed_line("walk", "", 0, &why);
        }
        true
    }

    /// Past the deadline: the object is left for another call.
    fn out_of_time(&mut self, kind: &str, digest: &str, size: u64) -> bool {
        let late = self.job.deadline.is_some_and(|d| crate::now_millis() >= d);
        if late {
            self.counts.objects += 1;
            self.counts.left += 1;
            self.send(json!({"kind": kind, "digest": digest, "size": size, "outcome": "left"}));
        }
        late
    }

    fn manifest_line(&mut self, kind: &str, m: &fetch::Manifest, platform: Option<String>) {
        if !matches!(m.fetched, Fetched::Failed(_)) {
            let key = self.scope.manifest_key(&self.upstream_name, &m.digest);
            self.held.push(key);
        }
        self.line(kind, &m.digest, m.bytes.len() as u64, &m.fetched, platform);
    }

    fn failed_line(&mut self, kind: &str, digest: &str, size: u64, why: &str) {
        self.line(kind, digest, size, &Fetched::Failed(why.to_string()), None);
    }

    fn line(
        &mut self,
        kind: &str,
        digest: &str,
        size: u64,
        fetched: &Fetched,
        platform: Option<String>,
    ) {
        let c = &mut self.counts;
        c.objects += 1;
        let (outcome, reason) = match fetched {
            Fetched::Cached => {
                c.cached += 1;
                ("cached", None)
            }
            Fetched::Already => {
                c.already += 1;
                ("already", None)
            }
            Fetched::Failed(why) => {
                c.failed += 1;
                c.first_failure.get_or_insert_with(|| why.clone());
                ("failed", Some(why.as_str()))
            }
        };
        if reason.is_none() {
            c.bytes = c.bytes.saturating_add(size);
        }
        let mut line = json!({
            "kind": kind, "digest": digest, "size": size, "outcome": outcome, "bytes": c.bytes,
        });
        if let Some(why) = reason {
            line["reason"] = json!(why);
        }
        if let Some(p) = platform {
            line["platform"] = json!(p);
        }
        self.send(line);
    }

    /// The last line: the counts, whether all is done, and the pin.
    fn summary(&mut self) {
        let c = &self.counts;
        let complete = c.failed == 0 && c.left == 0;
        let mut line = json!({
            "kind": "summary", "image": format!("{}:{}", self.job.name, self.job.reference),
            "objects": c.objects, "cached": c.cached, "already": c.already,
            "failed": c.failed, "left": c.left, "bytes": c.bytes, "complete": complete,
        });
        if c.left > 0 {
            line["next"] = json!("call again to go on: what is cached now is not fetched again");
        }
        if self.job.pin {
            line["pin"] = self.pin(complete);
        }
        self.send(line);
    }

    fn pin(&self, complete: bool) -> serde_json::Value {
        if !complete {
            let why = match &self.counts.first_failure {
                Some(first) => format!("not all of the image is cached: {first}"),
                None => "not all of the image is cached".to_string(),
            };
            return json!({"pinned": false, "reason": why});
        }
        let id = pins::id(&self.job.target.name, &self.job.name, &self.job.reference);
        match pins::pin(self.host.cache().as_ref(), &id, &self.held, self.max_size) {
            Ok(bytes) => {
                repositories::forget_listed(&self.host);
                json!({"pinned": true, "bytes": bytes})
            }
            Err(why) => json!({"pinned": false, "reason": why}),
        }
    }

    fn send(&self, line: serde_json::Value) {
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        // A client that went away stops reading; the walk goes on, as a
        // pull's copy does.
        let _ = self.out.unbounded_send(bytes);
    }
}
