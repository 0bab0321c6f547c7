//! Ports of uvloop's TLS tests, named as upstream (`cpython-test-port.md`,
//! section TLS): module = file, then class, then the test.

mod test_tcp;
