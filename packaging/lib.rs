//! No code: this crate only carries the Debian package manifest (Cargo.toml,
//! `[package.metadata.deb]`) that packaging/build-deb.sh hands to cargo-deb.
