//! Security suite: what a Dockerfile, an image, a container or a registry does stays contained.
mod build;
#[path = "../common/mod.rs"]
mod common;
mod limits;
mod runtime;
mod seccomp;
