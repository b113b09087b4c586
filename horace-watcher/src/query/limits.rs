//! Connection slots: at most a total number of connections, and at most a share of them per
//! caller (uid on the Unix socket, IP address on TCP), so one caller holding connections
//! open cannot lock everyone else out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Who a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A local user.
    Uid(u32),
    /// A TCP peer address.
    Ip(IpAddr),
}

/// Counts open connections.
#[derive(Debug, Clone)]
pub struct Slots {
    inner: Arc<Mutex<Counts>>,
    total: usize,
    per_caller: usize,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    by_caller: HashMap<Caller, usize>,
}

/// Which budget a refused connection found used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// All the connections of every caller.
    Total,
    /// This caller's share.
    Caller,
}

/// One open connection's slot; freed on drop.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    caller: Caller,
}

impl Slots {
    /// At most `total` connections, `per_caller` of them from one caller.
    pub fn new(total: usize, per_caller: usize) -> Self {
        Self {
            inner: Arc::default(),
            total,
            per_caller,
        }
    }

    /// A slot for `caller`, or which budget is used up.
    pub fn acquire(&self, caller: Caller) -> Result<Slot, Full> {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.by_caller.get(&caller).copied().unwrap_or(0);
        if mine >= self.per_caller {
            return Err(Full::Caller);
        }
        if c.open >= self.total {
            return Err(Full::Total);
        }
        c.open += 1;
        c.by_caller.insert(caller, mine + 1);
        Ok(Slot {
            slots: self.clone(),
            caller,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.slots.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.open = c.open.saturating_sub(1);
        if let Some(n) = c.by_caller.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                c.by_caller.remove(&self.caller);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_per_caller_limits() {
        let s = Slots::new(3, 2);
        let a1 = s.acquire(Caller::Uid(1)).unwrap();
        let _a2 = s.acquire(Caller::Uid(1)).unwrap();
        assert_eq!(
            s.acquire(Caller::Uid(1)).unwrap_err(),
            Full::Caller,
            "uid 1 used its share"
        );
        let _b = s.acquire(Caller::Uid(2)).unwrap();
        assert_eq!(
            s.acquire(Caller::Ip("127.0.0.1".parse().unwrap()))
                .unwrap_err(),
            Full::Total,
            "total used up"
        );
        drop(a1);
        assert!(
            s.acquire(Caller::Uid(1)).is_ok(),
            "a freed slot can be taken again"
        );
        assert_eq!(
            s.inner.lock().unwrap().open,
            2,
            "the temporary slot was freed on drop"
        );
    }
}
