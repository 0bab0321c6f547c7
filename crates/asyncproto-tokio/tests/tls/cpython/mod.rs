//! Ports of CPython's asyncio TLS tests, named as upstream
//! (`cpython-test-port.md`, section TLS): module = file, then class, then
//! the test.

mod test_base_events;
mod test_events;
mod test_ssl;
mod test_sslproto;
mod test_unix_events;
