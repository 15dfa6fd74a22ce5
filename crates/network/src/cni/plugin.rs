//! Running one plugin binary: the CNI exec protocol (spec 1.0, "Section 3: Execution
//! Protocol"). Parameters go in `CNI_*` environment variables, the network config on
//! stdin; the plugin prints a result (ADD, VERSION) or nothing (DEL, CHECK) on stdout
//! and exits 0, or prints an error object and exits non-zero.

use super::result::{error_code_meaning, PluginErrorJson};
use super::CniError;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

/// `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runtime parameters of one invocation (everything but the config).
#[derive(Clone, Debug)]
pub struct Invocation<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `CNI_ARGS`: `K=V;K=V`.
    pub args: &'a str,
    /// Plugin search path, also passed as `CNI_PATH` (IPAM plugins are found through it).
    pub plugin_dirs: &'a [PathBuf],
}

/// Finds the binary named by a plugin config's `type` in the plugin dirs.
pub fn find(plugin_dirs: &[PathBuf], plugin: &str) -> Result<PathBuf, CniError> {
    if plugin.is_empty() || plugin.contains('/') || plugin == "." || plugin == ".." {
        return Err(CniError::InvalidPluginName {
            plugin: plugin.to_string(),
        });
    }
    plugin_dirs
        .iter()
        .map(|dir| dir.join(plugin))
        .find(|path| path.is_file())
        .ok_or_else(|| CniError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: plugin_dirs.to_vec(),
        })
}

/// Runs `plugin` with `command`; returns the parsed stdout (None when empty, as DEL
/// and CHECK print nothing).
pub fn exec(
    plugin: &str,
    command: Command,
    inv: &Invocation<'_>,
    stdin: &[u8],
) -> Result<Option<Value>, CniError> {
    let path = find(inv.plugin_dirs, plugin)?;
    let cni_path =
        std::env::join_paths(inv.plugin_dirs).map_err(|_| CniError::InvalidPluginDir {
            dirs: inv.plugin_dirs.to_vec(),
        })?;
    let mut child = Process::new(&path)
        .env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.args)
        .env("CNI_PATH", cni_path)
        // Plugins run iptables, ip and friends: they need a PATH even when ours is bare.
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CniError::Spawn {
            plugin: plugin.to_string(),
            path: path.clone(),
            source,
        })?;
    // Write stdin from a thread: a plugin that prints before reading everything must
    // not deadlock us on a full pipe.
    let output = std::thread::scope(|scope| {
        if let Some(mut pipe) = child.stdin.take() {
            scope.spawn(move || {
                // A plugin that exits without reading its config closes the pipe (EPIPE);
                // its exit status reports the real problem.
                let _ = pipe.write_all(stdin);
            });
        }
        child.wait_with_output()
    })
    .map_err(|source| CniError::Spawn {
        plugin: plugin.to_string(),
        path: path.clone(),
        source,
    })?;

    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(
            match serde_json::from_str::<PluginErrorJson>(stdout.trim()) {
                Ok(err) if !err.msg.is_empty() || err.code != 0 => CniError::Failed {
                    plugin: plugin.to_string(),
                    command,
                    code: err.code,
                    meaning: error_code_meaning(err.code),
                    msg: err.msg,
                    details: err.details,
                },
                _ => CniError::Crashed {
                    plugin: plugin.to_string(),
                    command,
                    status: output.status.to_string(),
                    output: format!(
                        "{}{}",
                        stdout.trim(),
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                },
            },
        );
    }
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(stdout.trim())
        .map(Some)
        .map_err(|source| CniError::BadOutput {
            plugin: plugin.to_string(),
            command,
            output: stdout.trim().to_string(),
            source,
        })
}

/// `VERSION`: the spec versions a plugin supports.
pub fn versions(plugin_dirs: &[PathBuf], plugin: &str) -> Result<Vec<String>, CniError> {
    let inv = Invocation {
        container_id: "",
        netns: Path::new(""),
        ifname: "",
        args: "",
        plugin_dirs,
    };
    let out = exec(plugin, Command::Version, &inv, br#"{"cniVersion":"1.0.0"}"#)?;
    let supported = out
        .as_ref()
        .and_then(|v| v.get("supportedVersions"))
        .and_then(Value::as_array)
        .ok_or_else(|| CniError::MissingResult {
            plugin: plugin.to_string(),
            command: Command::Version,
        })?;
    Ok(supported
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Writes an executable script plugin into `dir`.
    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write plugin");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// exec, retried while another test thread's fork holds the script open for
    /// writing (ETXTBSY), which only a test writing and running scripts can hit.
    fn run(
        dirs: &[PathBuf],
        plugin: &str,
        command: Command,
        stdin: &[u8],
    ) -> Result<Option<Value>, CniError> {
        let inv = Invocation {
            container_id: "c1",
            netns: Path::new("/run/netns/c1"),
            ifname: "eth0",
            args: "IgnoreUnknown=1",
            plugin_dirs: dirs,
        };
        not_busy(plugin, || exec(plugin, command, &inv, stdin))
    }

    fn not_busy<T>(plugin: &str, f: impl Fn() -> Result<T, CniError>) -> Result<T, CniError> {
        for _ in 0..50 {
            match f() {
                Err(CniError::Spawn { source, .. })
                    if source.kind() == std::io::ErrorKind::ExecutableFileBusy =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
        panic!("{plugin} stayed busy")
    }

    #[test]
    fn exec_protocol() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        let dirs = vec![a.clone(), b.clone()];
        // Echoes its environment and stdin back as a result.
        script(
            &b,
            "echo",
            r#"in=$(cat); printf '{"cniVersion":"1.0.0","env":"%s %s %s %s %s %s","stdin":%s}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$in""#,
        );
        let out = run(&dirs, "echo", Command::Add, br#"{"x":1}"#)
            .expect("ok")
            .expect("a result");
        let env = format!(
            "ADD c1 /run/netns/c1 eth0 IgnoreUnknown=1 {}:{}",
            a.display(),
            b.display()
        );
        assert_eq!(out["env"], env.as_str());
        assert_eq!(out["stdin"]["x"], 1);

        script(&a, "quiet", "cat >/dev/null");
        assert_eq!(run(&dirs, "quiet", Command::Del, b"{}").expect("ok"), None);

        script(
            &a,
            "fails",
            r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no bridge"}'; exit 1"#,
        );
        let err = run(&dirs, "fails", Command::Add, b"{}").expect_err("fails");
        assert_eq!(
            err.to_string(),
            "CNI plugin \"fails\" ADD failed: bad config: no bridge (CNI error code 7: invalid network config)"
        );

        script(&a, "crashes", "echo panic: oops >&2; exit 2");
        let err = run(&dirs, "crashes", Command::Del, b"{}").expect_err("crashes");
        assert!(matches!(err, CniError::Crashed { .. }), "{err:?}");
        assert!(err.to_string().contains("panic: oops"), "{err}");

        script(&a, "garbage", "echo not json");
        let err = run(&dirs, "garbage", Command::Add, b"{}").expect_err("garbage");
        assert!(matches!(err, CniError::BadOutput { .. }), "{err:?}");

        script(
            &a,
            "version",
            r#"echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'"#,
        );
        assert_eq!(
            not_busy("version", || versions(&dirs, "version")).expect("versions"),
            ["0.4.0", "1.0.0"]
        );

        assert!(matches!(
            run(&dirs, "missing", Command::Add, b"{}"),
            Err(CniError::PluginNotFound { .. })
        ));
        assert!(matches!(
            run(&dirs, "../b/echo", Command::Add, b"{}"),
            Err(CniError::InvalidPluginName { .. })
        ));
    }
}
