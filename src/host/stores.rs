//! Where the key-value stores live: the `stores` setting. `spin` (the
//! default) takes the stores runtime-config.toml defines; `redis` puts
//! all three in the Redis at `redis_address`, one database each, reached
//! over the runtime's outbound Redis (see `hosts/spin/redis_stores.rs` for
//! why).

/// The store labels spin.toml declares, and their Redis databases: the
/// layout of the Redis tables in runtime-config.toml, so a Redis filled
/// either way reads the same.
const DATABASES: [(&str, u8); 3] = [("default", 0), ("cache", 1), ("stats", 2)];

#[derive(Debug, PartialEq, Eq)]
pub enum Stores {
    Runtime,
    Redis,
}

impl Stores {
    /// The `stores` setting; anything else is an error naming it.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim).unwrap_or_default() {
            "" | "spin" => Ok(Stores::Runtime),
            "redis" => Ok(Stores::Redis),
            other => Err(format!("stores must be spin or redis, not {other:?}")),
        }
    }
}

/// The Redis database of store `label`.
pub fn redis_database(label: &str) -> Result<u8, String> {
    DATABASES
        .iter()
        .find(|(l, _)| *l == label)
        .map(|(_, db)| *db)
        .ok_or_else(|| format!("no Redis database for the store {label:?}"))
}

/// The URL of the Redis at `address` (`redis://host:port`, as
/// `allowed_outbound_hosts` has it), with the password if there is one.
/// It holds the password: never log it.
pub fn redis_url(address: &str, password: Option<&str>) -> Result<String, String> {
    let rest = address
        .trim()
        .strip_prefix("redis://")
        .filter(|r| !r.is_empty() && !r.contains(['/', '@']))
        .ok_or_else(|| format!("redis_address must be redis://host:port, not {address:?}"))?;
    let auth = match password.filter(|p| !p.is_empty()) {
        Some(p) => format!(
            ":{}@",
            url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
        ),
        None => String::new(),
    };
    Ok(format!("redis://{auth}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_has_its_database_and_the_password_goes_in_the_url() {
        let db = |l| redis_database(l);
        assert_eq!(
            (db("default"), db("cache"), db("stats")),
            (Ok(0), Ok(1), Ok(2))
        );
        assert!(db("health").is_err());
        let url = redis_url("redis://127.0.0.1:6379", Some("p@ss"));
        assert_eq!(url.as_deref(), Ok("redis://:p%40ss@127.0.0.1:6379"));
        assert_eq!(
            redis_url("redis://r:1", Some("")).as_deref(),
            Ok("redis://r:1")
        );
    }

    #[test]
    fn an_address_with_a_path_or_credentials_is_refused_naming_the_variable() {
        for address in [
            "redis://h:6379/3",
            "redis://u:p@h:6379",
            "http://h",
            "redis://",
        ] {
            let e = redis_url(address, None).unwrap_err();
            assert!(e.contains("redis_address"), "{address}: {e}");
        }
    }

    #[test]
    fn stores_is_spin_or_redis_and_anything_else_names_the_setting() {
        assert_eq!(Stores::parse(None), Ok(Stores::Runtime));
        assert_eq!(Stores::parse(Some("spin")), Ok(Stores::Runtime));
        assert_eq!(Stores::parse(Some(" redis ")), Ok(Stores::Redis));
        assert!(
            Stores::parse(Some("sqlite"))
                .unwrap_err()
                .starts_with("stores ")
        );
    }
}
