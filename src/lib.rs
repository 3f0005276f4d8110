//! facefind: find every photo of a person in a photo folder.
//!
//! [`pipeline`] turns photos into faces and embeddings (RetinaFace + ArcFace-trained
//! MobileFaceNet in candle); [`verify`] measures it on LFW-style pairs; [`cli`] is the
//! command line.

pub mod cli;
pub mod pipeline;
pub mod verify;
