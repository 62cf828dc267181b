//! An in-memory [`Kv`] for native unit tests: a map, counters stored as
//! decimal text, and a switch that makes every write fail (a store that is
//! full, read-only or away).

use super::Kv;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct MemoryKv {
    entries: RefCell<BTreeMap<String, Vec<u8>>>,
    refuse_writes: Cell<bool>,
}

impl MemoryKv {
    /// From now on every write fails, as a store that refuses them would.
    pub fn refuse_writes(&self, refuse: bool) {
        self.refuse_writes.set(refuse);
    }

    fn writable(&self) -> Result<(), String> {
        match self.refuse_writes.get() {
            true => Err("the store refuses writes".into()),
            false => Ok(()),
        }
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.writable()?;
        self.entries.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), String> {
        self.writable()?;
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    fn keys(&self) -> Result<Vec<String>, String> {
        Ok(self.entries.borrow().keys().cloned().collect())
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        let current = self.get(key)?;
        let n = current
            .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok())
            .unwrap_or(0)
            + delta;
        self.set(key, n.to_string().as_bytes())?;
        Ok(n)
    }

    fn swap_if(
        &self,
        key: &str,
        expect: &dyn Fn(Option<&[u8]>) -> bool,
        value: &[u8],
    ) -> Result<bool, String> {
        super::swap_unshared(self, key, expect, value)
    }
}
