//! Images: where their content lives (the content store), how layers become filesystems
//! (unpack into overlay snapshots), and what berth knows about each image (metadata).

pub mod config;
pub mod content;
pub mod images;
pub mod snapshot;
pub mod unpack;
