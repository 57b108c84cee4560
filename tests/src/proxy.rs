//! Fault-injecting HTTP proxy in front of the real registry (resets, 5xx, 429, 416).
