//! Process attributes set just before the credentials change: personality, I/O
//! priority, scheduler, the LSM label for exec, and exec's CPU affinity. Built here in
//! the parent (names checked, numbers computed); the child makes one syscall each.

use super::plan::PlanError;
use berth_sys::process::SchedAttr;
use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process,
};
use std::ffi::CString;

/// 1024 CPUs, as glibc's cpu_set_t.
pub type CpuMask = [u64; 16];

#[derive(Debug, Default)]
pub struct ProcessAttrs {
    pub personality: Option<u64>,
    pub io_priority: Option<i32>,
    pub scheduler: Option<SchedAttr>,
    /// The /proc/thread-self/attr file and what to write to it (AppArmor "exec
    /// PROFILE", or an SELinux label), applied at the next exec.
    pub lsm: Option<(CString, Vec<u8>)>,
    /// execCPUAffinity.initial: set by the parent before the process joins the cgroup.
    pub affinity_initial: Option<CpuMask>,
    /// execCPUAffinity.final: set by the process itself once in the cgroup.
    pub affinity_final: Option<CpuMask>,
    /// linux.memoryPolicy: set_mempolicy's mode (with flags) and node mask.
    pub memory_policy: Option<(i32, Vec<u64>)>,
}

fn invalid(field: &str, problem: String, rule: &'static str) -> PlanError {
    PlanError::Invalid {
        field: field.into(),
        problem,
        rule,
    }
}

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// "0-3,7" → bit mask.
pub fn cpu_mask(field: &str, list: &str) -> Result<CpuMask, PlanError> {
    let mut mask = [0u64; 16];
    let bad = || {
        invalid(
            field,
            format!("{list:?} is not a CPU list like 0-3,7 (CPUs below 1024)"),
            "config.md#posix-process",
        )
    };
    for part in list.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b >= 1024 {
            return Err(bad());
        }
        for cpu in a..=b {
            mask[cpu / 64] |= 1 << (cpu % 64);
        }
    }
    Ok(mask)
}

/// "0-3,7" → node mask words (the kernel's MAX_NUMNODES is at most 1024).
fn node_mask(list: &str) -> Result<Vec<u64>, PlanError> {
    let list = list.trim();
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let mask = cpu_mask("linux.memoryPolicy.nodes", list).map_err(|_| {
        invalid(
            "linux.memoryPolicy.nodes",
            format!("{list:?} is not a node list like 0-3,7 (nodes below 1024)"),
            "config-linux.md#memory-policy",
        )
    })?;
    let used = mask.iter().rposition(|w| *w != 0).map_or(0, |i| i + 1);
    Ok(mask[..used].to_vec())
}

/// The set_mempolicy arguments for linux.memoryPolicy. The kernel checks most combinations
/// itself (and reports EINVAL); the ones checked here get a message naming the rule.
pub fn memory_policy(mp: &LinuxMemoryPolicy) -> Result<(i32, Vec<u64>), PlanError> {
    let mode = match mp.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let nodes = node_mask(mp.nodes().as_deref().unwrap_or(""))?;
    let mut flags = 0;
    for f in mp.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let bad = |problem: String| {
        invalid(
            "linux.memoryPolicy",
            problem,
            "config-linux.md#memory-policy",
        )
    };
    let name = mp.mode().to_string();
    match mp.mode() {
        MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal => {
            if !nodes.is_empty() {
                return Err(bad(format!("{name} takes no nodes")));
            }
            if flags != 0 {
                return Err(bad(format!("{name} takes no flags")));
            }
        }
        MemoryPolicyModeType::MpolPreferred => {}
        _ if nodes.is_empty() => return Err(bad(format!("{name} needs nodes"))),
        _ => {}
    }
    if flags & (3 << 14) == 3 << 14 {
        return Err(bad(
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other".into(),
        ));
    }
    Ok((mode | flags, nodes))
}

fn personality_flag(name: &str) -> Option<u64> {
    Some(match name {
        "UNAME26" => 0x0020000,
        "ADDR_NO_RANDOMIZE" => 0x0040000,
        "FDPIC_FUNCPTRS" => 0x0080000,
        "MMAP_PAGE_ZERO" => 0x0100000,
        "ADDR_COMPAT_LAYOUT" => 0x0200000,
        "READ_IMPLIES_EXEC" => 0x0400000,
        "ADDR_LIMIT_32BIT" => 0x0800000,
        "SHORT_INODE" => 0x1000000,
        "WHOLE_SECONDS" => 0x2000000,
        "STICKY_TIMEOUTS" => 0x4000000,
        "ADDR_LIMIT_3GB" => 0x8000000,
        _ => return None,
    })
}

impl ProcessAttrs {
    /// `personality` is linux.personality (the init and exec'd processes); `exec` says whether this is
    /// an exec'd process (execCPUAffinity applies to those only).
    pub fn build(
        process: &Process,
        personality: Option<&oci_spec::runtime::LinuxPersonality>,
        exec: bool,
    ) -> Result<Self, PlanError> {
        let mut a = ProcessAttrs::default();
        if let Some(p) = personality {
            let mut v = match p.domain() {
                LinuxPersonalityDomain::PerLinux => 0,
                LinuxPersonalityDomain::PerLinux32 => 0x0008,
            };
            for f in p.flags().iter().flatten() {
                v |= personality_flag(f).ok_or_else(|| {
                    invalid(
                        "linux.personality.flags",
                        format!("unknown flag {f:?}"),
                        "config-linux.md#personality",
                    )
                })?;
            }
            a.personality = Some(v);
        }
        if let Some(io) = process.io_priority() {
            let class = match io.class() {
                IOPriorityClass::IoprioClassRt => 1,
                IOPriorityClass::IoprioClassBe => 2,
                IOPriorityClass::IoprioClassIdle => 3,
            };
            if !(0..=7).contains(&io.priority()) {
                return Err(invalid(
                    "process.ioPriority.priority",
                    format!("{} is not in 0..=7", io.priority()),
                    "config.md#posix-process",
                ));
            }
            a.io_priority = Some((class << 13) | io.priority() as i32);
        }
        if let Some(s) = process.scheduler() {
            let policy = match s.policy() {
                LinuxSchedulerPolicy::SchedOther => 0,
                LinuxSchedulerPolicy::SchedFifo => 1,
                LinuxSchedulerPolicy::SchedRr => 2,
                LinuxSchedulerPolicy::SchedBatch => 3,
                LinuxSchedulerPolicy::SchedIso => 4,
                LinuxSchedulerPolicy::SchedIdle => 5,
                LinuxSchedulerPolicy::SchedDeadline => 6,
            };
            let mut flags = 0u64;
            for f in s.flags().iter().flatten() {
                flags |= match f {
                    LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                    LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                    LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                    LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                    LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                    LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                    LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
                };
            }
            a.scheduler = Some(SchedAttr {
                size: 0,
                policy,
                flags,
                nice: s.nice().unwrap_or(0),
                priority: s.priority().unwrap_or(0) as u32,
                runtime: s.runtime().unwrap_or(0),
                deadline: s.deadline().unwrap_or(0),
                period: s.period().unwrap_or(0),
            });
        }
        if let Some(label) = process.selinux_label().as_ref().filter(|l| !l.is_empty()) {
            if !selinux_enabled() {
                return Err(invalid(
                    "process.selinuxLabel",
                    "SELinux is disabled or not supported on this host (as runc, berth-oci refuses rather than run unlabelled)".into(),
                    "config.md#linux-process",
                ));
            }
            a.lsm = Some((
                c"/proc/thread-self/attr/exec".into(),
                label.as_bytes().to_vec(),
            ));
        }
        if let Some(profile) = process
            .apparmor_profile()
            .as_ref()
            .filter(|p| !p.is_empty())
        {
            if apparmor_enabled() {
                let file = if std::path::Path::new("/proc/self/attr/apparmor/exec").exists() {
                    c"/proc/thread-self/attr/apparmor/exec"
                } else {
                    c"/proc/thread-self/attr/exec"
                };
                a.lsm = Some((file.into(), format!("exec {profile}").into_bytes()));
            } else {
                // runc does the same: no AppArmor, nothing to confine with.
                tracing::debug!("process.apparmorProfile {profile:?} ignored: AppArmor is not enabled on this host");
            }
        }
        if let Some(aff) = process.exec_cpu_affinity().as_ref().filter(|_| exec) {
            if let Some(i) = aff.initial() {
                a.affinity_initial = Some(cpu_mask("process.execCPUAffinity.initial", i)?);
            }
            if let Some(f) = aff.cpu_affinity_final() {
                a.affinity_final = Some(cpu_mask("process.execCPUAffinity.final", f)?);
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let m = cpu_mask("f", "0-2,5,64").expect("valid");
        assert_eq!(m[0], 0b100111);
        assert_eq!(m[1], 1);
        assert!(cpu_mask("f", "3-1").is_err());
        assert!(cpu_mask("f", "1024").is_err());
        assert!(cpu_mask("f", "a").is_err());
    }

    fn policy(json: &str) -> Result<(i32, Vec<u64>), PlanError> {
        memory_policy(&serde_json::from_str(json).expect("parses"))
    }

    #[test]
    fn memory_policies() {
        assert_eq!(
            policy(r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES"]}"#).ok(),
            Some((2 | 1 << 15, vec![1]))
        );
        assert_eq!(
            policy(r#"{"mode":"MPOL_INTERLEAVE","nodes":"0-1,65"}"#).ok(),
            Some((3, vec![3, 2]))
        );
        assert_eq!(
            policy(r#"{"mode":"MPOL_DEFAULT","nodes":""}"#).ok(),
            Some((0, vec![]))
        );
        assert!(policy(r#"{"mode":"MPOL_DEFAULT","nodes":"0-7"}"#).is_err());
        assert!(policy(r#"{"mode":"MPOL_BIND"}"#).is_err());
        assert!(policy(
            r#"{"mode":"MPOL_PREFERRED","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#
        )
        .is_err());
        assert!(policy(r#"{"mode":"MPOL_PREFERRED","nodes":"x"}"#).is_err());
    }
}
