//! The shedder through its public API, with a fake CPU reading and clock: the state machine
//! (`state.rs`) and a property test against a reference model (`model.rs`).

mod model;
mod state;
