//! Integration tests of the query service: the real `horace-watcher` binary on a temp
//! directory, the real `horace` CLI and the client library over its socket (and TCP).

mod bad_input;
mod escape;
mod methods;
mod rights;
mod search;
mod slots;
mod util;
