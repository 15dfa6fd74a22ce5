//! Builds a test image: busybox-static plus N generated layers of a given size (files of
//! moderately compressible bytes), as an OCI image layout, optionally pushed with skopeo.
//!
//! mkimage --out DIR [--tag T] [--layers N] [--layer-size BYTES] [--files-per-layer K] [--push REGISTRY/NAME]

use anyhow::{bail, Context, Result};
use berth_testutil::image::{filler, layer_tar, Entry, ImageBuilder};

fn main() -> Result<()> {
    let mut out = None;
    let mut tag = "latest".to_string();
    let (mut layers, mut size, mut files, mut push) = (0usize, 0usize, 8usize, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--out" => out = Some(val()?),
            "--tag" => tag = val()?,
            "--layers" => layers = val()?.parse()?,
            "--layer-size" => size = val()?.parse()?,
            "--files-per-layer" => files = val()?.parse()?,
            "--push" => push = Some(val()?),
            _ => bail!("unknown argument {a}"),
        }
    }
    let out = out.context("--out DIR is required")?;
    let mut img = ImageBuilder::busybox()?;
    for l in 0..layers {
        let dir: &'static str = Box::leak(format!("data{l}").into_boxed_str());
        let mut entries = vec![Entry::Dir(dir, 0o755)];
        for f in 0..files {
            entries.push(Entry::File(
                format!("{dir}/f{f}"),
                filler((l * 1000 + f) as u64, size / files.max(1)),
                0o644,
            ));
        }
        img.layer(layer_tar(&entries)?);
    }
    std::fs::create_dir_all(&out)?;
    let id = img.write_layout(std::path::Path::new(&out), &tag)?;
    if let Some(dest) = push {
        berth_testutil::image::skopeo_copy(
            &format!("oci:{out}:{tag}"),
            &format!("docker://{dest}:{tag}"),
        )?;
    }
    println!("{id}");
    Ok(())
}
