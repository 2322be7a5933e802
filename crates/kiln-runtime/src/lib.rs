//! Running containers from images: snapshots (each layer unpacked once, keyed by chain
//! ID), the OCI runtime spec with secure defaults, and youki's libcontainer in-process.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod bpf;
pub mod cdi;
pub mod cgroupfs;
pub mod container;
pub mod error;
pub mod launch;
pub mod logs;
pub mod netns;
pub mod pasta;
pub mod tap;
pub use kiln_store::snapshot;
pub mod seccomp;
pub mod spec;
pub mod tty;
pub mod user;

pub use error::{Result, RuntimeError};
