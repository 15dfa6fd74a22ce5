//! The host's iptables rules for the bridge networks berth writes: outbound NAT and
//! forwarding, one chain of each per network, made once per boot. They replace the
//! bridge plugin's `ipMasq` and the firewall plugin, which make rules per container.
//!
//! Why not the plugins: each makes its rules with one `iptables` process per rule and
//! per check (the bridge plugin 9 on ADD and 6 on DEL for NAT; the firewall plugin 10 on
//! ADD and 4 on DEL, `-D` waiting ~10 ms on nf_tables here), which was two thirds of a
//! `run --rm` on the default network. Their rules differ between the containers of a
//! network only in the address, so berth makes them once, for the subnet, as netavark
//! and docker do:
//!
//! ```text
//! -t nat -N BERTH-NAT-<hash of the conflist's path>            (masquerade)
//! -A BERTH-NAT-… -d SUBNET -j ACCEPT                            traffic inside the network
//! -A BERTH-NAT-… ! -d 224.0.0.0/4 -j MASQUERADE                 (ff00::/8 for IPv6)
//! -A POSTROUTING -s SUBNET -m comment --comment "berth network PATH" -j BERTH-NAT-…
//!
//! -t filter -N BERTH-FWD-<hash>                                 (forward "open")
//! -A BERTH-FWD-… -d SUBNET -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//! -A BERTH-FWD-… -s SUBNET -j ACCEPT
//! -I FORWARD -m comment --comment "berth network PATH" -j BERTH-FWD-…
//! ```
//!
//! The forward rules are the firewall plugin's two, for the subnet: a host whose
//! FORWARD policy is DROP (docker sets that) still forwards the network's traffic. An
//! internal network (forward "internal") instead accepts only traffic between its own
//! addresses and drops the rest that crosses its edge, in either direction. The jump is
//! inserted first in FORWARD so that a DROP further down does not see the network's
//! packets; an admin who wants to filter them inserts rules above it.
//!
//! The chains are named after the conflist's path, not the network's name, so berths with
//! different roots (tests, a second instance) each own their chains of the same-named
//! network: removing one's rules never breaks the other's.
//!
//! A conflist asks for this with `"berth": {"masquerade": BOOL, "forward": "open" |
//! "internal"}` at its top level. Conflists without `forward` (older berths wrote the
//! firewall plugin into their list) and without `masquerade: true` (the bridge plugin's
//! `ipMasq` then) are left to their plugins.
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

/// What berth forwards for a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// To and from anywhere (replies only, inbound).
    Open,
    /// Between the network's own addresses only.
    Internal,
}

/// The rules berth keeps for a network, from its conflist's `berth` key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub masquerade: bool,
    pub forward: Option<Forward>,
}

impl Policy {
    fn any(self) -> bool {
        self.masquerade || self.forward.is_some()
    }
}

pub fn policy(net: &Network) -> Policy {
    let key = net.config.extra.get("berth");
    let get = |k: &str| key.and_then(|b| b.get(k));
    Policy {
        masquerade: get("masquerade").and_then(serde_json::Value::as_bool) == Some(true),
        forward: match get("forward").and_then(serde_json::Value::as_str) {
            Some("open") => Some(Forward::Open),
            Some("internal") => Some(Forward::Internal),
            _ => None,
        },
    }
}

/// The conflist's top-level key that hands a network's NAT and forwarding to berth: an
/// internal network is not masqueraded and forwards only inside itself.
pub(crate) fn conflist_key(internal: bool) -> (String, serde_json::Value) {
    let forward = if internal { "internal" } else { "open" };
    (
        "berth".into(),
        serde_json::json!({"masquerade": !internal, "forward": forward}),
    )
}

/// Makes the network's rules unless this boot already has them. The caller holds
/// nothing; this takes the network config lock when it has work to do, so two first
/// attaches after a boot do not both write the chains, and `network rm` cannot interleave.
pub(crate) fn ensure(cfg: &NetworkConfig, net: &Network) -> Result<(), NetworkError> {
    if !policy(net).any() {
        return Ok(());
    }
    let marker = cfg.rules_dir.join(&net.name);
    if marker.exists() {
        return Ok(());
    }
    let _lock = crate::network::lock_config_dir(cfg)?;
    if marker.exists() {
        return Ok(());
    }
    make(cfg, net)
}

fn make(cfg: &NetworkConfig, net: &Network) -> Result<(), NetworkError> {
    let policy = policy(net);
    for subnets in by_family(&net.subnets) {
        add_rules(&net.path, &subnets, policy)?;
    }
    let marker = cfg.rules_dir.join(&net.name);
    std::fs::create_dir_all(&cfg.rules_dir)
        .and_then(|()| std::fs::write(&marker, b""))
        .map_err(|source| NetworkError::Config {
            path: marker,
            source,
        })
}

/// Removes the network's rules (those it can find: after a reboot there are none) and
/// the marker. `network rm` calls it holding the network config lock; tests call it to
/// leave the host as they found it.
pub fn remove(cfg: &NetworkConfig, net: &Network) -> Result<(), NetworkError> {
    let policy = policy(net);
    if !policy.any() {
        return Ok(());
    }
    for subnets in by_family(&net.subnets) {
        remove_rules(&net.path, &subnets, policy)?;
    }
    let marker = cfg.rules_dir.join(&net.name);
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
pub fn nat_chain(conflist: &Path) -> String {
    format!("BERTH-NAT-{}", path_hash(conflist))
}

/// `BERTH-FWD-` and the same hash as [`nat_chain`].
pub fn forward_chain(conflist: &Path) -> String {
    format!("BERTH-FWD-{}", path_hash(conflist))
}

fn path_hash(conflist: &Path) -> String {
    let digest = Sha256::digest(conflist.as_os_str().as_encoded_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
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

/// A jump from a built-in chain into one of berth's, as `iptables` arguments after the
/// table, the operation and the built-in chain's name.
struct Jump {
    table: &'static str,
    from: &'static str,
    rule: Vec<String>,
}

fn comment(conflist: &Path) -> String {
    let comment = format!("berth network {}", conflist.display());
    if comment.len() > 255 {
        // The comment match's limit; the chain name still tells networks apart.
        return "berth network".into();
    }
    comment
}

fn nat_jump(conflist: &Path, subnet: &IpNet) -> Jump {
    Jump {
        table: "nat",
        from: "POSTROUTING",
        rule: [
            "-s",
            &subnet.to_string(),
            "-m",
            "comment",
            "--comment",
            &comment(conflist),
            "-j",
            &nat_chain(conflist),
        ]
        .map(str::to_string)
        .to_vec(),
    }
}

fn forward_jump(conflist: &Path) -> Jump {
    Jump {
        table: "filter",
        from: "FORWARD",
        rule: [
            "-m",
            "comment",
            "--comment",
            &comment(conflist),
            "-j",
            &forward_chain(conflist),
        ]
        .map(str::to_string)
        .to_vec(),
    }
}

/// The subnets of one address family each (IPv4, then IPv6), none empty: a family's
/// chains are one per table and hold the rules of all its subnets.
fn by_family(subnets: &[IpNet]) -> Vec<Vec<IpNet>> {
    let (v4, v6): (Vec<IpNet>, Vec<IpNet>) =
        subnets.iter().partition(|s| matches!(s, IpNet::V4(_)));
    [v4, v6].into_iter().filter(|f| !f.is_empty()).collect()
}

/// The `iptables-restore --noflush` input that makes (or empties and refills) the
/// network's chains for its `subnets` of one family. The whole family at once: a
/// restore empties a chain it names, so one per subnet would keep only the last.
fn restore_input(conflist: &Path, subnets: &[IpNet], policy: Policy) -> String {
    let mut out = String::new();
    if policy.masquerade {
        let chain = nat_chain(conflist);
        let multicast = family(&subnets[0]).multicast;
        out += &format!("*nat\n:{chain} - [0:0]\n");
        for subnet in subnets {
            out += &format!("-A {chain} -d {subnet} -j ACCEPT\n");
        }
        out += &format!("-A {chain} ! -d {multicast} -j MASQUERADE\nCOMMIT\n");
    }
    if let Some(forward) = policy.forward {
        let chain = forward_chain(conflist);
        out += &format!("*filter\n:{chain} - [0:0]\n");
        match forward {
            Forward::Open => {
                for subnet in subnets {
                    out += &format!(
                        "-A {chain} -d {subnet} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                         -A {chain} -s {subnet} -j ACCEPT\n"
                    );
                }
            }
            Forward::Internal => {
                for from in subnets {
                    for to in subnets {
                        out += &format!("-A {chain} -s {from} -d {to} -j ACCEPT\n");
                    }
                }
                for subnet in subnets {
                    out += &format!(
                        "-A {chain} -s {subnet} -j DROP\n-A {chain} -d {subnet} -j DROP\n"
                    );
                }
            }
        }
        out += "COMMIT\n";
    }
    out
}

fn jumps(conflist: &Path, subnets: &[IpNet], policy: Policy) -> Vec<Jump> {
    let mut jumps = Vec::new();
    if policy.masquerade {
        jumps.extend(subnets.iter().map(|s| nat_jump(conflist, s)));
    }
    if policy.forward.is_some() {
        jumps.push(forward_jump(conflist));
    }
    jumps
}

fn add_rules(conflist: &Path, subnets: &[IpNet], policy: Policy) -> Result<(), NetworkError> {
    let fam = family(&subnets[0]);
    for tool in [fam.iptables, fam.restore] {
        if which(tool).is_none() {
            return Err(failed(
                tool,
                "",
                "not found in PATH, /usr/sbin or /sbin (Debian: apt-get install iptables)",
            ));
        }
    }
    // One restore makes (or, with --noflush, empties and refills) the chains atomically;
    // the jumps are added only if missing, which restore cannot test.
    restore(fam.restore, &restore_input(conflist, subnets, policy))?;
    for jump in jumps(conflist, subnets, policy) {
        if !iptables(fam.iptables, jump.table, "-C", jump.from, &jump.rule)?.success {
            // NAT goes last in POSTROUTING (after anyone's exemptions); forwarding goes
            // first in FORWARD (before a DROP).
            let op = if jump.from == "FORWARD" { "-I" } else { "-A" };
            let out = iptables(fam.iptables, jump.table, op, jump.from, &jump.rule)?;
            if !out.success {
                return Err(failed(
                    fam.iptables,
                    &format!("{op} {}", jump.from),
                    &out.stderr,
                ));
            }
        }
    }
    Ok(())
}

fn remove_rules(conflist: &Path, subnets: &[IpNet], policy: Policy) -> Result<(), NetworkError> {
    let fam = family(&subnets[0]);
    if which(fam.iptables).is_none() {
        // Without the tool nothing can have made the rules.
        return Ok(());
    }
    for jump in jumps(conflist, subnets, policy) {
        // Added once, but an admin's `iptables-restore` may have doubled it: delete
        // until none is left. Exit 1 is "no such rule", 2 "no such chain": both gone.
        for _ in 0..16 {
            if !iptables(fam.iptables, jump.table, "-D", jump.from, &jump.rule)?.success {
                break;
            }
        }
    }
    let mut chains = Vec::new();
    if policy.masquerade {
        chains.push(("nat", nat_chain(conflist)));
    }
    if policy.forward.is_some() {
        chains.push(("filter", forward_chain(conflist)));
    }
    for (table, chain) in chains {
        let exists = Command::new(tool(fam.iptables))
            .args(["-w", "-t", table, "-S", &chain])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| failed(fam.iptables, "-S", &e.to_string()))?
            .success();
        if !exists {
            continue;
        }
        for op in ["-F", "-X"] {
            let out = run(Command::new(tool(fam.iptables)).args(["-w", "-t", table, op, &chain]))
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

fn iptables(
    tool: &str,
    table: &str,
    op: &str,
    chain: &str,
    rule: &[String],
) -> Result<Outcome, NetworkError> {
    run(Command::new(self::tool(tool))
        .args(["-w", "-t", table, op, chain])
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
    NetworkError::Rules {
        command: format!("{tool} {what}").trim_end().to_string(),
        output: output.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_fit_iptables_and_differ_by_conflist() {
        let a = nat_chain(Path::new("/var/lib/berth/networks/berth.conflist"));
        let b = nat_chain(Path::new("/tmp/t/networks/berth.conflist"));
        let c = forward_chain(&Path::new("/").join("x".repeat(300)));
        assert!([&a, &b, &c].iter().all(|n| n.len() <= 28), "{a} {b} {c}");
        assert!(a != b && b != c);
        assert_eq!(
            a,
            nat_chain(Path::new("/var/lib/berth/networks/berth.conflist"))
        );
        let long = nat_jump(
            &Path::new("/").join("y".repeat(300)),
            &"10.1.0.0/16".parse().expect("cidr"),
        );
        assert!(long.rule.iter().all(|a| a.len() <= 255));
    }

    #[test]
    fn restore_input_per_policy() {
        let path = Path::new("/r/networks/n.conflist");
        let subnet: IpNet = "10.7.0.0/16".parse().expect("cidr");
        let (nat, fwd) = (nat_chain(path), forward_chain(path));
        let open = Policy {
            masquerade: true,
            forward: Some(Forward::Open),
        };
        assert_eq!(
            restore_input(path, &[subnet], open),
            format!(
                "*nat\n:{nat} - [0:0]\n-A {nat} -d 10.7.0.0/16 -j ACCEPT\n\
                 -A {nat} ! -d 224.0.0.0/4 -j MASQUERADE\nCOMMIT\n\
                 *filter\n:{fwd} - [0:0]\n\
                 -A {fwd} -d 10.7.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A {fwd} -s 10.7.0.0/16 -j ACCEPT\nCOMMIT\n"
            )
        );
        let internal = Policy {
            masquerade: false,
            forward: Some(Forward::Internal),
        };
        let input = restore_input(path, &[subnet], internal);
        assert!(!input.contains("*nat"), "{input}");
        assert!(
            input.contains(&format!("-A {fwd} -s 10.7.0.0/16 -d 10.7.0.0/16 -j ACCEPT\n-A {fwd} -s 10.7.0.0/16 -j DROP\n-A {fwd} -d 10.7.0.0/16 -j DROP\n")),
            "{input}"
        );
        let v6: IpNet = "fd00:7::/64".parse().expect("cidr");
        assert!(restore_input(path, &[v6], open).contains("! -d ff00::/8 -j MASQUERADE"));
        assert_eq!(
            jumps(path, &[subnet], internal)
                .iter()
                .map(|j| j.from)
                .collect::<Vec<_>>(),
            ["FORWARD"]
        );
        assert!(restore_input(path, &[subnet], Policy::default()).is_empty());

        // Two subnets of a family: one restore names each chain once, with both.
        let other: IpNet = "10.8.0.0/16".parse().expect("cidr");
        let both = restore_input(path, &[subnet, other], open);
        assert_eq!(both.matches(&format!(":{nat} ")).count(), 1, "{both}");
        assert_eq!(both.matches(&format!(":{fwd} ")).count(), 1, "{both}");
        for s in ["10.7.0.0/16", "10.8.0.0/16"] {
            assert!(
                both.contains(&format!("-A {nat} -d {s} -j ACCEPT")),
                "{both}"
            );
            assert!(
                both.contains(&format!("-A {fwd} -s {s} -j ACCEPT")),
                "{both}"
            );
        }
        assert_eq!(jumps(path, &[subnet, other], open).len(), 3);
        assert_eq!(
            by_family(&[subnet, v6, other]),
            vec![vec![subnet, other], vec![v6]]
        );
    }
}
