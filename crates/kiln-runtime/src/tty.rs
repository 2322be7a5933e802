//! `kiln run -t`: the container's pty master, received over the console socket, relayed
//! to our own terminal (raw mode while it runs, window size kept in sync).

use crate::error::{Result, RuntimeError};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use nix::sys::termios;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

fn io(e: impl Into<std::io::Error>) -> RuntimeError {
    RuntimeError::Io {
        path: "console socket".into(),
        source: e.into(),
    }
}

/// Accepts the console socket connection on a thread and receives the pty master. The
/// thread runs with every signal blocked (signals are for the waiting loop).
pub fn accept_master(
    listener: UnixListener,
) -> Result<std::thread::JoinHandle<std::io::Result<Relay>>> {
    let all = nix::sys::signal::SigSet::all();
    let old = all
        .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK)
        .map_err(io)?;
    let handle = std::thread::spawn(move || -> std::io::Result<Relay> {
        let (stream, _) = listener.accept()?;
        let mut name = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .map_err(std::io::Error::from)?;
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(fd) = fds.first() {
                    // SAFETY: the fd was just received and is owned by nobody else.
                    let master = unsafe { OwnedFd::from_raw_fd(*fd) };
                    return Relay::start(master);
                }
            }
        }
        Err(std::io::Error::other("the container sent no terminal"))
    });
    old.thread_set_mask().map_err(io)?;
    Ok(handle)
}

/// Copies between our standard streams and the container's pty until it closes.
pub struct Relay {
    master: OwnedFd,
    saved: Option<(std::os::fd::RawFd, termios::Termios)>,
    output: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(master: OwnedFd) -> std::io::Result<Self> {
        // Raw mode on our terminal (standard input's, or output's when input is not one):
        // the container's pty already does the line discipline.
        let saved = [libc::STDIN_FILENO, libc::STDOUT_FILENO]
            .into_iter()
            .find_map(|fd| {
                // SAFETY: borrowing a standard descriptor for the duration of this call.
                let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                termios::tcgetattr(b).ok().map(|t| (fd, t))
            });
        if let Some((fd, t)) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            // SAFETY: as above.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
            let _ = termios::tcsetattr(b, termios::SetArg::TCSANOW, &raw);
        }
        copy_window_size(&master);
        let mut out_src = std::fs::File::from(master.try_clone()?);
        let output = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut stdout = std::io::stdout();
            // EIO when the container side closes: the end of the stream.
            while let Ok(n) = out_src.read(&mut buf) {
                if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = stdout.flush();
            }
        });
        let mut in_dst = std::fs::File::from(master.try_clone()?);
        // Input ends with the process (a thread blocked on our stdin is left behind).
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || in_dst.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            master,
            saved,
            output: Some(output),
        })
    }

    /// Gives the container's terminal the size of ours.
    pub fn resize(&self) {
        copy_window_size(&self.master);
    }
}

fn copy_window_size(master: &OwnedFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a valid winsize on valid fds.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(o) = self.output.take() {
            let _ = o.join();
        }
        if let Some((fd, t)) = &self.saved {
            // SAFETY: a standard descriptor, still open.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
            let _ = termios::tcsetattr(b, termios::SetArg::TCSANOW, t);
        }
    }
}
