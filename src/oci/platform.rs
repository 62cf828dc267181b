//! Platforms as clients name them (`linux/amd64`, `linux/arm/v7`), and
//! whether an index's entry is for one: the OCI image index's `platform`
//! field, whose `os` and `architecture` take Go's `GOOS` and `GOARCH`.

use serde::Deserialize;

/// Go's `GOOS` values the image spec refers to.
const OSES: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

/// Go's `GOARCH` values.
const ARCHITECTURES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// An index entry's `platform` field.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Described {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/architecture[/variant]`, each part one of Go's names (a variant
    /// is `v` and a number): anything else is no platform any client pulls.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => return Err(format!("{text:?} is not os/architecture[/variant]")),
        };
        if !OSES.contains(&os) {
            return Err(format!("{os:?} is not an operating system (GOOS)"));
        }
        if !ARCHITECTURES.contains(&architecture) {
            return Err(format!("{architecture:?} is not an architecture (GOARCH)"));
        }
        let numbered = |v: &str| {
            v.strip_prefix('v')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if let Some(v) = variant.filter(|v| !numbered(v)) {
            return Err(format!("{v:?} is not a variant (v7, v8, ...)"));
        }
        Ok(Self {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        })
    }

    /// Whether an index entry is for this platform. A platform named
    /// without a variant takes any; `arm64` entries without one are `v8`,
    /// as containerd reads them.
    pub fn matches(&self, entry: &Described) -> bool {
        if entry.os != self.os || entry.architecture != self.architecture {
            return false;
        }
        let Some(wanted) = &self.variant else {
            return true;
        };
        let implied = (self.architecture == "arm64").then_some("v8");
        entry.variant.as_deref().or(implied) == Some(wanted.as_str())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_platform(f, &self.os, &self.architecture, self.variant.as_deref())
    }
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_platform(f, &self.os, &self.architecture, self.variant.as_deref())
    }
}

/// `os/architecture[/variant]`, as clients write it.
fn write_platform(
    f: &mut std::fmt::Formatter<'_>,
    os: &str,
    architecture: &str,
    variant: Option<&str>,
) -> std::fmt::Result {
    write!(f, "{os}/{architecture}")?;
    match variant {
        Some(v) => write!(f, "/{v}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>) -> Described {
        Described {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    #[test]
    fn parses_what_clients_name() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(Platform::parse("windows/amd64").unwrap().os, "windows");
        for bad in [
            "linux",
            "linux/",
            "Linux/amd64",
            "linux/x86_64",
            "linux/arm/7",
            "linux/arm64/v8/x",
            "plan10/amd64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_index_entries() {
        let amd = Platform::parse("linux/amd64").unwrap();
        assert!(amd.matches(&entry("linux", "amd64", None)));
        assert!(amd.matches(&entry("linux", "amd64", Some("v3"))));
        assert!(!amd.matches(&entry("linux", "arm64", None)));
        assert!(!amd.matches(&entry("windows", "amd64", None)));
        let v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(v8.matches(&entry("linux", "arm64", None)));
        assert!(v8.matches(&entry("linux", "arm64", Some("v8"))));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(!v7.matches(&entry("linux", "arm", Some("v6"))));
        assert!(!v7.matches(&entry("linux", "arm", None)));
    }
}
