//! Where the key-value stores live: the `stores` setting. `spin` (the
//! default) takes the stores runtime-config.toml defines; `redis` puts
//! all three in the Redis at `redis_address`, one database each, reached
//! on a connection of the request's own (see `hosts/spin/redis_stores.rs`
//! for why).

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

/// Where the Redis is: `redis_address`, `host:port` as spin.toml puts it in
/// `allowed_outbound_hosts` (`tcp://` for a socket, `redis://` for Spin's
/// outbound Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAddress {
    /// An IP address: reached over a socket, every wait with a deadline.
    Ip(std::net::SocketAddr),
    /// A host name (`host:port`): Spin gives components no name lookup, so
    /// this goes through Spin's outbound Redis, which resolves it.
    Name(String),
}

impl RedisAddress {
    /// `redis_address`; anything but `host:port` is an error naming it.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if let Ok(ip) = value.parse() {
            return Ok(RedisAddress::Ip(ip));
        }
        let valid = value.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && port.parse::<u16>().is_ok()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        });
        match valid {
            true => Ok(RedisAddress::Name(value.to_string())),
            false => Err(format!(
                "redis_address must be host:port (10.0.0.5:6379), not {value:?}"
            )),
        }
    }
}

/// The URL Spin's outbound Redis opens for the Redis named `name`
/// (`host:port`), with the password if there is one. It holds the
/// password: never log it.
pub fn outbound_url(name: &str, password: Option<&str>) -> String {
    let auth = match password.filter(|p| !p.is_empty()) {
        Some(p) => format!(
            ":{}@",
            url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
        ),
        None => String::new(),
    };
    format!("redis://{auth}{name}")
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
        let name = "redis.internal:6379";
        assert_eq!(
            outbound_url(name, Some("p@ss")),
            "redis://:p%40ss@redis.internal:6379"
        );
        assert_eq!(outbound_url(name, Some("")), "redis://redis.internal:6379");
    }

    #[test]
    fn an_ip_address_is_reached_over_a_socket_and_a_name_through_spin() {
        let ip = RedisAddress::parse(" 127.0.0.1:6379 ").unwrap();
        assert_eq!(ip, RedisAddress::Ip("127.0.0.1:6379".parse().unwrap()));
        let v6 = RedisAddress::parse("[::1]:6379").unwrap();
        assert!(matches!(v6, RedisAddress::Ip(a) if a.is_ipv6()));
        let name = RedisAddress::parse("redis-0.redis:6380").unwrap();
        assert_eq!(name, RedisAddress::Name("redis-0.redis:6380".into()));
    }

    #[test]
    fn an_address_with_a_scheme_a_path_or_credentials_is_refused_naming_the_variable() {
        for address in [
            "redis://127.0.0.1:6379",
            "h:6379/3",
            "u:p@h:6379",
            "h",
            "h:port",
            ":6379",
            "",
        ] {
            let e = RedisAddress::parse(address).unwrap_err();
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
