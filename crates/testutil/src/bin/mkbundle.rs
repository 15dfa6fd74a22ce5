//! `mkbundle DIR [ARGS...]`: writes a busybox OCI bundle to DIR (for the README's demo
//! and for trying runtimes by hand).

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        anyhow::bail!("usage: mkbundle DIR [ARGS...]");
    };
    let rest: Vec<String> = args.collect();
    let argv: Vec<&str> = if rest.is_empty() {
        vec![
            "sh",
            "-c",
            "echo hello from a berth container: pid $$, hostname $(hostname)",
        ]
    } else {
        rest.iter().map(String::as_str).collect()
    };
    berth_testutil::Bundle::create_in(std::path::Path::new(&dir), &argv)?;
    println!("{dir}");
    Ok(())
}
