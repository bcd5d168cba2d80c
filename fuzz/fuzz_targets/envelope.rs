//! Every byte string a NATS subject could carry, through the envelope decoder
//! every consumer runs first: it must return (Ok or an error to dead-letter),
//! never panic, never hang, never allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microcosm_platform::messaging::envelope::decode;

fuzz_target!(|payload: &[u8]| {
    if let Ok(received) = decode(payload) {
        assert!(received.envelope.body.is_some());
    }
});
