//! Every byte string a NATS subject could carry, through the envelope decoder
//! every consumer runs first: it must return (Ok or an error to dead-letter),
//! never panic, never hang, never allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microcosm_messaging::envelope::{decode, subject_of};

fuzz_target!(|payload: &[u8]| {
    if let Ok(received) = decode(payload) {
        // A decoded envelope always has a body, and so a subject to travel on.
        assert!(!subject_of(&received.body).is_empty());
    }
});
