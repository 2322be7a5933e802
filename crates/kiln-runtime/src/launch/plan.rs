//! The process a container runs, decided from the image's config and the run's options
//! alone (no file system, no root): Docker's entrypoint/cmd rule, the environment with
//! its defaults, the user and the working directory. `kiln run` and build steps both
//! take their process from here.

use crate::error::{Result, RuntimeError};
use crate::launch::options::INIT_PATH;
use crate::user::{self, ExecUser};

pub use kiln_oci::types::DEFAULT_PATH;

/// What the run asks for, over the image's config.
#[derive(Clone, Debug, Default)]
pub struct ProcessRequest<'a> {
    /// `--entrypoint`: `Some("")` clears the image's.
    pub entrypoint: Option<&'a str>,
    /// The command after the image; empty takes the image's CMD.
    pub cmd: &'a [String],
    /// `-e`/`--env-file` entries already resolved to `KEY=VALUE`
    /// ([`crate::launch::options::resolve_env`]).
    pub env: &'a [(String, String)],
    /// `-u`; `None` takes the image's USER.
    pub user: Option<&'a str>,
    /// `-w`; `None` takes the image's WORKDIR.
    pub workdir: Option<&'a str>,
    /// The host name (also `HOSTNAME` in the environment).
    pub hostname: &'a str,
    /// Whether `--init` runs the command under docker-init.
    pub init: bool,
}

/// The container's first process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// argv, init first when asked for.
    pub args: Vec<String>,
    /// The command as the user sees it (without init).
    pub command: Vec<String>,
    /// `KEY=VALUE`, PATH first when the image sets none.
    pub env: Vec<String>,
    /// The working directory (`/` when none is set).
    pub cwd: String,
    /// Who it runs as.
    pub user: ExecUser,
}

impl Process {
    /// The `PATH` the command is looked up in.
    pub fn path_env(&self) -> &str {
        self.env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}

/// Decides the process from the image's config, the request, and the image's
/// /etc/passwd and /etc/group (`None` when it has none).
pub fn plan(
    image: &kiln_oci::ContainerConfig,
    req: &ProcessRequest,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Process> {
    let user_spec = req
        .user
        .map(str::to_string)
        .or(image.user.clone())
        .unwrap_or_default();
    let user = user::resolve(&user_spec, passwd, group)?;
    // Docker: `--entrypoint` replaces the image's and drops its CMD; `--entrypoint ""`
    // clears both; a command given replaces CMD.
    let entrypoint: Vec<String> = match req.entrypoint {
        Some("") => vec![],
        Some(e) => vec![e.to_string()],
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !req.cmd.is_empty() {
        req.cmd.to_vec()
    } else if req.entrypoint.is_some() {
        vec![]
    } else {
        image.cmd.clone().unwrap_or_default()
    };
    let command: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if command.is_empty() {
        return Err(RuntimeError::refused(
            "no command specified",
            "give a command after the image, or set CMD in the image",
        ));
    }
    let image_env = image.env.clone().unwrap_or_default();
    let mut env: Vec<String> = image_env.clone();
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or("").to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    if !image_env.iter().any(|e| e.starts_with("PATH=")) {
        set(format!("PATH={DEFAULT_PATH}"));
    }
    set(format!("HOSTNAME={}", req.hostname));
    if !image_env.iter().any(|e| e.starts_with("HOME=")) {
        set(format!("HOME={}", user.home));
    }
    for (k, v) in req.env {
        set(format!("{k}={v}"));
    }
    let cwd = req
        .workdir
        .map(str::to_string)
        .or(image.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    let args = if req.init {
        [INIT_PATH.to_string(), "--".to_string()]
            .into_iter()
            .chain(command.iter().cloned())
            .collect()
    } else {
        command.clone()
    };
    Ok(Process {
        args,
        command,
        env,
        cwd,
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> kiln_oci::ContainerConfig {
        kiln_oci::ContainerConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into(), "--port=1".into()]),
            env: Some(vec!["HOME=/data".into(), "MODE=prod".into()]),
            working_dir: Some("/app".into()),
            user: Some("app".into()),
            ..Default::default()
        }
    }
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nextra:x:20:app\n";

    fn req() -> ProcessRequest<'static> {
        ProcessRequest {
            hostname: "h",
            ..Default::default()
        }
    }

    #[test]
    fn image_entrypoint_and_cmd() {
        let p = plan(&image(), &req(), Some(PASSWD), Some(GROUP)).unwrap();
        assert_eq!(p.args, ["/entry", "serve", "--port=1"]);
        assert_eq!((p.user.uid, p.user.gid), (1000, 1000));
        assert_eq!(p.user.additional_gids, [20]);
        assert_eq!(p.cwd, "/app");
    }

    #[test]
    fn a_command_replaces_cmd_and_keeps_the_entrypoint() {
        let cmd = vec!["sh".to_string()];
        let p = plan(
            &image(),
            &ProcessRequest { cmd: &cmd, ..req() },
            Some(PASSWD),
            None,
        )
        .unwrap();
        assert_eq!(p.args, ["/entry", "sh"]);
    }

    #[test]
    fn entrypoint_override_drops_cmd_and_empty_clears() {
        let p = plan(
            &image(),
            &ProcessRequest {
                entrypoint: Some("/bin/ls"),
                ..req()
            },
            Some(PASSWD),
            None,
        )
        .unwrap();
        assert_eq!(p.args, ["/bin/ls"]);
        let cmd = vec!["echo".to_string(), "hi".to_string()];
        let p = plan(
            &image(),
            &ProcessRequest {
                entrypoint: Some(""),
                cmd: &cmd,
                ..req()
            },
            Some(PASSWD),
            None,
        )
        .unwrap();
        assert_eq!(p.args, ["echo", "hi"]);
        let e = plan(
            &image(),
            &ProcessRequest {
                entrypoint: Some(""),
                ..req()
            },
            Some(PASSWD),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no command specified"), "{e}");
        assert!(e.hint().is_some());
    }

    #[test]
    fn env_defaults_and_overrides() {
        let env = vec![
            ("MODE".to_string(), "dev".to_string()),
            ("X".to_string(), "1".to_string()),
        ];
        let p = plan(
            &image(),
            &ProcessRequest { env: &env, ..req() },
            Some(PASSWD),
            None,
        )
        .unwrap();
        // The image's HOME wins over the user's; PATH gets Docker's default; -e wins.
        assert_eq!(
            p.env,
            [
                "HOME=/data",
                &format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h",
                "MODE=dev",
                "X=1"
            ]
        );
        assert_eq!(p.path_env(), DEFAULT_PATH);
        let bare = kiln_oci::ContainerConfig {
            cmd: Some(vec!["true".into()]),
            env: Some(vec!["PATH=/opt/bin".into()]),
            ..Default::default()
        };
        let p = plan(&bare, &req(), None, None).unwrap();
        assert_eq!(p.env, ["PATH=/opt/bin", "HOSTNAME=h", "HOME=/root"]);
        assert_eq!(p.cwd, "/");
        assert_eq!((p.user.uid, p.user.gid), (0, 0));
    }

    #[test]
    fn user_and_workdir_flags_win() {
        let p = plan(
            &image(),
            &ProcessRequest {
                user: Some("0:20"),
                workdir: Some("/tmp"),
                ..req()
            },
            Some(PASSWD),
            Some(GROUP),
        )
        .unwrap();
        assert_eq!((p.user.uid, p.user.gid, p.cwd.as_str()), (0, 20, "/tmp"));
        let e = plan(
            &image(),
            &ProcessRequest {
                user: Some("nobody"),
                ..req()
            },
            Some(PASSWD),
            None,
        );
        assert!(e.is_err());
    }

    #[test]
    fn init_runs_first_and_the_command_stays_as_given() {
        let p = plan(
            &image(),
            &ProcessRequest {
                init: true,
                ..req()
            },
            Some(PASSWD),
            None,
        )
        .unwrap();
        assert_eq!(p.args, [INIT_PATH, "--", "/entry", "serve", "--port=1"]);
        assert_eq!(p.command, ["/entry", "serve", "--port=1"]);
    }
}
