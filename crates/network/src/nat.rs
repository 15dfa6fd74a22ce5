//! Outbound NAT for the bridge networks berth writes: one masquerade chain per network,
//! made once per boot, instead of the bridge plugin's `ipMasq`.
//!
//! Why not `ipMasq`: the bridge plugin makes a NAT chain per container, with 9 `iptables`
//! processes on ADD and 6 on DEL (about 4 ms each here), which was a third of a
//! `run --rm` on the default network. The rules it makes are the same for every container
//! of a network but for the source address, so berth makes them once, for the subnet:
//!
//! ```text
//! -t nat -N BERTH-NAT-<hash of the conflist's path>
//! -A BERTH-NAT-… -d SUBNET -j ACCEPT                     traffic inside the network
//! -A BERTH-NAT-… ! -d 224.0.0.0/4 -j MASQUERADE          (ff00::/8 for IPv6)
//! -A POSTROUTING -s SUBNET -m comment --comment "berth network PATH" -j BERTH-NAT-…
//! ```
//!
//! The chain is named after the conflist's path, not the network's name, so berths with
//! different roots (tests, a second instance) each own their chain of the same-named
//! network: removing one's rules never breaks the other's NAT.
//!
//! A conflist asks for this with `"berth": {"masquerade": true}` at its top level (the
//! bridge plugin then has `ipMasq: false`); conflists without it, such as those older
//! berths wrote with `ipMasq: true`, are left to their plugins.
//!
//! Rules live in the kernel and so do not survive a reboot, while the conflist does: a
//! marker file under the run root (a tmpfs, emptied by a reboot like the rules) says the
//! rules were made this boot. [`ensure`] is called on every attach and costs one `stat`
//! once the marker exists; [`remove`] runs with `network rm`.

use crate::{Network, NetworkConfig, NetworkError};
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether berth (not the bridge plugin) masquerades for this network.
pub fn managed(net: &Network) -> bool {
    net.config
        .extra
        .get("berth")
        .and_then(|b| b.get("masquerade"))
        .and_then(serde_json::Value::as_bool)
        == Some(true)
}

/// The conflist's top-level key that hands a network's outbound NAT to berth.
pub(crate) fn conflist_key() -> (String, serde_json::Value) {
    ("berth".into(), serde_json::json!({"masquerade": true}))
}

/// Makes the network's NAT rules unless this boot already has them. The caller holds
/// nothing; this takes the network config lock when it has work to do, so two first
/// attaches after a boot do not both write the chain, and `network rm` cannot interleave.
pub(crate) fn ensure(cfg: &NetworkConfig, net: &Network) -> Result<(), NetworkError> {
    if !managed(net) {
        return Ok(());
    }
    let marker = cfg.nat_dir.join(&net.name);
    if marker.exists() {
        return Ok(());
    }
    let _lock = crate::network::lock_config_dir(cfg)?;
    if marker.exists() {
        return Ok(());
    }
    for subnet in &net.subnets {
        add_rules(&net.path, subnet)?;
    }
    std::fs::create_dir_all(&cfg.nat_dir)
        .and_then(|()| std::fs::write(&marker, b""))
        .map_err(|source| NetworkError::Config {
            path: marker,
            source,
        })
}

/// Removes the network's NAT rules (those it can find: after a reboot there are none)
/// and the marker. `network rm` calls it holding the network config lock; tests call it
/// to leave the host as they found it.
pub fn remove(cfg: &NetworkConfig, net: &Network) -> Result<(), NetworkError> {
    if !managed(net) {
        return Ok(());
    }
    for subnet in &net.subnets {
        remove_rules(&net.path, subnet)?;
    }
    let marker = cfg.nat_dir.join(&net.name);
    match std::fs::remove_file(&marker) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetworkError::Config {
            path: marker,
            source,
        }),
    }
}

/// `BERTH-NAT-` and 16 hex digits of the SHA-256 of the network's conflist path:
/// iptables chain names are at most 28 characters and paths are not bounded.
pub fn chain_name(conflist: &Path) -> String {
    let digest = Sha256::digest(conflist.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("BERTH-NAT-{hex}")
}

struct Family {
    iptables: &'static str,
    restore: &'static str,
    multicast: &'static str,
}

fn family(subnet: &IpNet) -> Family {
    match subnet {
        IpNet::V4(_) => Family {
            iptables: "iptables",
            restore: "iptables-restore",
            multicast: "224.0.0.0/4",
        },
        IpNet::V6(_) => Family {
            iptables: "ip6tables",
            restore: "ip6tables-restore",
            multicast: "ff00::/8",
        },
    }
}

fn jump(conflist: &Path, subnet: &IpNet) -> Vec<String> {
    let mut comment = format!("berth network {}", conflist.display());
    if comment.len() > 255 {
        // The comment match's limit; the chain name still tells networks apart.
        comment = "berth network".into();
    }
    [
        "-s",
        &subnet.to_string(),
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        &chain_name(conflist),
    ]
    .map(str::to_string)
    .to_vec()
}

fn add_rules(conflist: &Path, subnet: &IpNet) -> Result<(), NetworkError> {
    let fam = family(subnet);
    for tool in [fam.iptables, fam.restore] {
        if which(tool).is_none() {
            return Err(failed(
                tool,
                "",
                "not found in PATH, /usr/sbin or /sbin (Debian: apt-get install iptables)",
            ));
        }
    }
    let chain = chain_name(conflist);
    // One restore makes (or, with --noflush, empties and refills) the chain atomically;
    // the jump from POSTROUTING is appended only if missing, which restore cannot test.
    let rules = format!(
        "*nat\n:{chain} - [0:0]\n-A {chain} -d {subnet} -j ACCEPT\n\
         -A {chain} ! -d {multicast} -j MASQUERADE\nCOMMIT\n",
        multicast = fam.multicast
    );
    restore(fam.restore, &rules)?;
    let jump = jump(conflist, subnet);
    if !iptables(fam.iptables, "-C", &jump)?.success {
        let out = iptables(fam.iptables, "-A", &jump)?;
        if !out.success {
            return Err(failed(fam.iptables, "-A POSTROUTING", &out.stderr));
        }
    }
    Ok(())
}

fn remove_rules(conflist: &Path, subnet: &IpNet) -> Result<(), NetworkError> {
    let fam = family(subnet);
    if which(fam.iptables).is_none() {
        // Without the tool nothing can have made the rules.
        return Ok(());
    }
    let chain = chain_name(conflist);
    let jump = jump(conflist, subnet);
    // Appended once, but an admin's `iptables-restore` may have doubled it: delete
    // until none is left. Exit 1 is "no such rule", 2 "no such chain": both mean gone.
    for _ in 0..16 {
        if !iptables(fam.iptables, "-D", &jump)?.success {
            break;
        }
    }
    let exists = Command::new(tool(fam.iptables))
        .args(["-w", "-t", "nat", "-S", &chain])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| failed(fam.iptables, "-S", &e.to_string()))?
        .success();
    if exists {
        for op in ["-F", "-X"] {
            let out = run(Command::new(tool(fam.iptables)).args(["-w", "-t", "nat", op, &chain]))
                .map_err(|e| failed(fam.iptables, op, &e.to_string()))?;
            if !out.success {
                return Err(failed(fam.iptables, &format!("{op} {chain}"), &out.stderr));
            }
        }
    }
    Ok(())
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The tool's path: plugins and berth may run with a PATH that lacks the sbin dirs.
fn tool(name: &str) -> std::path::PathBuf {
    which(name).unwrap_or_else(|| name.into())
}

struct Outcome {
    success: bool,
    stderr: String,
}

fn run(cmd: &mut Command) -> std::io::Result<Outcome> {
    let out = cmd.stdin(Stdio::null()).stdout(Stdio::null()).output()?;
    Ok(Outcome {
        success: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

fn iptables(tool: &str, op: &str, rule: &[String]) -> Result<Outcome, NetworkError> {
    run(Command::new(self::tool(tool))
        .args(["-w", "-t", "nat", op, "POSTROUTING"])
        .args(rule))
    .map_err(|e| failed(tool, op, &e.to_string()))
}

fn restore(tool: &str, rules: &str) -> Result<(), NetworkError> {
    let mut child = Command::new(self::tool(tool))
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(tool, "--noflush", &e.to_string()))?;
    let wrote = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(rules.as_bytes());
    let out = child
        .wait_with_output()
        .map_err(|e| failed(tool, "--noflush", &e.to_string()))?;
    if let Err(e) = wrote {
        return Err(failed(tool, "--noflush", &e.to_string()));
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            tool,
            "--noflush",
            String::from_utf8_lossy(&out.stderr).trim(),
        ))
    }
}

fn failed(tool: &str, what: &str, output: &str) -> NetworkError {
    NetworkError::Nat {
        command: format!("{tool} {what}").trim_end().to_string(),
        output: output.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_fit_iptables_and_differ_by_conflist() {
        let a = chain_name(Path::new("/var/lib/berth/networks/berth.conflist"));
        let b = chain_name(Path::new("/tmp/t/networks/berth.conflist"));
        let c = chain_name(&Path::new("/").join("x".repeat(300)));
        assert!([&a, &b, &c].iter().all(|n| n.len() <= 28), "{a} {b} {c}");
        assert!(a != b && b != c);
        assert_eq!(
            a,
            chain_name(Path::new("/var/lib/berth/networks/berth.conflist"))
        );
        let long = jump(
            &Path::new("/").join("y".repeat(300)),
            &"10.1.0.0/16".parse().expect("cidr"),
        );
        assert!(long.iter().all(|a| a.len() <= 255));
    }
}
