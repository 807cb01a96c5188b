//! Helpers shared by interop tests that need real peers (see TESTBED.md), included
//! with `mod support;`. Each submodule says which peers it starts.
#![allow(dead_code)]

pub mod proxy;
pub mod registry;
