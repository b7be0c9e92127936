//! Peregrine engine.
