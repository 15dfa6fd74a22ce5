//! `inspect`: a container in docker's `docker inspect` shape, gathered from what berth
//! keeps: the record (state, restart policy, ports), the bundle's config.json (the
//! process, resources, mounts) and the network attachment cache (address, gateway,
//! MAC). Keys are docker's so scripts written against docker read it unchanged.

use crate::container::{Container, ContainerError, Engine, Status};
use crate::network::NetworkMode;
use crate::restart::RestartPolicy;
use serde_json::{json, Map, Value};
use std::time::{Duration, UNIX_EPOCH};

/// docker's zero time, for "never".
const NEVER: &str = "0001-01-01T00:00:00Z";

fn rfc3339(secs: Option<u64>) -> String {
    match secs {
        Some(s) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string()
        }
        None => NEVER.into(),
    }
}

/// `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` are berth's, not the user's.
const OWN_FILES: &[&str] = &["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"];

impl Engine {
    /// The container `key` (id, id prefix or name) as `docker inspect` shows it.
    pub fn inspect(&self, key: &str) -> Result<Value, ContainerError> {
        let c = self.find(key)?;
        let dir = self.dir(&c.id);
        // A bundle that cannot be read (removed under us) leaves its fields empty.
        let spec: Value = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let image = self.image_run_config(&c);
        let process = &spec["process"];
        let args: Vec<Value> = process["args"].as_array().cloned().unwrap_or_default();
        let entrypoint = c
            .entrypoint
            .clone()
            .or_else(|| image.entrypoint.clone())
            .unwrap_or_default();
        let cmd: Vec<&Value> = if args.len() >= entrypoint.len()
            && args.iter().zip(&entrypoint).all(|(a, e)| a == e)
        {
            args[entrypoint.len()..].iter().collect()
        } else {
            args.iter().collect()
        };
        let user = &process["user"];
        let user = match (user["uid"].as_u64(), user["gid"].as_u64()) {
            (Some(0), Some(0)) | (None, _) => String::new(),
            (Some(u), Some(g)) => format!("{u}:{g}"),
            (Some(u), None) => u.to_string(),
        };
        let labels: Map<String, Value> = c
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let stop_signal = c
            .life
            .stop_signal
            .clone()
            .or_else(|| image.stop_signal.clone());
        Ok(json!({
            "Id": c.id,
            "Created": rfc3339(Some(c.created)),
            "Path": args.first().cloned().unwrap_or(Value::Null),
            "Args": args.get(1..).unwrap_or_default(),
            "State": self.state_json(&c),
            "Image": format!("sha256:{}", c.image_id.trim_start_matches("sha256:")),
            "ImageName": c.image,
            "ResolvConfPath": dir.join("resolv.conf"),
            "HostnamePath": dir.join("hostname"),
            "HostsPath": dir.join("hosts"),
            "LogPath": self.log_path(&c.id),
            "Name": format!("/{}", c.name),
            "RestartCount": c.life.restart_count,
            "Driver": format!("{:?}", self.images.snapshots.driver()).to_lowercase(),
            "Platform": "linux",
            "Config": {
                "Hostname": c.hostname,
                "User": user,
                "Tty": process["terminal"].as_bool().unwrap_or(false),
                "OpenStdin": c.life.interactive,
                "Env": process["env"],
                "Cmd": cmd,
                "Entrypoint": if entrypoint.is_empty() { Value::Null } else { json!(entrypoint) },
                "Image": c.image,
                "WorkingDir": process["cwd"],
                "Labels": labels,
                "StopSignal": stop_signal,
                "StopTimeout": c.life.stop_timeout,
            },
            "HostConfig": host_config(&c, &spec),
            "Mounts": self.mounts_json(&spec),
            "NetworkSettings": self.network_json(&c),
        }))
    }

    /// The image's run config (empty when the image is gone).
    fn image_run_config(&self, c: &Container) -> berth_image::config::RunConfig {
        self.images
            .find(&c.image_id)
            .ok()
            .and_then(|r| self.images.content.read(&r.id).ok())
            .and_then(|b| serde_json::from_slice::<berth_image::config::ImageConfig>(&b).ok())
            .map(|i| i.config)
            .unwrap_or_default()
    }

    fn state_json(&self, c: &Container) -> Value {
        let paused = c.status == Status::Running
            && berth_runtime::state::ContainerState::load(&self.runtime_root(), &c.id)
                .is_ok_and(|s| s.status() == berth_runtime::state::Status::Paused);
        let status = match c.status {
            Status::Running if paused => "paused",
            Status::Running => "running",
            Status::Created => "created",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
        };
        let running = c.status == Status::Running;
        json!({
            "Status": status,
            "Running": running,
            "Paused": paused,
            "Restarting": c.status == Status::Restarting,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if running { c.life.pid.unwrap_or(0) } else { 0 },
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": c.life.error.clone().unwrap_or_default(),
            "StartedAt": rfc3339(c.life.started),
            "FinishedAt": rfc3339(c.finished),
        })
    }

    fn mounts_json(&self, spec: &Value) -> Vec<Value> {
        let volumes_dir = self.root.join("volumes");
        let mut out = vec![];
        for m in spec["mounts"].as_array().into_iter().flatten() {
            let dest = m["destination"].as_str().unwrap_or_default();
            let kind = m["type"].as_str().unwrap_or_default();
            let opts: Vec<&str> = m["options"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let rw = !opts.contains(&"ro");
            let propagation = opts
                .iter()
                .find(|o| o.ends_with("shared") || o.ends_with("slave") || o.ends_with("private"))
                .copied()
                .unwrap_or("");
            let source = m["source"].as_str().unwrap_or_default();
            match kind {
                "bind" if OWN_FILES.contains(&dest) => {}
                "bind" => {
                    let vol = std::path::Path::new(source)
                        .strip_prefix(&volumes_dir)
                        .ok()
                        .and_then(|p| p.iter().next())
                        .map(|n| n.to_string_lossy().into_owned());
                    out.push(match vol {
                        Some(name) => json!({
                            "Type": "volume", "Name": name, "Source": source,
                            "Destination": dest, "Driver": "local", "Mode": "",
                            "RW": rw, "Propagation": propagation,
                        }),
                        None => json!({
                            "Type": "bind", "Source": source, "Destination": dest,
                            "Mode": "", "RW": rw, "Propagation": propagation,
                        }),
                    });
                }
                "tmpfs" if !dest.starts_with("/dev") => out.push(json!({
                    "Type": "tmpfs", "Source": "", "Destination": dest,
                    "Mode": "", "RW": rw, "Propagation": "",
                })),
                _ => {}
            }
        }
        out
    }

    fn network_json(&self, c: &Container) -> Value {
        let mut ports = Map::new();
        for p in &c.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            let host_ip = p
                .host_ip
                .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
            let entry = ports.entry(key).or_insert_with(|| json!([]));
            if let Some(a) = entry.as_array_mut() {
                a.push(json!({"HostIp": host_ip, "HostPort": p.host_port.to_string()}));
            }
        }
        let mut networks = Map::new();
        let mut primary =
            json!({"IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": ""});
        if let NetworkMode::Network(name) = &c.network {
            let cfg = &self.network;
            let addr = berth_network::cache::read(&cfg.cache_dir(), name, &c.id, &cfg.ifname)
                .ok()
                .flatten()
                .and_then(|a| a.result)
                .and_then(|r| berth_network::cni::result::CniResult::parse(&r).ok())
                .map(|r| address(&r))
                .unwrap_or_else(|| primary.clone());
            primary = addr.clone();
            let mut n = addr;
            n["NetworkID"] = json!(name);
            networks.insert(name.clone(), n);
        } else {
            networks.insert(c.network.to_string(), primary.clone());
        }
        let mut v = json!({
            "Ports": ports,
            "Networks": networks,
            "SandboxKey": match &c.network {
                NetworkMode::Network(_) => json!(self.network.netns_path(&c.id)),
                _ => json!(""),
            },
        });
        for k in ["IPAddress", "IPPrefixLen", "Gateway", "MacAddress"] {
            v[k] = primary[k].clone();
        }
        v
    }
}

/// The container-side address of a CNI result: the first IP on an interface inside
/// the container (or the first IP at all), its gateway and that interface's MAC.
fn address(r: &berth_network::cni::result::CniResult) -> Value {
    let inside: Vec<usize> = r.container_interfaces().map(|(i, _)| i).collect();
    let ip = r
        .ips
        .iter()
        .find(|ip| ip.interface.is_some_and(|i| inside.contains(&i)))
        .or_else(|| r.ips.first());
    let Some(ip) = ip else {
        return json!({"IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": ""});
    };
    let mac = ip
        .interface
        .and_then(|i| r.interfaces.get(i))
        .and_then(|i| i.mac.clone())
        .unwrap_or_default();
    json!({
        "IPAddress": ip.address.addr().to_string(),
        "IPPrefixLen": ip.address.prefix_len(),
        "Gateway": ip.gateway.map(|g| g.to_string()).unwrap_or_default(),
        "MacAddress": mac,
    })
}

fn host_config(c: &Container, spec: &Value) -> Value {
    let res = &spec["linux"]["resources"];
    let (name, max) = match c.life.restart {
        RestartPolicy::No => ("no", 0),
        RestartPolicy::OnFailure(n) => ("on-failure", n),
        RestartPolicy::Always => ("always", 0),
        RestartPolicy::UnlessStopped => ("unless-stopped", 0),
    };
    let quota = res["cpu"]["quota"].as_i64().unwrap_or(0);
    let period = res["cpu"]["period"].as_u64().unwrap_or(0);
    let nano_cpus = if quota > 0 && period > 0 {
        (quota as u128 * 1_000_000_000 / period as u128) as u64
    } else {
        0
    };
    let privileged = res["devices"]
        .as_array()
        .and_then(|d| d.first())
        .is_some_and(|d| d["allow"] == json!(true));
    let mut port_bindings = Map::new();
    for p in &c.ports {
        let entry = port_bindings
            .entry(format!("{}/{}", p.container_port, p.protocol))
            .or_insert_with(|| json!([]));
        if let Some(a) = entry.as_array_mut() {
            a.push(json!({
                "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    let mut log = Map::new();
    if c.life.log_max_size > 0 {
        log.insert("max-size".into(), json!(c.life.log_max_size.to_string()));
    }
    log.insert(
        "max-file".into(),
        json!(c.life.log_max_files.max(1).to_string()),
    );
    let caps = &spec["process"]["capabilities"]["bounding"];
    json!({
        "NetworkMode": c.network.to_string(),
        "PortBindings": port_bindings,
        "RestartPolicy": {"Name": name, "MaximumRetryCount": max},
        "AutoRemove": c.auto_remove,
        "Privileged": privileged,
        "ReadonlyRootfs": spec["root"]["readonly"].as_bool().unwrap_or(false),
        "Memory": res["memory"]["limit"].as_i64().unwrap_or(0),
        "MemorySwap": res["memory"]["swap"].as_i64().unwrap_or(0),
        "NanoCpus": nano_cpus,
        "CpuShares": res["cpu"]["shares"].as_u64().unwrap_or(0),
        "CpuPeriod": period,
        "CpuQuota": quota,
        "CpusetCpus": res["cpu"]["cpus"].as_str().unwrap_or_default(),
        "PidsLimit": res["pids"]["limit"].as_i64(),
        "Capabilities": caps,
        "LogConfig": {"Type": "k8s-file", "Config": log},
    })
}
