//! The shedder through its public API, with a fake CPU reading and clock: the state machine
//! (`state.rs`), a property test against a reference model (`model.rs`), threads sharing one
//! shedder (`threads.rs`), and the settings as the application reads them (`settings.rs`).

mod model;
mod settings;
mod state;
mod threads;
