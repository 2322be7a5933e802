//! OCI distribution: pulling and pushing images between the store and registries.
//!
//! [`client::Repo`] speaks the distribution spec for one repository (authentication,
//! retries, resumable transfers); [`pull`] and [`push`] move images; [`auth`] reads and
//! writes Docker's and Podman's credential files; [`config`] holds insecure registries
//! and mirrors; [`limits`] bounds every body read from the network.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod limits;
pub mod pull;
pub mod push;

pub use client::{Options, Repo};
pub use error::{RegistryError, Result};
pub use pull::{pull, BlobReport, PullOptions, PullReport};
pub use push::{push, PushOptions, PushReport};
