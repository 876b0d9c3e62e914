//! go_example-rs: the go_example web architecture in Rust. Layers, one way only:
//! `server → controller → service → repository → client` (`modules/`), wired by shaku in
//! `assembly`; `middleware` and the edge kit `web` sit beside and below the controllers
//! (tests/layering.rs holds the rules).

pub mod assembly;
pub mod cmd;
pub mod controller;
pub mod meta;
pub mod middleware;
pub mod model;
pub mod proto;
pub mod repository;
pub mod server;
pub mod service;
pub mod web;
