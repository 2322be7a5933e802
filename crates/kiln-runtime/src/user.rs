//! `-u/--user` resolution against the image's /etc/passwd and /etc/group, as Docker does:
//! `name`, `uid`, `name:group`, `uid:gid`; a numeric uid missing from passwd is allowed.

use crate::error::{Result, RuntimeError};

/// Who the container process runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecUser {
    /// User ID: from passwd for a name, else the number given (0 for root).
    pub uid: u32,
    /// Primary group ID: the group asked for, else the user's passwd entry's (0 if none).
    pub gid: u32,
    /// Supplementary groups: those of /etc/group listing the user by name, sorted, without
    /// `gid`; none when a group was given explicitly.
    pub additional_gids: Vec<u32>,
    /// Home directory from passwd (`/` for a uid passwd lacks): `HOME` unless the image sets it.
    pub home: String,
}

/// The records of a passwd or group file, split at `:`: those with at least `fields`
/// fields, comment lines left out.
fn records(file: Option<&str>, fields: usize) -> Vec<Vec<&str>> {
    file.unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= fields)
        .collect()
}

/// Resolves `spec` (empty means root) with the contents of passwd and group files
/// (`None` when the image has none).
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<ExecUser> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "root" } else { user };
    let users = records(passwd, 7);
    let groups = records(group, 4);
    let entry = users.iter().find(|f| f[0] == user).or_else(|| {
        user.parse::<u32>()
            .ok()
            .and_then(|u| users.iter().find(|f| f[2].parse() == Ok(u)))
    });
    let (uid, mut gid, name, home) = match (entry, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[0].to_string(),
            f[5].to_string(),
        ),
        (None, Ok(uid)) => (uid, 0, String::new(), "/".to_string()),
        (None, Err(_)) if user == "root" => (0, 0, "root".into(), "/root".into()),
        (None, Err(_)) => {
            return Err(RuntimeError::UnknownUser {
                user: user.to_string(),
            })
        }
    };
    if let Some(g) = grp {
        gid = match groups.iter().find(|f| f[0] == g) {
            Some(f) => f[2].parse().unwrap_or(0),
            None => g.parse().map_err(|_| RuntimeError::UnknownGroup {
                group: g.to_string(),
            })?,
        };
    }
    let mut additional_gids: Vec<u32> = if name.is_empty() || grp.is_some() {
        Vec::new()
    } else {
        groups
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .collect()
    };
    additional_gids.retain(|g| *g != gid);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nvideo:x:44:app\nstaff:x:50:app,root\n";

    #[test]
    fn resolves_like_docker() {
        let r = |s| resolve(s, Some(PASSWD), Some(GROUP));
        assert_eq!(r("").unwrap().uid, 0);
        let app = r("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.additional_gids.clone()),
            (1000, 1000, vec![44, 50])
        );
        assert_eq!(app.home, "/home/app");
        assert_eq!(r("1000").unwrap().home, "/home/app");
        assert_eq!(r("4242").unwrap().uid, 4242);
        assert_eq!(r("app:video").unwrap().gid, 44);
        assert_eq!(r("app:77").unwrap().gid, 77);
        assert!(matches!(r("nobody"), Err(RuntimeError::UnknownUser { .. })));
        assert!(matches!(
            r("app:nogroup"),
            Err(RuntimeError::UnknownGroup { .. })
        ));
        assert_eq!(resolve("root", None, None).unwrap().uid, 0);
    }
}
