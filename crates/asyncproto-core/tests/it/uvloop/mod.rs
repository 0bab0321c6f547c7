//! Ports of uvloop's tests (at `0582f94`) that run on the memory transport.

mod test_tcp;
