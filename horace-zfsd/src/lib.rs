//! horace-zfsd: the privileged half of Horace.
//!
//! `api` is all a client needs (bus names, the proxy, wire types, name validation) and
//! depends on zbus and serde only. The daemon itself is behind the `daemon` feature.

pub mod api;
