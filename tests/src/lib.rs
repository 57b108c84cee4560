//! Test harness for ATP Offline: the real `docker-registry` on 127.0.0.1 in
//! every auth mode, a bearer-token issuer, a fault-injecting proxy, fixture
//! images, and helpers to find the built binaries.
//!
//! Never binds anything but loopback; every process it starts is stopped on drop.

pub mod proxy;
