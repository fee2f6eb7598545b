//! Arbitrary bytes as one request frame (what follows the size prefix): the header
//! parser, the API and version check and the body decoder of every API strom serves
//! must never panic, and never abort by allocating what the frame only claims to hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strom_broker::fuzzing::decode_frame(data);
});
