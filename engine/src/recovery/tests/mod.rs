//! Tests of the recovery layer that span its files (the per-file ones are inline).

mod ack_tracker_policy;
