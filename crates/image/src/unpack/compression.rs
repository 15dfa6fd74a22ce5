//! Layer compression: which decoder a media type or a stream's magic bytes call for, and the
//! decoders themselves. Decoders read from a large buffer so that each read of the caller's
//! (hashing) reader is big.

use super::error::UnpackError;
use std::io::{self, BufRead, BufReader, Read};

/// Read buffer in front of the compressed input.
const COMPRESSED_BUF: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names (image-spec media-types.md, and the docker
    /// manifest v2 schema 2 layer types). Encrypted or otherwise unknown types are refused.
    pub fn from_media_type(media_type: &str) -> Result<Compression, UnpackError> {
        Ok(match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Compression::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Compression::Zstd,
            _ => {
                return Err(UnpackError::UnknownMediaType {
                    media_type: media_type.to_owned(),
                })
            }
        })
    }

    /// Sniffs the compression from the first bytes of a layer (docker-archive and `load`
    /// paths carry no media type). Anything that is not gzip or zstd is taken as a plain tar.
    pub fn detect(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// The uncompressed layer stream.
pub(crate) enum Decoder<R: Read> {
    None(BufReader<R>),
    // Multi-member, like Go's gzip.Reader that containerd and umoci use.
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<R>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<R>>>),
}

impl<R: Read> Decoder<R> {
    pub(crate) fn new(compression: Compression, input: R) -> io::Result<Decoder<R>> {
        let input = BufReader::with_capacity(COMPRESSED_BUF, input);
        Ok(match compression {
            Compression::None => Decoder::None(input),
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(input)))
            }
            Compression::Zstd => {
                Decoder::Zstd(Box::new(zstd::stream::read::Decoder::with_buffer(input)?))
            }
        })
    }

    /// Reads whatever is left of the compressed input, so that a caller hashing it sees
    /// every byte. A decoder that reached its end normally has consumed it all already.
    pub(crate) fn drain_input(self) -> io::Result<()> {
        let mut input = match self {
            Decoder::None(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        };
        loop {
            let n = input.fill_buf()?.len();
            if n == 0 {
                return Ok(());
            }
            input.consume(n);
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::None(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        use Compression::*;
        for (mt, want) in [
            ("application/vnd.oci.image.layer.v1.tar", None),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Gzip),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Zstd),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar",
                None,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Gzip,
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                Zstd,
            ),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", Gzip),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Gzip,
            ),
        ] {
            assert_eq!(Compression::from_media_type(mt).ok(), Some(want), "{mt}");
        }
        let err =
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+gzip+encrypted")
                .expect_err("encrypted layers are not unpackable");
        assert!(err.to_string().contains("+gzip+encrypted"), "{err}");
    }

    #[test]
    fn detect_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"etc/\0\0\0"), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }
}
