//! facefind: find every photo of a person in a photo folder.
//!
//! [`pipeline`] turns photos into faces and embeddings (RetinaFace + ArcFace-trained
//! MobileFaceNet in candle); [`catalog`] keeps them per folder in SQLite; [`search`] ranks
//! photos against a query face; [`people`] groups faces into persons; [`verify`] measures the pipeline on LFW-style pairs; [`cli`]
//! is the command line and [`gui`] the desktop app.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod catalog;
pub mod cli;
pub mod eval;
pub mod gui;
pub mod index;
pub mod kernels;
pub mod nets;
pub mod people;
pub mod photo;
pub mod pipeline;
pub mod search;
pub mod train;
pub mod util;
