//! Device access rules: the spec's ordered allow/deny list plus the devices every
//! container gets (runc's defaults), written as v1 devices.allow/deny lines or compiled
//! into a cgroup v2 BPF_PROG_TYPE_CGROUP_DEVICE program.

use super::CgroupError;
use berth_sys::bpf::Insn;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a', 'c' or 'b'.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Some of "rwm".
    pub access: String,
}

impl DeviceRule {
    fn new(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Self {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.to_string(),
        }
    }

    pub fn to_v1(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The spec's rules followed by the defaults (/dev/null, zero, full, random, urandom,
/// tty, console, ptmx, pts/*, and mknod of anything).
pub fn device_rules(spec: &[LinuxDeviceCgroup]) -> Vec<DeviceRule> {
    let mut rules: Vec<DeviceRule> = spec
        .iter()
        .map(|d| {
            let kind = match d.typ() {
                Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
                Some(LinuxDeviceType::B) => 'b',
                _ => 'a',
            };
            let access = d.access().clone().unwrap_or_else(|| "rwm".into());
            DeviceRule::new(d.allow(), kind, d.major(), d.minor(), &access)
        })
        .collect();
    for (kind, major, minor, access) in [
        ('c', None, None, "m"),
        ('b', None, None, "m"),
        ('c', Some(1), Some(3), "rwm"),
        ('c', Some(1), Some(5), "rwm"),
        ('c', Some(1), Some(7), "rwm"),
        ('c', Some(1), Some(8), "rwm"),
        ('c', Some(1), Some(9), "rwm"),
        ('c', Some(5), Some(0), "rwm"),
        ('c', Some(5), Some(1), "rwm"),
        ('c', Some(5), Some(2), "rwm"),
        ('c', Some(136), None, "rwm"),
    ] {
        rules.push(DeviceRule::new(true, kind, major, minor, access));
    }
    rules
}

const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95;

/// Compiles the rules: the last matching rule decides (as writing them in order to v1
/// files would), and a device no rule matches is denied.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    // r2 = device type, r3 = requested access, r4 = major, r5 = minor.
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut block = Vec::new();
        let kind = match r.kind {
            'c' => Some(DEV_CHAR),
            'b' => Some(DEV_BLOCK),
            _ => None,
        };
        if let Some(k) = kind {
            block.push((JNE_K, 2, k));
        }
        let mask = r.access.chars().fold(0, |m, c| {
            m | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            }
        });
        let access_check = mask != ACC_READ | ACC_WRITE | ACC_MKNOD;
        if let Some(maj) = r.major {
            block.push((JNE_K, 4, maj as i32));
        }
        if let Some(min) = r.minor {
            block.push((JNE_K, 5, min as i32));
        }
        // Each conditional jumps to the end of this rule's block.
        let tail = if access_check { 3 } else { 0 } + 2;
        let n = block.len();
        for (i, (code, reg, imm)) in block.into_iter().enumerate() {
            let skip = (n - i - 1) as i16 + tail;
            p.push(insn(code, reg, 0, skip, imm));
        }
        if access_check {
            // r1 = requested & ~allowed; a request outside the rule's access skips it.
            p.push(insn(MOV_X, 1, 3, 0, 0));
            p.push(insn(AND_K, 1, 0, 0, !mask & 0x7));
            p.push(insn(JNE_K, 1, 0, 2, 0));
        }
        p.push(insn(MOV_K, 0, 0, 0, r.allow as i32));
        p.push(insn(EXIT, 0, 0, 0, 0));
        if n == 0 && !access_check {
            // This rule matches every device: anything after it is unreachable, and the
            // verifier rejects unreachable instructions.
            return p;
        }
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// Loads the program and attaches it to the cgroup at `dir`.
pub(super) fn attach_program(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let prog = berth_sys::bpf::load_device_program(&program(rules)).map_err(|(e, log)| {
        CgroupError::DeviceProgram {
            errno: std::io::Error::from_raw_os_error(e.raw_os_error()),
            log,
        }
    })?;
    let cg = std::fs::File::open(dir).map_err(|source| CgroupError::Write {
        field: "linux.resources.devices".into(),
        file: dir.to_path_buf(),
        value: "(BPF program)".into(),
        source,
    })?;
    berth_sys::bpf::attach_device_program(&cg, &prog).map_err(|e| CgroupError::Write {
        field: "linux.resources.devices".into(),
        file: dir.to_path_buf(),
        value: "(BPF_PROG_ATTACH)".into(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Interprets the compiled program for one request, so the jump arithmetic is
    /// checked without a v2 kernel (the VM test runs it for real).
    fn run(p: &[Insn], kind: i32, access: i32, major: i32, minor: i32) -> i64 {
        let ctx = [((access << 16) | kind) as u32, major as u32, minor as u32];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[(i.off / 4) as usize] as i64,
                AND_K => r[dst] &= i.imm as i64,
                RSH_K => r[dst] = ((r[dst] as u64) >> i.imm) as i64,
                MOV_K => r[dst] = i.imm as i64,
                MOV_X => r[dst] = r[src],
                JNE_K => {
                    if r[dst] != i.imm as i64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn default_deny_with_spec_and_default_allows() {
        let deny_all = DeviceRule::new(false, 'a', None, None, "rwm");
        let mut rules = vec![deny_all];
        rules.push(DeviceRule::new(true, 'c', Some(10), Some(200), "rw"));
        rules.extend(device_rules(&[]));
        let p = program(&rules);
        assert_eq!(
            run(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 1, 3),
            1,
            "/dev/null"
        );
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 200), 1, "tun read");
        assert_eq!(
            run(&p, DEV_CHAR, ACC_MKNOD, 10, 200),
            1,
            "mknod of any char device"
        );
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "sda read");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 136, 7), 1, "pts");
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 4, 1), 0, "tty1");
    }

    /// The verifier rejects unreachable code: nothing may follow a catch-all rule.
    fn assert_all_reachable(p: &[Insn]) {
        let mut reach = vec![false; p.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= p.len() || reach[pc] {
                continue;
            }
            reach[pc] = true;
            match p[pc].code {
                EXIT => {}
                JNE_K => todo.extend([pc + 1, pc + 1 + p[pc].off as usize]),
                _ => todo.push(pc + 1),
            }
        }
        assert!(
            reach.iter().all(|r| *r),
            "unreachable instructions in {p:?}"
        );
    }

    #[test]
    fn programs_have_no_unreachable_code() {
        let deny_all = DeviceRule::new(false, 'a', None, None, "rwm");
        let mut rules = vec![deny_all.clone()];
        rules.extend(device_rules(&[]));
        assert_all_reachable(&program(&rules));
        assert_all_reachable(&program(&[deny_all]));
        assert_all_reachable(&program(&device_rules(&[])));
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let rules = vec![
            DeviceRule::new(true, 'a', None, None, "rwm"),
            DeviceRule::new(false, 'c', Some(1), Some(3), "w"),
        ];
        let p = program(&rules);
        assert_eq!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 1);
    }
}
