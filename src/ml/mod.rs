//! The machine-learned potential: data, graphs, the SchNet + MCGM model with explicit forces,
//! training, and model files. Everything is written against burn's tensor API, so the same
//! code runs on any burn device (the CPU through `flex` today).

pub mod commands;
pub mod dataset;
pub mod electrostatics;
pub mod equilibration;
pub mod file;
pub mod free_space;
pub mod graph;
pub mod implementation;
pub mod inference;
pub mod layer;
pub mod mcgm;
pub mod model;
pub mod pair_kernel;
pub mod pme;
pub mod real_space;
pub mod reciprocal;
pub mod soft;
pub mod tensor;
pub mod train;
