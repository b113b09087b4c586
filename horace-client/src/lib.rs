//! Horace query protocol and client.
