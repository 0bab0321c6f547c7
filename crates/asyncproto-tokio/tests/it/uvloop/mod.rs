//! Ports of uvloop's tests, named as upstream (`cpython-test-port.md`):
//! module = file, then class, then the test.

mod test_tcp;
