//! The OCI distribution side of images: what an image is called ([`Reference`]), how its
//! content is named ([`Digest`]), and the registry client that moves it.

pub mod digest;
pub mod reference;

pub use digest::{Digest, DigestError, Hasher};
pub use reference::{Reference, ReferenceError};
