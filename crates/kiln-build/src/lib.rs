//! Building images: the Dockerfile frontend (parser and variable substitution with
//! Docker/BuildKit's exact syntax) and the `.dockerignore` matcher used when reading a
//! build context; the build plan (which stages, in which order), and the executor that
//! runs it against the store with kiln containers and a content-addressed cache.

// Libraries report through their progress traits and errors; only the CLI prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod cache;
pub mod dockerfile;
pub mod dockerignore;
pub mod exec;
mod fsutil;
pub mod git;
pub mod plan;
pub mod schedule;
